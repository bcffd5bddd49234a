// @ts-check
/** The model registry viewer: the models, and a model's versions in SemVer order (the server
 * orders them) with stage, metrics and their training jobs; promote, deploy and archive, each
 * behind a confirmation that says what will happen. Live from modelVersionUpdates. */
import { allPages, gql, subscribe } from "../api.js";
import { badge, coalesce, h, metricsText, replace, when } from "../dom.js";

/** @param {Set<string>} versionFields */
function versionFields(versionFields) {
  const extra = ["aliases"].filter((f) => versionFields.has(f)).join(" ");
  return `modelId modelName version modelType status metrics createdDate deployedDate ${extra}
    trainingJobs(first: 1) { totalCount edges { node { jobId status } } }`;
}

const NAMES = `query Models($after: String) {
  modelVersions(first: 100, after: $after, orderBy: VERSION_DESC) {
    pageInfo { hasNextPage endCursor }
    edges { node { modelName version status modelType } }
  }
}`;

/** @type {import("../main.js").View} */
export async function modelList(main) {
  const body = h("tbody");
  replace(
    main,
    h("h1", null, "Model registry"),
    h(
      "table",
      null,
      h("caption", { class: "sr-only" }, "Registered models"),
      h("thead", null, h("tr", null, ["Model", "Type", "Versions", "Latest", "In production"].map((t) => h("th", { scope: "col" }, t)))),
      body,
    ),
  );
  async function load() {
    const versions = await allPages(NAMES, {}, (d) => d.modelVersions);
    /** @type {Map<string, any[]>} */
    const byName = new Map();
    for (const v of versions) byName.set(v.modelName, [...(byName.get(v.modelName) ?? []), v]);
    replace(
      body,
      byName.size === 0
        ? h("tr", null, h("td", { colspan: 5, class: "empty" }, "No model is registered yet."))
        : [...byName.entries()].sort().map(([name, list]) =>
            h(
              "tr",
              { dataset: { model: name } },
              h("td", null, h("a", { href: `#/models/${encodeURIComponent(name)}` }, name)),
              h("td", null, list[0].modelType.toLowerCase()),
              h("td", null, String(list.length)),
              h("td", null, list[0].version), // VERSION_DESC: SemVer precedence
              h("td", null, list.find((v) => v.status === "PRODUCTION")?.version ?? h("span", { class: "muted" }, "none")),
            ),
          ),
    );
  }
  await load();
  const changed = coalesce(load, 150);
  return subscribe("subscription ModelsChanged { modelVersionUpdates { kind } }", {}, changed, changed);
}

/**
 * What a change will do, in words, before it is made.
 * @param {any} version @param {any | undefined} production
 * @returns {{label: string, title: string, text: string, mutation: string, variables: Record<string, unknown>}[]}
 */
export function actionsFor(version, production) {
  const actions = [];
  if (version.status === "DEVELOPMENT") {
    actions.push({ label: "Promote to testing", title: `Promote ${version.version}`, text: `${version.version} moves from development to testing.`, mutation: "promoteModelVersion", variables: { modelId: version.modelId, to: "TESTING" } });
  }
  if (version.status === "TESTING") {
    const text = production
      ? `${production.version} will be archived; ${version.version} becomes production.`
      : `${version.version} becomes production (no version of ${version.modelName} is in production now).`;
    actions.push({ label: "Deploy to production", title: `Deploy ${version.version}`, text, mutation: "promoteModelVersion", variables: { modelId: version.modelId, to: "PRODUCTION" } });
  }
  if (version.status !== "ARCHIVED") {
    const text = version.status === "PRODUCTION"
      ? `${version.version} will be archived and ${version.modelName} will have no version in production. An archived version takes no new training jobs and cannot come back.`
      : `${version.version} will be archived. An archived version takes no new training jobs and cannot come back.`;
    actions.push({ label: "Archive", title: `Archive ${version.version}`, text, mutation: "archiveModelVersion", variables: { modelId: version.modelId } });
  }
  return actions;
}

/** @type {import("../main.js").View} */
export async function modelPage(main, { caps, allowed, confirm, notify }, name) {
  const fields = versionFields(caps.versionFields);
  const VERSIONS = `query ModelVersions($after: String, $name: String!) {
    modelVersions(first: 100, after: $after, orderBy: VERSION_DESC, filter: {modelNames: [$name]}) {
      pageInfo { hasNextPage endCursor }
      edges { node { ${fields} } }
    }
  }`;
  const body = h("tbody");
  const hasAliases = caps.versionFields.has("aliases");
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/models" }, "Model registry"), " / ", name),
    h("h1", null, name),
    h(
      "table",
      { class: "versions" },
      h("caption", { class: "sr-only" }, `Versions of ${name}, highest SemVer first`),
      h("thead", null, h("tr", null, ["Version", "Stage", hasAliases ? "Aliases" : null, "Metrics", "Created", "Deployed", "Training jobs", "Actions"].filter(Boolean).map((t) => h("th", { scope: "col" }, t)))),
      body,
    ),
  );

  /** @param {{mutation: string, variables: Record<string, unknown>, title: string, text: string, label: string}} action */
  async function run(action) {
    if (!(await confirm(action.title, action.text, action.label))) return;
    const args = action.mutation === "promoteModelVersion" ? "modelId: $modelId, to: $to" : "modelId: $modelId";
    const params = action.mutation === "promoteModelVersion" ? "$modelId: ID!, $to: ModelStatus!" : "$modelId: ID!";
    const data = await gql(`mutation Change(${params}) { ${action.mutation}(${args}) { __typename ... on Error { message } } }`, action.variables);
    const result = data[action.mutation];
    if (result.__typename !== "ModelVersion") notify(result.message);
    await load();
  }

  async function load() {
    const versions = await allPages(VERSIONS, { name }, (d) => d.modelVersions);
    const production = versions.find((v) => v.status === "PRODUCTION");
    replace(
      body,
      versions.length === 0
        ? h("tr", null, h("td", { colspan: 8, class: "empty" }, `No version of ${name} is registered.`))
        : versions.map((v) => {
            const actions = actionsFor(v, production).filter((a) => allowed.has(a.mutation));
            const jobs = v.trainingJobs;
            return h(
              "tr",
              { dataset: { version: v.version, status: v.status } },
              h("th", { scope: "row" }, v.version),
              h("td", { class: "stage" }, badge(v.status)),
              hasAliases ? h("td", null, (v.aliases ?? []).join(", ") || "—") : null,
              h("td", { class: "metrics" }, metricsText(v.metrics)),
              h("td", null, when(v.createdDate)),
              h("td", null, when(v.deployedDate)),
              h("td", null, jobs.totalCount ? h("a", { href: `#/jobs?modelId=${encodeURIComponent(v.modelId)}` }, `${jobs.totalCount} job${jobs.totalCount === 1 ? "" : "s"}`) : "none"),
              h("td", null, h("div", { class: "actions" }, actions.map((a) => h("button", { type: "button", class: a.mutation === "archiveModelVersion" ? "danger" : "primary", onClick: () => void run(a) }, `${a.label}…`)))),
            );
          }),
    );
  }
  await load();
  const changed = coalesce(load, 150);
  return subscribe(
    "subscription ModelChanged($name: String) { modelVersionUpdates(modelName: $name) { kind } }",
    { name },
    changed,
    changed,
  );
}
