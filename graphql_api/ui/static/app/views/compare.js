// @ts-check
/** Two to ten jobs side by side: their latest metrics and hyperparameters, and, where the
 * server keeps metric series, one metric's curves overlaid. */
import { gql } from "../api.js";
import { metricChart } from "../chart.js";
import { badge, h, number, replace } from "../dom.js";
import { MAX_COMPARED } from "./jobs.js";

const JOBS = `query Compare($ids: [ID!]) {
  trainingJobs(first: ${MAX_COMPARED}, filter: {jobIds: $ids}) {
    edges { node { jobId status metrics hyperparameters datasetId modelVersion { modelName version } } }
  }
}`;

const SERIES = `query CompareSeries($ids: [ID!], $key: String!) {
  trainingJobs(first: ${MAX_COMPARED}, filter: {jobIds: $ids}) {
    edges { node { jobId metricSeries(keys: [$key], maxPoints: 1000) { key points { step value } } } }
  }
}`;

/** Flatten nested hyperparameters into dotted keys. @param {any} value @param {string} prefix @param {Map<string, unknown>} out */
function flatten(value, prefix, out) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, out);
  } else out.set(prefix, value);
  return out;
}

/** @type {import("../main.js").View} */
export async function compare(main, { caps, params }) {
  const ids = (params.get("jobs") ?? "").split(",").filter(Boolean).slice(0, MAX_COMPARED);
  const jobs = (await gql(JOBS, { ids })).trainingJobs.edges.map((/** @type {any} */ e) => e.node);
  if (jobs.length < 2) {
    replace(main, h("h1", null, "Compare training jobs"), h("p", null, "Tick two to ten jobs in ", h("a", { href: "#/jobs" }, "the list"), " to compare them."));
    return;
  }
  const label = (/** @type {any} */ job) => `${job.modelVersion ? `${job.modelVersion.modelName} ${job.modelVersion.version}` : ""} …${job.jobId.slice(-8)}`;
  const metricKeys = [...new Set(jobs.flatMap((/** @type {any} */ j) => Object.keys(j.metrics ?? {})))].sort();
  const params_ = jobs.map((/** @type {any} */ j) => flatten(j.hyperparameters, "", new Map()));
  const paramKeys = [...new Set(params_.flatMap((m) => [...m.keys()]))].sort();
  /** @param {string} title @param {string[]} keys @param {(job: any, index: number, key: string) => unknown} value */
  const table = (title, keys, value) =>
    h(
      "table",
      { class: "compare" },
      h("caption", null, title),
      h("thead", null, h("tr", null, h("th", { scope: "col" }, "Key"), jobs.map((/** @type {any} */ j) => h("th", { scope: "col" }, h("a", { href: `#/jobs/${encodeURIComponent(j.jobId)}` }, label(j)), " ", badge(j.status))))),
      h("tbody", null, keys.map((key) => {
        const values = jobs.map((/** @type {any} */ j, /** @type {number} */ i) => value(j, i, key));
        const differs = new Set(values.map((v) => JSON.stringify(v))).size > 1;
        return h("tr", { class: differs ? "differs" : null }, h("th", { scope: "row" }, key), values.map((v) => h("td", { class: "metrics" }, v === undefined ? "—" : number(v))));
      })),
    );
  const chartBox = h("div");
  replace(
    main,
    h("h1", null, `Compare ${jobs.length} training jobs`),
    table("Latest metrics", metricKeys, (job, _, key) => job.metrics?.[key]),
    chartBox,
    table("Hyperparameters (rows that differ are marked)", paramKeys, (_, index, key) => params_[index].get(key)),
  );
  if (!caps.jobFields.has("metricSeries") || metricKeys.length === 0) {
    replace(chartBox, h("p", { class: "muted" }, "Curves overlaid need metric series, which this server does not keep."));
    return;
  }
  const chart = metricChart("step");
  const select = h("select", { id: "compare-key" }, metricKeys.map((k) => h("option", { value: k }, k)));
  const draw = async () => {
    const key = /** @type {HTMLSelectElement} */ (select).value;
    const data = await gql(SERIES, { ids, key });
    chart.set(data.trainingJobs.edges.map((/** @type {any} */ e) => ({
      name: label(jobs.find((/** @type {any} */ j) => j.jobId === e.node.jobId) ?? e.node),
      points: (e.node.metricSeries[0]?.points ?? []).map((/** @type {any} */ p) => [Number(p.step), p.value]),
    })));
  };
  select.addEventListener("change", () => void draw());
  replace(chartBox, h("h2", null, "Curves"), h("label", { for: "compare-key" }, "Metric "), select, chart.element);
  await draw().catch((error) => {
    console.warn("metric series unavailable", error);
    replace(chartBox, h("p", { class: "muted" }, "Curves overlaid are not available from this server."));
  });
  return () => chart.destroy();
}
