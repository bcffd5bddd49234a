// @ts-check
/**
 * The app: a hash router over three areas (dashboard, training jobs, model registry), the API
 * key prompt, the live-connection indicator and the confirmation dialog.
 */
import { apiKey, capabilities, KeyRequired, onLiveState, permissions, setApiKey } from "./api.js";
import { h, replace } from "./dom.js";
import { compare } from "./views/compare.js";
import { dashboard } from "./views/dashboard.js";
import { jobPage } from "./views/job.js";
import { jobList } from "./views/jobs.js";
import { modelList, modelPage } from "./views/models.js";

/**
 * What every page gets: the server's capabilities, this key's allowed actions, helpers.
 * @typedef {{
 *   caps: import("./api.js").Capabilities,
 *   allowed: Set<string>,
 *   confirm: (title: string, text: string, action: string, field?: {label: string, describe?: (value: string) => string}) => Promise<boolean | string>,
 *   notify: (text: string) => void,
 *   params: URLSearchParams,
 * }} Context
 * @typedef {(main: HTMLElement, context: Context, ...path: string[]) => Promise<(() => void) | void>} View
 */

/** @type {[RegExp, View, string][]} */
const ROUTES = [
  [/^\/$/, dashboard, "dashboard"],
  [/^\/jobs$/, jobList, "jobs"],
  [/^\/jobs\/([^/]+)$/, jobPage, "jobs"],
  [/^\/compare$/, compare, "jobs"],
  [/^\/models$/, modelList, "models"],
  [/^\/models\/([^/]+)$/, modelPage, "models"],
];

const main = /** @type {HTMLElement} */ (document.getElementById("main"));
const notice = /** @type {HTMLElement} */ (document.getElementById("notice"));
const dialog = /** @type {HTMLDialogElement} */ (document.getElementById("confirm"));
/** @type {(() => void) | void} */
let leave;
/** @type {{caps: import("./api.js").Capabilities, allowed: Set<string>, role: string | null} | null} */
let session = null;

/** @param {string} text */
function notify(text) {
  notice.textContent = text;
  notice.classList.toggle("shown", Boolean(text));
}

/**
 * Ask before a change; the text says what will happen. With `field`, the dialog also asks for
 * one value (a reason, an alias), required, and the text follows what is typed. Resolves to
 * false when cancelled, else true, or the value typed.
 * @param {string} title @param {string} text @param {string} action
 * @param {Field} [field]
 * @returns {Promise<boolean | string>}
 * @typedef {{label: string, describe?: (value: string) => string}} Field
 */
function confirm(title, text, action, field) {
  const box = /** @type {HTMLElement} */ (document.getElementById("confirm-field"));
  const input = /** @type {HTMLInputElement} */ (document.getElementById("confirm-input"));
  const textBox = /** @type {HTMLElement} */ (document.getElementById("confirm-text"));
  replace(/** @type {HTMLElement} */ (document.getElementById("confirm-title")), title);
  replace(textBox, text);
  replace(/** @type {HTMLElement} */ (document.getElementById("confirm-ok")), action);
  box.hidden = !field;
  input.required = Boolean(field);
  input.value = "";
  input.oninput = field?.describe ? () => replace(textBox, field.describe?.(input.value.trim()) ?? text) : null;
  if (field) replace(/** @type {HTMLElement} */ (document.getElementById("confirm-label")), field.label);
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "ok" ? (field ? input.value.trim() : true) : false),
      { once: true },
    );
  });
}

/** @param {boolean} refused  the key given was not accepted */
function askForKey(refused) {
  const input = h("input", {
    id: "api-key",
    type: "password",
    autocomplete: "off",
    required: true,
    "aria-describedby": "api-key-help",
  });
  replace(
    main,
    h(
      "section",
      { class: "card narrow" },
      h("h1", null, "API key"),
      h(
        "p",
        { id: "api-key-help" },
        refused
          ? "That key was not accepted. Enter another."
          : "This server requires an API key. It is kept for this browser tab only, never stored on disk.",
      ),
      h(
        "form",
        {
          onSubmit: (/** @type {Event} */ event) => {
            event.preventDefault();
            setApiKey(/** @type {HTMLInputElement} */ (input).value.trim());
            session = null;
            void route();
          },
        },
        h("label", { for: "api-key" }, "Key"),
        input,
        h("button", { type: "submit", class: "primary" }, "Use this key"),
      ),
    ),
  );
  input.focus();
}

function showWho() {
  const who = /** @type {HTMLElement} */ (document.getElementById("who"));
  if (!apiKey()) return replace(who);
  replace(
    who,
    session?.role ? `role: ${session.role} ` : "",
    h(
      "button",
      {
        type: "button",
        class: "link",
        onClick: () => {
          setApiKey(null);
          session = null;
          void route();
        },
      },
      "Forget key",
    ),
  );
}

async function route() {
  if (typeof leave === "function") leave();
  leave = undefined;
  notify("");
  const [path, query = ""] = (location.hash.slice(1) || "/").split("?");
  const match = ROUTES.map(([pattern, view, nav]) => ({ found: pattern.exec(path), view, nav })).find(
    (r) => r.found,
  );
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link instanceof HTMLElement && link.dataset.nav === match?.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!match?.found) {
    replace(main, h("h1", null, "Not found"), h("p", null, h("a", { href: "#/" }, "Back to the dashboard")));
    return;
  }
  try {
    if (!session) {
      const caps = await capabilities();
      const { allowed, role } = await permissions(caps);
      session = { caps, allowed, role };
    }
    showWho();
    const context = {
      caps: session.caps,
      allowed: session.allowed,
      confirm,
      notify,
      params: new URLSearchParams(query),
    };
    const args = match.found.slice(1).map((part) => decodeURIComponent(part));
    leave = await match.view(main, context, ...args);
  } catch (error) {
    if (error instanceof KeyRequired) {
      const refused = Boolean(apiKey());
      setApiKey(null);
      session = null;
      showWho();
      askForKey(refused);
      return;
    }
    replace(main, h("h1", null, "Something went wrong"), h("p", { class: "error" }, String(error)));
  }
}

onLiveState((state) => {
  const live = /** @type {HTMLElement} */ (document.getElementById("live"));
  live.textContent = state === "live" ? "● live" : state === "connecting" ? "connecting…" : "○ not live";
  live.dataset.state = state;
});
window.addEventListener("hashchange", () => {
  void route().then(() => main.focus({ preventScroll: true }));
});
void route();
