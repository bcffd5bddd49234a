// @ts-check
/** Tiny DOM helpers: the app builds its pages from these, no framework, no build step. */

/**
 * @typedef {string | number | Node | null | undefined | false | Child[]} Child
 */

/**
 * An element with properties, listeners (`onClick`) and children. No `style` attribute:
 * the page's Content-Security-Policy allows styles from app.css only.
 * @param {string} tag
 * @param {Record<string, unknown> | null} [props]
 * @param {...Child} children
 * @returns {HTMLElement}
 */
export function h(tag, props, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2).toLowerCase(), /** @type {EventListener} */ (value));
    } else if (name === "class") {
      element.className = String(value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (name === "value" || name === "checked" || name === "selected") {
      /** @type {any} */ (element)[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

/** @param {Node} parent @param {Child[]} children */
export function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. @param {Element} element @param {...Child} children */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

/** A date as the reader's local time, to the second, or an em dash. @param {string | null | undefined} iso */
export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

/** A metric value: integers as they are, others to 4 significant digits. @param {unknown} value */
export function number(value) {
  if (typeof value !== "number") return JSON.stringify(value);
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
}

/** `loss 0.31 · epoch 4` for a metrics object. @param {Record<string, unknown>} metrics */
export function metricsText(metrics) {
  const entries = Object.entries(metrics ?? {});
  if (entries.length === 0) return "—";
  return entries.map(([key, value]) => `${key} ${number(value)}`).join(" · ");
}

/** A status badge, colour and text both saying it. @param {string} status */
export function badge(status) {
  return h("span", { class: `badge s-${status.toLowerCase()}` }, status.toLowerCase());
}

/**
 * Coalesce bursts of live events into at most one run of `fn` per `ms`: the first event
 * schedules a run `ms` later, later ones until it starts ride along, and runs never overlap
 * (so an older answer never overwrites a newer one). Unlike a debounce it also fires under a
 * steady stream (50 events/s), within `ms` plus one load.
 * @param {() => Promise<void>} fn @param {number} ms
 * @returns {() => void}
 */
export function coalesce(fn, ms) {
  let scheduled = false;
  /** @type {Promise<void>} */
  let running = Promise.resolve();
  return () => {
    if (scheduled) return;
    scheduled = true;
    setTimeout(() => {
      running = running
        .then(() => {
          scheduled = false;
          return fn();
        })
        .catch((error) => console.warn("live reload failed", error));
    }, ms);
  };
}
