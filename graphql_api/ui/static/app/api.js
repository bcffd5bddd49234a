// @ts-check
/**
 * The app's only way to the server: GraphQL over HTTP (POST /graphql) and over WebSocket
 * (graphql-transport-ws, the graphql-ws client). With API keys configured the key typed in is
 * kept in sessionStorage (this tab only, gone when it closes) and sent as
 * `Authorization: Bearer <key>` on HTTP and in the WebSocket's connection_init payload.
 */
import { createClient } from "/assets/vendor/graphql-ws@6.4.2/dist/client.js";

const KEY_ITEM = "mltrain.apiKey";

/** The server answered 401: a key is needed (or the one given was refused). */
export class KeyRequired extends Error {}

/** The server answered GraphQL errors. */
export class QueryFailed extends Error {
  /** @param {{message: string, extensions?: Record<string, unknown>}[]} errors */
  constructor(errors) {
    super(errors.map((e) => e.message).join("; "));
    this.errors = errors;
  }
}

/** @returns {string | null} */
export function apiKey() {
  return sessionStorage.getItem(KEY_ITEM);
}

/** @param {string | null} key */
export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
  resetLive();
}

/**
 * One GraphQL operation over HTTP; its `data`, or a thrown KeyRequired / QueryFailed.
 * @param {string} query
 * @param {Record<string, unknown>} [variables]
 * @returns {Promise<any>}
 */
export async function gql(query, variables = {}) {
  /** @type {Record<string, string>} */
  const headers = { "content-type": "application/json", accept: "application/json" };
  const key = apiKey();
  if (key) headers.authorization = `Bearer ${key}`;
  const response = await fetch("/graphql", {
    method: "POST",
    headers,
    body: JSON.stringify({ query, variables }),
  });
  if (response.status === 401) throw new KeyRequired("A valid API key is required.");
  const body = await response.json();
  if (body.errors?.length) throw new QueryFailed(body.errors);
  return body.data;
}

/**
 * Every page of a connection, `first` at a time: lists are never cut silently.
 * @param {string} query  an operation with `$after: String` whose data has the connection
 * @param {Record<string, unknown>} variables
 * @param {(data: any) => {edges: {node: any}[], pageInfo: {hasNextPage: boolean, endCursor: string | null}}} pick
 * @returns {Promise<any[]>}
 */
export async function allPages(query, variables, pick) {
  const nodes = [];
  /** @type {string | null} */
  let after = null;
  for (;;) {
    const connection = pick(await gql(query, { ...variables, after }));
    nodes.push(...connection.edges.map((edge) => edge.node));
    if (!connection.pageInfo.hasNextPage) return nodes;
    after = connection.pageInfo.endCursor;
  }
}

// ---- live: one WebSocket for every subscription of the page ----

/** @type {import("/assets/vendor/graphql-ws@6.4.2/dist/client.js").Client | null} */
let client = null;
/** @type {Set<(state: string) => void>} */
const liveListeners = new Set();

/** @param {(state: string) => void} listener  "live", "connecting" or "offline" */
export function onLiveState(listener) {
  liveListeners.add(listener);
}

/** @param {string} state */
function announce(state) {
  for (const listener of liveListeners) listener(state);
}

function resetLive() {
  client?.dispose();
  client = null;
}

