// @ts-check
/** A training job's page: status timeline (history), hyperparameters, metric curves (from
 * metricSeries where the server has it, else the points reported while the page is open),
 * failure, logs, cancel. Updates live from the job's subscription. */
import { allPages, gql, subscribe } from "../api.js";
import { metricChart } from "../chart.js";
import { badge, coalesce, h, metricsText, replace, when } from "../dom.js";

const FIELDS = `jobId status datasetId hyperparameters metrics logsUrl failureReason createdDate startedDate completedDate modelId modelVersion { modelName version status }`;

const HISTORY = `query JobHistory($jobId: ID!, $after: String) {
  trainingJob(jobId: $jobId) {
    history(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node { kind previousStatus status occurredAt actor } }
    }
  }
}`;

const SERIES = `query JobSeries($jobId: ID!) {
  trainingJob(jobId: $jobId) { metricSeries(maxPoints: 1000) { key points { step value } } }
}`;

/** @param {unknown} value */
function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

/** @param {string | null} url */
function logsLink(url) {
  if (!url) return h("span", { class: "muted" }, "not set");
  return /^https?:\/\//.test(url) ? h("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, url) : h("code", null, url);
}

/** @type {import("../main.js").View} */
export async function jobPage(main, { caps, allowed, confirm, notify }, jobId) {
  const first = await gql(`query Job($jobId: ID!) { trainingJob(jobId: $jobId) { ${FIELDS} } }`, { jobId });
  if (!first.trainingJob) {
    replace(main, h("h1", null, "No such training job"), h("p", null, h("a", { href: "#/jobs" }, "All training jobs")));
    return;
  }
  let job = first.trainingJob;
  const hasSeries = caps.jobFields.has("metricSeries");
  const header = h("div");
  const details = h("div");
  const timeline = h("ol", { class: "timeline" });
  const chart = metricChart(hasSeries ? "step" : "seconds since the page opened");
  /** Points reported while the page is open, when the server keeps no series. @type {Map<string, [number, number][]>} */
  const livePoints = new Map();
  const opened = Date.now();

  replace(
    main,
    header,
    details,
    h("section", { "aria-labelledby": "h-metrics" }, h("h2", { id: "h-metrics" }, "Metrics"), h("p", { class: "metrics", id: "latest-metrics" }), chart.element,
      hasSeries ? null : h("p", { class: "muted" }, "This server keeps only the latest value of each metric: the curves grow from the values reported while this page is open.")),
    h("section", { "aria-labelledby": "h-timeline" }, h("h2", { id: "h-timeline" }, "Timeline"), timeline),
  );

  async function cancel() {
    const ok = await confirm("Cancel training job", `Job ${job.jobId} (${job.status.toLowerCase()}) will be cancelled. A cancelled job is final: it cannot be restarted.`, "Cancel job");
    if (!ok) return;
    const data = await gql(`mutation Cancel($jobId: ID!) { cancelTrainingJob(jobId: $jobId) { __typename ... on TrainingJob { ${FIELDS} } ... on Error { message } } }`, { jobId });
    const result = data.cancelTrainingJob;
    if (result.__typename === "TrainingJob") show(result);
    else notify(result.message);
  }

  /** @param {any} next */
  function show(next) {
    job = next;
    const canCancel = allowed.has("cancelTrainingJob") && (job.status === "PENDING" || job.status === "RUNNING");
    replace(
      header,
      h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Training jobs"), " / ", job.jobId),
      h("h1", null, "Training job ", h("span", { class: "mono small" }, job.jobId), " ", h("span", { id: "job-status", dataset: { status: job.status } }, badge(job.status))),
      canCancel ? h("button", { type: "button", class: "danger", onClick: () => void cancel() }, "Cancel job…") : null,
    );
    replace(
      details,
      job.failureReason ? h("div", { class: "failure", role: "note" }, h("strong", null, "Failed: "), job.failureReason) : null,
      h(
        "dl",
        { class: "facts" },
        h("dt", null, "Model version"),
        h("dd", null, job.modelVersion ? h("a", { href: `#/models/${encodeURIComponent(job.modelVersion.modelName)}` }, `${job.modelVersion.modelName} ${job.modelVersion.version}`) : job.modelId, job.modelVersion ? [" ", badge(job.modelVersion.status)] : null),
        h("dt", null, "Dataset"), h("dd", null, job.datasetId),
        h("dt", null, "Created"), h("dd", null, when(job.createdDate)),
        h("dt", null, "Started"), h("dd", null, when(job.startedDate)),
        h("dt", null, "Finished"), h("dd", null, when(job.completedDate)),
        h("dt", null, "Logs"), h("dd", null, logsLink(job.logsUrl)),
      ),
      h("h2", null, "Hyperparameters"),
      Object.keys(job.hyperparameters ?? {}).length ? json(job.hyperparameters) : h("p", { class: "muted" }, "none"),
    );
    replace(/** @type {HTMLElement} */ (main.querySelector("#latest-metrics")), "Latest: ", metricsText(job.metrics));
  }

  async function loadHistory() {
    const events = await allPages(HISTORY, { jobId }, (d) => d.trainingJob.history);
    replace(
      timeline,
      events.map((e) =>
        e ? h("li", { dataset: { kind: e.kind } }, h("time", { datetime: e.occurredAt }, when(e.occurredAt)), " ", h("strong", null, e.kind.toLowerCase().replaceAll("_", " ")), e.previousStatus && e.previousStatus !== e.status ? ` ${e.previousStatus.toLowerCase()} → ${e.status.toLowerCase()}` : "", e.actor ? h("span", { class: "muted" }, ` by ${e.actor}`) : null)
          : h("li", { class: "muted" }, "(an event that could not be read)"),
      ),
    );
  }

  async function loadCurves() {
    if (hasSeries) {
      try {
        const data = await gql(SERIES, { jobId });
        chart.set(data.trainingJob.metricSeries.map((/** @type {any} */ s) => ({ name: s.key, points: s.points.map((/** @type {any} */ p) => [Number(p.step), p.value]) })));
        return;
      } catch (error) {
        console.warn("metric series unavailable", error);
      }
    }
    chart.set([...livePoints.entries()].map(([name, points]) => ({ name, points })));
  }

  /** @param {Record<string, unknown>} metrics */
  function record(metrics) {
    const x = Math.round((Date.now() - opened) / 100) / 10;
    for (const [key, value] of Object.entries(metrics ?? {})) {
      if (typeof value === "number") livePoints.set(key, [...(livePoints.get(key) ?? []), [x, value]]);
    }
  }

  show(job);
  record(job.metrics);
  await Promise.all([loadHistory(), loadCurves()]);

  const historyChanged = coalesce(loadHistory, 150);
  const curvesChanged = coalesce(loadCurves, 150);
  const stop = subscribe(
    `subscription JobUpdates($jobId: ID!) { trainingJobUpdates(jobId: $jobId) { kind job { ${FIELDS} } } }`,
    { jobId },
    (data) => {
      const update = data.trainingJobUpdates;
      if (update.job) {
        show(update.job);
        if (update.kind === "METRICS_REPORTED" || update.kind === "COMPLETED") record(update.job.metrics);
      }
      historyChanged();
      curvesChanged();
    },
    coalesce(async () => {
      const again = await gql(`query Job($jobId: ID!) { trainingJob(jobId: $jobId) { ${FIELDS} } }`, { jobId });
      if (again.trainingJob) show(again.trainingJob);
      await Promise.all([loadHistory(), loadCurves()]);
    }, 0),
  );
  // Where the server pushes metric points as they are reported, the curves follow them.
  const stopPoints =
    hasSeries && caps.subscription.has("trainingMetricUpdates")
      ? subscribe(
          "subscription JobMetricPoints($ids: [ID!]!) { trainingMetricUpdates(jobIds: $ids) { __typename } }",
          { ids: [jobId] },
          curvesChanged,
          curvesChanged,
        )
      : () => {};
  return () => {
    stop();
    stopPoints();
    chart.destroy();
  };
}


