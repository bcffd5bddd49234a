// @ts-check
/** The ML dashboard: jobs by status (live counts), running jobs with their latest metrics,
 * recent failures, and the version of each model in production. */
import { allPages, gql, subscribe } from "../api.js";
import { coalesce, h, metricsText, replace, when } from "../dom.js";

export const STATUSES = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];

const COUNTS = `query DashboardCounts {
  ${STATUSES.map((s) => `${s.toLowerCase()}: trainingJobs(first: 1, filter: {statuses: [${s}]}) { totalCount }`).join("\n  ")}
  runningJobs: trainingJobs(first: 10, filter: {statuses: [RUNNING]}) {
    totalCount
    edges { node { jobId datasetId startedDate metrics modelVersion { modelName version } } }
  }
  failedJobs: trainingJobs(first: 5, filter: {statuses: [FAILED]}) {
    totalCount
    edges { node { jobId datasetId completedDate failureReason modelVersion { modelName version } } }
  }
}`;

const VERSIONS = `query DashboardVersions($after: String) {
  modelVersions(first: 100, after: $after, orderBy: VERSION_DESC) {
    pageInfo { hasNextPage endCursor }
    edges { node { modelId modelName version status deployedDate metrics } }
  }
}`;

/** @param {{jobId: string, modelVersion: {modelName: string, version: string} | null}} job */
function jobLink(job) {
  const label = job.modelVersion ? `${job.modelVersion.modelName} ${job.modelVersion.version}` : job.jobId;
  return h("a", { href: `#/jobs/${encodeURIComponent(job.jobId)}` }, label);
}

/** @param {string} shown @param {number} total @param {string} href */
function more(shown, total, href) {
  return h("p", { class: "more" }, `${shown} of ${total} · `, h("a", { href }, "all of them"));
}

/** @type {import("../main.js").View} */
export async function dashboard(main) {
  const counts = h("div", { class: "tiles", "aria-live": "polite" });
  const running = h("div");
  const failures = h("div");
  const production = h("div");
  replace(
    main,
    h("h1", null, "Dashboard"),
    h("section", { "aria-labelledby": "h-status" }, h("h2", { id: "h-status" }, "Training jobs by status"), counts),
    h(
      "div",
      { class: "columns" },
      h("section", { "aria-labelledby": "h-running" }, h("h2", { id: "h-running" }, "Running now"), running),
      h("section", { "aria-labelledby": "h-failed" }, h("h2", { id: "h-failed" }, "Recent failures"), failures),
    ),
    h("section", { "aria-labelledby": "h-prod" }, h("h2", { id: "h-prod" }, "Models in production"), production),
  );

  async function loadJobs() {
    const data = await gql(COUNTS);
    replace(
      counts,
      STATUSES.map((status) =>
        h(
          "a",
          { class: `tile s-${status.toLowerCase()}`, href: `#/jobs?status=${status}`, dataset: { status } },
          h("span", { class: "count", dataset: { count: status } }, String(data[status.toLowerCase()].totalCount)),
          h("span", { class: "label" }, status.toLowerCase()),
        ),
      ),
    );
    const runningJobs = data.runningJobs.edges.map((/** @type {any} */ e) => e.node);
    replace(
      running,
      runningJobs.length === 0
        ? h("p", { class: "empty" }, "No job is running.")
        : h(
            "table",
            null,
            h("caption", { class: "sr-only" }, "Running jobs and their latest metrics"),
            h("thead", null, h("tr", null, h("th", { scope: "col" }, "Model"), h("th", { scope: "col" }, "Dataset"), h("th", { scope: "col" }, "Started"), h("th", { scope: "col" }, "Latest metrics"))),
            h(
              "tbody",
              null,
              runningJobs.map((/** @type {any} */ job) =>
                h("tr", { dataset: { jobId: job.jobId } }, h("td", null, jobLink(job)), h("td", null, job.datasetId), h("td", null, when(job.startedDate)), h("td", { class: "metrics" }, metricsText(job.metrics))),
              ),
            ),
          ),
      data.runningJobs.totalCount > runningJobs.length && more(String(runningJobs.length), data.runningJobs.totalCount, "#/jobs?status=RUNNING"),
    );
    const failedJobs = data.failedJobs.edges.map((/** @type {any} */ e) => e.node);
    replace(
      failures,
      failedJobs.length === 0
        ? h("p", { class: "empty" }, "No failed job.")
        : h(
            "ul",
            { class: "failures" },
            failedJobs.map((/** @type {any} */ job) =>
              h("li", null, jobLink(job), " ", h("span", { class: "muted" }, when(job.completedDate)), h("p", { class: "reason" }, job.failureReason ?? "no reason given")),
            ),
          ),
      data.failedJobs.totalCount > failedJobs.length && more(String(failedJobs.length), data.failedJobs.totalCount, "#/jobs?status=FAILED"),
    );
  }

  async function loadModels() {
    const versions = await allPages(VERSIONS, {}, (d) => d.modelVersions);
    /** @type {Map<string, any[]>} */
    const byName = new Map();
    for (const version of versions) byName.set(version.modelName, [...(byName.get(version.modelName) ?? []), version]);
    replace(
      production,
      byName.size === 0
        ? h("p", { class: "empty" }, "No model is registered yet.")
        : h(
            "table",
            null,
            h("caption", { class: "sr-only" }, "The version of each model in production"),
            h("thead", null, h("tr", null, h("th", { scope: "col" }, "Model"), h("th", { scope: "col" }, "In production"), h("th", { scope: "col" }, "Since"), h("th", { scope: "col" }, "Metrics"), h("th", { scope: "col" }, "Versions"))),
            h(
              "tbody",
              null,
              [...byName.entries()].sort().map(([name, list]) => {
                const live = list.find((v) => v.status === "PRODUCTION");
                return h(
                  "tr",
                  { dataset: { model: name } },
                  h("td", null, h("a", { href: `#/models/${encodeURIComponent(name)}` }, name)),
                  h("td", { dataset: { production: name } }, live ? live.version : h("span", { class: "muted" }, "none")),
                  h("td", null, live ? when(live.deployedDate) : "—"),
                  h("td", { class: "metrics" }, live ? metricsText(live.metrics) : "—"),
                  h("td", null, String(list.length)),
                );
              }),
            ),
          ),
    );
  }

  await Promise.all([loadJobs(), loadModels()]);
  // Live: an event reloads what it changes, at most ~6 times a second however fast they come.
  const jobsChanged = coalesce(loadJobs, 150);
  const modelsChanged = coalesce(loadModels, 150);
  const stops = [
    subscribe("subscription DashboardJobs { trainingJobUpdates { kind } }", {}, jobsChanged, jobsChanged),
    subscribe("subscription DashboardModels { modelVersionUpdates { kind } }", {}, modelsChanged, modelsChanged),
  ];
  return () => stops.forEach((stop) => stop());
}