function liveClient() {
  if (client) return client;
  const url = new URL("/graphql", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  client = createClient({
    url: url.toString(),
    connectionParams: () => {
      const key = apiKey();
      return key ? { Authorization: `Bearer ${key}` } : {};
    },
    lazy: true,
    keepAlive: 10_000,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    on: {
      connecting: () => announce("connecting"),
      connected: () => announce("live"),
      closed: () => announce("offline"),
    },
  });
  return client;
}

/**
 * Subscribe; `onData` gets each event's `data`. If the server ends the subscription (it ends
 * one that falls too far behind: SUBSCRIBER_TOO_SLOW, docs/subscriptions.md) it is opened
 * again a second later and `onResync` runs, since events may have been missed: the page
 * reloads what it shows. Returns the function that stops it.
 * @param {string} query
 * @param {Record<string, unknown>} variables
 * @param {(data: any) => void} onData
 * @param {() => void} [onResync]
 * @returns {() => void}
 */
export function subscribe(query, variables, onData, onResync) {
  let stopped = false;
  /** @type {() => void} */
  let unsubscribe = () => {};
  const open = () => {
    unsubscribe = liveClient().subscribe(
      { query, variables },
      {
        next: (message) => {
          if (message.data) onData(message.data);
        },
        error: (error) => {
          // GraphQL errors for the operation itself (it does not validate): asking again
          // would get the same answer. Anything else is the connection: open it again.
          if (Array.isArray(error)) return console.warn("subscription refused", error);
          console.warn("subscription ended; reopening", error);
          again();
        },
        complete: () => again(),
      },
    );
  };
  const again = () => {
    if (stopped) return;
    setTimeout(() => {
      if (stopped) return;
      open();
      onResync?.();
    }, 1000);
  };
  open();
  return () => {
    stopped = true;
    unsubscribe();
  };
}

// ---- what this server offers, and what this key may do ----

/**
 * @typedef {{
 *   query: Set<string>, mutation: Set<string>, subscription: Set<string>,
 *   jobFields: Set<string>, jobFilters: Set<string>, versionFields: Set<string>,
 *   introspection: boolean,
 * }} Capabilities
 */

const CAPABILITIES = `query Capabilities {
  __schema {
    queryType { fields { name } }
    mutationType { fields { name } }
    subscriptionType { fields { name } }
  }
  job: __type(name: "TrainingJob") { fields { name } }
  jobFilter: __type(name: "TrainingJobFilter") { inputFields { name } }
  version: __type(name: "ModelVersion") { fields { name } }
}`;

/**
 * The server's root fields and the fields of jobs and versions, by introspection, so pages
 * use APIs (metric series, aliases, ...) where the server has them and leave them out where
 * it has not. With introspection turned off: the API this app was written against.
 * @returns {Promise<Capabilities>}
 */
export async function capabilities() {
  /** @param {{name: string}[] | undefined | null} list */
  const names = (list) => new Set((list ?? []).map((f) => f.name));
  try {
    const data = await gql(CAPABILITIES);
    return {
      query: names(data.__schema.queryType?.fields),
      mutation: names(data.__schema.mutationType?.fields),
      subscription: names(data.__schema.subscriptionType?.fields),
      jobFields: names(data.job?.fields),
      jobFilters: names(data.jobFilter?.inputFields),
      versionFields: names(data.version?.fields),
      introspection: true,
    };
  } catch (error) {
    if (error instanceof KeyRequired) throw error;
    return {
      query: new Set(["trainingJobs", "modelVersions", "trainingJob", "productionModelVersion"]),
      mutation: new Set(["promoteModelVersion", "archiveModelVersion", "cancelTrainingJob"]),  // the seed's
      subscription: new Set(["trainingJobUpdates", "modelVersionUpdates"]),
      jobFields: new Set(),
      jobFilters: new Set(["statuses", "modelIds", "datasetIds"]),
      versionFields: new Set(),
      introspection: false,
    };
  }
}

/**
 * The mutations behind the app's buttons, each with arguments that name no record, so that
 * calling it changes nothing. Those from other releases are probed only where the server has
 * them.
 */
export const PROBES = {
  promoteModelVersion: 'modelId: "", to: TESTING',
  archiveModelVersion: 'modelId: ""',
  cancelTrainingJob: 'jobId: ""',
  rollbackModelVersion: 'modelName: "", toModelId: "", reason: ""',
  setModelAlias: 'modelName: "", alias: "", modelId: ""',
};

/**
 * Which of the app's actions this key may call. The server checks a key's role on each root
 * mutation before its resolver runs and answers ForbiddenError without changing anything, so
 * the app calls each with arguments that name no record: a ForbiddenError means "hidden",
 * anything else (NotFoundError, ValidationError) means allowed. No key (open access):
 * everything the server has is allowed.
 * @param {Capabilities} caps
 * @returns {Promise<{allowed: Set<string>, role: string | null}>}
 */
export async function permissions(caps) {
  const actions = Object.keys(PROBES).filter((name) => caps.mutation.has(name));
  if (!apiKey()) return { allowed: new Set(actions), role: null };
  const fields = actions.map(
    (name) => `${name}(${PROBES[/** @type {keyof typeof PROBES} */ (name)]}) { __typename ... on ForbiddenError { role } }`,
  );
  const data = await gql(`mutation PermissionProbe {\n  ${fields.join("\n  ")}\n}`);
  const allowed = new Set();
  /** @type {string | null} */
  let role = null;
  for (const action of actions) {
    const answer = data[action];
    if (answer.__typename === "ForbiddenError") role = answer.role;
    else if (answer.__typename !== "UnauthenticatedError") allowed.add(action);
  }
  return { allowed, role: role ?? (allowed.size === actions.length ? "operator or admin" : null) };
}
