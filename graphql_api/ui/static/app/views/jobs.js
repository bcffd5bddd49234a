// @ts-check
/** The training job monitor's list: filters, keyset paging, and live updates without a reload
 * (a shown job changes in place; a new or newly matching job appears on the first page). */
import { allPages, gql, subscribe } from "../api.js";
import { badge, coalesce, h, metricsText, replace, when } from "../dom.js";
import { STATUSES } from "./dashboard.js";

export const PAGE_SIZE = 25;

const JOB_FIELDS = `jobId status datasetId createdDate startedDate metrics modelId modelVersion { modelName version }`;

/** What an event carries: the row's fields but its model version, which each event would
 * cost the server a lookup for, per subscriber. */
const LIVE_FIELDS = "jobId status datasetId createdDate startedDate metrics modelId";

const PAGE = `query JobPage($first: Int!, $after: String, $filter: TrainingJobFilter) {
  trainingJobs(first: $first, after: $after, filter: $filter) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { ${JOB_FIELDS} } }
  }
}`;

const MODEL_IDS = `query ModelIds($after: String, $names: [String!]) {
  modelVersions(first: 100, after: $after, filter: {modelNames: $names}, orderBy: VERSION_DESC) {
    pageInfo { hasNextPage endCursor }
    edges { node { modelId modelName version } }
  }
}`;

const NAMES = `query ModelNames($after: String) {
  modelVersions(first: 100, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { modelName } }
  }
}`;

/** Filters the server may have beyond the seed's (other issues add queues and tags). */
const EXTRA_FILTERS = [
  ["queues", "Queue"],
  ["tags", "Tag"],
];

/** @param {string | null} text */
function list(text) {
  return (text ?? "").split(",").map((s) => s.trim()).filter(Boolean);
}

/** Jobs ticked for comparison (kept while the list pages and updates). @type {Set<string>} */
const compared = new Set();
export const MAX_COMPARED = 10;

/** @param {any} job */
function row(job) {
  return h(
    "tr",
    { dataset: { jobId: job.jobId, status: job.status } },
    h(
      "td",
      null,
      h("input", {
        type: "checkbox",
        class: "compare",
        "aria-label": `Compare job ${job.jobId}`,
        checked: compared.has(job.jobId),
        onChange: (/** @type {Event} */ event) => {
          const box = /** @type {HTMLInputElement} */ (event.target);
          if (box.checked && compared.size >= MAX_COMPARED) box.checked = false;
          else if (box.checked) compared.add(job.jobId);
          else compared.delete(job.jobId);
          document.dispatchEvent(new Event("compared"));
        },
      }),
    ),
    h("td", null, h("a", { href: `#/jobs/${encodeURIComponent(job.jobId)}`, class: "mono", title: job.jobId }, `…${job.jobId.slice(-8)}`)),
    h("td", null, job.modelVersion ? `${job.modelVersion.modelName} ${job.modelVersion.version}` : job.modelId),
    h("td", null, job.datasetId),
    h("td", { class: "status" }, badge(job.status)),
    h("td", null, when(job.createdDate)),
    h("td", { class: "metrics" }, metricsText(job.metrics)),
  );
}

