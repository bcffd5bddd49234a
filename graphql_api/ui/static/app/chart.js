// @ts-check
/** Metric curves with uPlot: drag to zoom (double-click resets), log scale, EMA smoothing.
 * A long series is drawn from at most MAX_POINTS points per curve (min/max per bucket, so no
 * spike is lost); the server downsamples too where it offers metric series. */
import uPlot from "/assets/vendor/uplot@1.6.32/dist/uPlot.esm.js";
import { h, replace } from "./dom.js";

export const MAX_POINTS = 2000;
const COLOURS = ["#1f5fbf", "#b3261e", "#1b7f3b", "#8a4b00", "#6b3fa0", "#00707a", "#a0215f", "#4d5b00", "#333333", "#c25100"];

/**
 * Min/max decimation of one curve to about `max` points (kept in x order).
 * @param {number[]} xs @param {number[]} ys @param {number} max
 * @returns {[number[], number[]]}
 */
export function decimate(xs, ys, max) {
  if (xs.length <= max) return [xs, ys];
  const buckets = Math.floor(max / 2);
  const size = xs.length / buckets;
  /** @type {number[]} */ const outX = [];
  /** @type {number[]} */ const outY = [];
  for (let b = 0; b < buckets; b++) {
    const start = Math.floor(b * size);
    const end = Math.min(xs.length, Math.floor((b + 1) * size));
    let lo = start;
    let hi = start;
    for (let i = start; i < end; i++) {
      if (ys[i] < ys[lo]) lo = i;
      if (ys[i] > ys[hi]) hi = i;
    }
    for (const i of lo <= hi ? [lo, hi] : [hi, lo]) {
      if (outX.length && outX[outX.length - 1] === xs[i]) continue;
      outX.push(xs[i]);
      outY.push(ys[i]);
    }
  }
  return [outX, outY];
}

/** @param {number[]} ys @param {number} alpha  0 = none */
function smooth(ys, alpha) {
  if (!alpha) return ys;
  let last = ys[0];
  return ys.map((y) => (last = alpha * last + (1 - alpha) * y));
}

/**
 * A chart of named curves, each a list of [x, y] points, with its controls.
 * @typedef {{name: string, points: [number, number][]}} Curve
 * @param {string} xLabel
 */
export function metricChart(xLabel) {
  const box = h("div", { class: "chart" });
  const log = h("input", { type: "checkbox", id: "chart-log" });
  const smoothing = h("input", { type: "range", id: "chart-smooth", min: "0", max: "0.95", step: "0.05", value: "0" });
  const element = h(
    "figure",
    { class: "chart-figure" },
    h("div", { class: "chart-controls" }, h("label", { class: "check" }, log, "log scale"), h("label", { for: "chart-smooth" }, "smoothing"), smoothing, h("span", { class: "muted" }, "drag to zoom, double-click to reset")),
    box,
  );
  /** @type {Curve[]} */
  let curves = [];
  /** @type {uPlot | null} */
  let plot = null;

  function draw() {
    plot?.destroy();
    plot = null;
    const drawn = curves.filter((c) => c.points.length > 0);
    if (drawn.length === 0) {
      replace(box, h("p", { class: "empty" }, "No metric points yet."));
      return;
    }
    replace(box);
    const useLog = /** @type {HTMLInputElement} */ (log).checked;
    const alpha = Number(/** @type {HTMLInputElement} */ (smoothing).value);
    // One shared x axis: the union of every curve's x values; a curve without a point at an
    // x has a gap there (null), which uPlot bridges with spanGaps.
    const perCurve = drawn.map((c) => {
      const sorted = [...c.points].sort((a, b) => a[0] - b[0]);
      const ys = smooth(sorted.map((p) => p[1]), alpha);
      return decimate(sorted.map((p) => p[0]), ys, MAX_POINTS);
    });
    const xs = [...new Set(perCurve.flatMap(([x]) => x))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const data = [xs, ...perCurve.map(([x, y]) => {
      const column = new Array(xs.length).fill(null);
      x.forEach((xv, i) => (column[/** @type {number} */ (index.get(xv))] = useLog && y[i] <= 0 ? null : y[i]));
      return column;
    })];
    plot = new uPlot(
      {
        width: Math.max(320, box.clientWidth || 640),
        height: 280,
        scales: { x: { time: false }, y: { distr: useLog ? 3 : 1 } },
        axes: [{ label: xLabel }, {}],
        series: [{ label: xLabel }, ...drawn.map((c, i) => ({ label: c.name, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: true, points: { show: xs.length < 50 } }))],
        cursor: { drag: { x: true, y: false } },
      },
      /** @type {any} */ (data),
      box,
    );
  }

  log.addEventListener("change", draw);
  smoothing.addEventListener("input", draw);
  return {
    element,
    /** @param {Curve[]} next */
    set(next) {
      curves = next;
      draw();
    },
    destroy() {
      plot?.destroy();
    },
  };
}
