// @ts-check
/** The model registry viewer: the models, and a model's versions in SemVer order (the server
 * orders them) with stage, metrics and their training jobs; promote, deploy and archive, each
 * behind a confirmation that says what will happen. Live from modelVersionUpdates. */
import { allPages, gql, subscribe } from "../api.js";
import { badge, coalesce, h, metricsText, replace, when } from "../dom.js";

/** @param {Set<string>} versionFields */
function versionFields(versionFields) {
  const extra = ["aliases", "artifactUri", "sourceJobId"].filter((f) => versionFields.has(f)).join(" ");
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
 * A change the page offers for a version: what it does, in words, before it is made.
 * @typedef {{
 *   label: string, title: string, text: string, mutation: string, danger?: boolean,
 *   document: string, variables: (value: string) => Record<string, unknown>,
 *   field?: {label: string, describe?: (value: string) => string},
 * }} Action
 */

const RESULT = "{ __typename ... on Error { message } }";

/**
 * @param {any} version @param {any[]} versions  all of the model's
 * @param {Set<string>} mutations  the server's
 * @returns {Action[]}
 */
export function actionsFor(version, versions, mutations) {
  const production = versions.find((v) => v.status === "PRODUCTION");
  const { modelId, modelName } = version;
  /** @type {Action[]} */
  const actions = [];
  const promote = `mutation Promote($modelId: ID!, $to: ModelStatus!) { promoteModelVersion(modelId: $modelId, to: $to) ${RESULT} }`;
  if (version.status === "DEVELOPMENT") {
    actions.push({ label: "Promote to testing", title: `Promote ${version.version}`, text: `${version.version} moves from development to testing.`, mutation: "promoteModelVersion", document: promote, variables: () => ({ modelId, to: "TESTING" }) });
  }
  if (version.status === "TESTING") {
    const text = production
      ? `${production.version} will be archived; ${version.version} becomes production.`
      : `${version.version} becomes production (no version of ${modelName} is in production now).`;
    actions.push({ label: "Deploy to production", title: `Deploy ${version.version}`, text, mutation: "promoteModelVersion", document: promote, variables: () => ({ modelId, to: "PRODUCTION" }) });
  }
  if (version.status === "ARCHIVED" && version.deployedDate && production && mutations.has("rollbackModelVersion")) {
    actions.push({
      label: "Roll back to this version",
      title: `Roll back ${modelName} to ${version.version}`,
      text: `${production.version} will be archived; ${version.version} becomes production again.`,
      mutation: "rollbackModelVersion",
      document: `mutation Rollback($modelName: String!, $toModelId: ID!, $reason: String!) { rollbackModelVersion(modelName: $modelName, toModelId: $toModelId, reason: $reason) ${RESULT} }`,
      variables: (reason) => ({ modelName, toModelId: modelId, reason }),
      field: { label: "Reason (kept in the history)" },
    });
  }
  if (version.status !== "ARCHIVED" && mutations.has("setModelAlias")) {
    /** @param {string} alias */
    const holder = (alias) => versions.find((v) => (v.aliases ?? []).includes(alias));
    actions.push({
      label: "Set alias",
      title: `Set an alias of ${modelName} to ${version.version}`,
      text: `The alias you name will point at ${version.version}.`,
      mutation: "setModelAlias",
      document: `mutation SetAlias($modelName: String!, $alias: String!, $modelId: ID!, $expectedModelId: ID) { setModelAlias(modelName: $modelName, alias: $alias, modelId: $modelId, expectedModelId: $expectedModelId) ${RESULT} }`,
      variables: (alias) => ({ modelName, alias, modelId, expectedModelId: holder(alias)?.modelId ?? null }),
      field: {
        label: "Alias",
        describe: (alias) => {
          if (!alias) return `The alias you name will point at ${version.version}.`;
          if (alias === "production") return "production is reserved: it always names the version in production (deploy instead).";
          const current = holder(alias);
          if (!current) return `Alias ${alias} is new: it will name ${version.version}.`;
          if (current.modelId === modelId) return `Alias ${alias} names ${version.version} already: nothing changes.`;
          return `Alias ${alias} will move from ${current.version} to ${version.version}.`;
        },
      },
    });
  }
  if (version.status !== "ARCHIVED") {
    const text = version.status === "PRODUCTION"
      ? `${version.version} will be archived and ${modelName} will have no version in production. An archived version takes no new training jobs and cannot come back.`
      : `${version.version} will be archived. An archived version takes no new training jobs and cannot come back.`;
    actions.push({ label: "Archive", title: `Archive ${version.version}`, text, mutation: "archiveModelVersion", danger: true, document: `mutation Archive($modelId: ID!) { archiveModelVersion(modelId: $modelId) ${RESULT} }`, variables: () => ({ modelId }) });
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

  /** @param {Action} action */
  async function run(action) {
    const answer = await confirm(action.title, action.text, action.label, action.field);
    if (answer === false) return;
    const data = await gql(action.document, action.variables(typeof answer === "string" ? answer : ""));
    const result = data[action.mutation];
    if (result.__typename !== "ModelVersion") notify(result.message);
    await load();
  }

  async function load() {
    const versions = await allPages(VERSIONS, { name }, (d) => d.modelVersions);
    replace(
      body,
      versions.length === 0
        ? h("tr", null, h("td", { colspan: 8, class: "empty" }, `No version of ${name} is registered.`))
        : versions.map((v) => {
            const actions = actionsFor(v, versions, caps.mutation).filter((a) => allowed.has(a.mutation));
            const jobs = v.trainingJobs;
            return h(
              "tr",
              { dataset: { version: v.version, status: v.status } },
              h("th", { scope: "row" }, v.version, v.artifactUri ? h("div", { class: "muted small mono" }, v.artifactUri) : null),
              h("td", { class: "stage" }, badge(v.status)),
              hasAliases ? h("td", null, (v.aliases ?? []).join(", ") || "—") : null,
              h("td", { class: "metrics" }, metricsText(v.metrics)),
              h("td", null, when(v.createdDate)),
              h("td", null, when(v.deployedDate)),
              h(
                "td",
                null,
                jobs.totalCount ? h("a", { href: `#/jobs?modelId=${encodeURIComponent(v.modelId)}` }, `${jobs.totalCount} job${jobs.totalCount === 1 ? "" : "s"}`) : "none",
                // Lineage where the registry records it: the job that produced this version.
                v.sourceJobId ? h("div", null, "built by ", h("a", { href: `#/jobs/${encodeURIComponent(v.sourceJobId)}`, title: v.sourceJobId }, `job …${v.sourceJobId.slice(-8)}`)) : null,
              ),
              h("td", null, h("div", { class: "actions" }, actions.map((a) => h("button", { type: "button", class: a.danger ? "danger" : "primary", onClick: () => void run(a) }, `${a.label}…`)))),
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