/** @type {import("../main.js").View} */
export async function jobList(main, { caps, params, notify }) {
  const statuses = list(params.get("status")).filter((s) => STATUSES.includes(s));
  const model = params.get("model") ?? "";
  const modelId = params.get("modelId") ?? "";
  const dataset = params.get("dataset") ?? "";
  const extras = EXTRA_FILTERS.filter(([name]) => caps.jobFilters.has(name));

  /** @type {Record<string, unknown>} */
  const filter = {};
  if (statuses.length) filter.statuses = statuses;
  if (dataset) filter.datasetIds = [dataset];
  if (modelId) filter.modelIds = [modelId];
  else if (model) {
    const versions = await allPages(MODEL_IDS, { names: [model] }, (d) => d.modelVersions);
    // The filter takes at most 100 ids; past that, say so rather than cut silently.
    filter.modelIds = versions.map((v) => v.modelId).slice(0, 100);
    if (versions.length > 100) notify(`${model} has ${versions.length} versions: showing the jobs of the 100 highest.`);
  }
  for (const [name] of extras) if (params.get(name)) filter[name] = [params.get(name)];
  const names = [...new Set((await allPages(NAMES, {}, (d) => d.modelVersions)).map((v) => v.modelName))].sort();

  const form = h(
    "form",
    {
      class: "filters",
      "aria-label": "Filter training jobs",
      onSubmit: (/** @type {Event} */ event) => {
        event.preventDefault();
        const data = new FormData(/** @type {HTMLFormElement} */ (event.target));
        const next = new URLSearchParams();
        const chosen = data.getAll("status").map(String);
        if (chosen.length) next.set("status", chosen.join(","));
        for (const name of ["model", "dataset", ...extras.map(([n]) => n)]) {
          const value = String(data.get(name) ?? "").trim();
          if (value) next.set(name, value);
        }
        location.hash = `#/jobs?${next}`;
      },
    },
    h(
      "fieldset",
      null,
      h("legend", null, "Status"),
      STATUSES.map((status) =>
        h("label", { class: "check" }, h("input", { type: "checkbox", name: "status", value: status, checked: statuses.includes(status) }), status.toLowerCase()),
      ),
    ),
    h("label", { for: "f-model" }, "Model"),
    h("select", { id: "f-model", name: "model" }, h("option", { value: "" }, "any"), names.map((n) => h("option", { value: n, selected: n === model }, n))),
    h("label", { for: "f-dataset" }, "Dataset"),
    h("input", { id: "f-dataset", name: "dataset", value: dataset, placeholder: "dataset id" }),
    extras.map(([name, label]) => [h("label", { for: `f-${name}` }, label), h("input", { id: `f-${name}`, name, value: params.get(name) ?? "" })]),
    h("button", { type: "submit", class: "primary" }, "Apply"),
    h("a", { href: "#/jobs", class: "button" }, "Clear"),
  );

  const compareLink = h("a", { class: "button", id: "compare" });
  const showCompare = () => {
    const n = compared.size;
    compareLink.setAttribute("href", `#/compare?jobs=${[...compared].map(encodeURIComponent).join(",")}`);
    compareLink.classList.toggle("hidden", n < 2);
    replace(compareLink, `Compare ${n} jobs`);
  };
  document.addEventListener("compared", showCompare);
  showCompare();
  const summary = h("p", { class: "summary", "aria-live": "polite" });
  const body = h("tbody");
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  replace(
    main,
    h("h1", null, "Training jobs"),
    form,
    h("div", { class: "row" }, summary, compareLink, h("span", { class: "muted" }, `tick 2 to ${MAX_COMPARED} jobs to compare them`)),
    h(
      "table",
      { class: "jobs" },
      h("caption", { class: "sr-only" }, "Training jobs, newest first"),
      h("thead", null, h("tr", null, ["Compare", "Job", "Model version", "Dataset", "Status", "Created", "Latest metrics"].map((t) => h("th", { scope: "col" }, t)))),
      body,
    ),
    pager,
  );

  /** Cursors of the pages before this one, for "previous". @type {(string | null)[]} */
  const before = [];
  /** @type {string | null} */
  let after = null;
  /** @type {Map<string, any>} */
  let shown = new Map();

  async function load() {
    const data = await gql(PAGE, { first: PAGE_SIZE, after, filter });
    const connection = data.trainingJobs;
    const jobs = connection.edges.map((/** @type {any} */ e) => e.node);
    shown = new Map(jobs.map((/** @type {any} */ j) => [j.jobId, j]));
    replace(body, jobs.length ? jobs.map(row) : h("tr", null, h("td", { colspan: 7, class: "empty" }, "No training job matches.")));
    const first = before.length * PAGE_SIZE;
    replace(summary, jobs.length ? `Jobs ${first + 1}–${first + jobs.length} of ${connection.totalCount}` : `0 of ${connection.totalCount}`);
    replace(
      pager,
      h("button", { type: "button", disabled: before.length === 0, onClick: () => { after = before.pop() ?? null; void load(); } }, "← Newer"),
      h("button", { type: "button", disabled: !connection.pageInfo.hasNextPage, onClick: () => { before.push(after); after = connection.pageInfo.endCursor; void load(); } }, "Older →"),
    );
  }
  await load();

  const reloadFirstPage = coalesce(load, 100);
  /** @param {any} job */
  const matches = (job) =>
    (!filter.statuses || /** @type {string[]} */ (filter.statuses).includes(job.status)) &&
    (!filter.modelIds || /** @type {string[]} */ (filter.modelIds).includes(job.modelId)) &&
    (!filter.datasetIds || /** @type {string[]} */ (filter.datasetIds).includes(job.datasetId));
  const stop = subscribe(
    `subscription JobListUpdates { trainingJobUpdates { kind status job { ${LIVE_FIELDS} } } }`,
    {},
    (data) => {
      const update = data.trainingJobUpdates.job;
      if (!update) return;
      const current = body.querySelector(`tr[data-job-id="${CSS.escape(update.jobId)}"]`);
      if (current) {
        // The row's model version does not change: the event need not carry it.
        const job = { ...shown.get(update.jobId), ...update };
        shown.set(job.jobId, job);
        current.replaceWith(row(job));
      } else if (before.length === 0 && matches(update)) {
        reloadFirstPage(); // a new job, or one that now matches the filter: newest first
      }
    },
    reloadFirstPage,
  );
  return () => {
    stop();
    document.removeEventListener("compared", showCompare);
  };
}
