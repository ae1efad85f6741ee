// The REST client: one function per endpoint, errors as ApiError with the server's message.
import config from "./config.js";

const KEY_STORAGE = "computer-use.anthropic-key";
const TOKEN_STORAGE = "computer-use.api-token";
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * The API's origin (and path prefix, if any), without a trailing slash.
 * `?api=` is honoured only for loopback addresses: a link could otherwise point this console,
 * and the API key someone pastes into it, at a stranger's server. config.js may name any.
 */
function resolveApiBase() {
  const fromQuery = new URLSearchParams(window.location.search).get("api");
  if (fromQuery) {
    try {
      const url = new URL(fromQuery);
      if ((url.protocol === "http:" || url.protocol === "https:") &&
          LOOPBACK_HOSTS.has(url.hostname)) {
        return url.href.replace(/\/+$/, "");
      }
    } catch {
      // not a URL: fall through to the configured base
    }
  }
  const configured = String(config.apiBase || "").trim();
  return (configured || window.location.origin).replace(/\/+$/, "");
}

export const apiBase = resolveApiBase();

/** True when the API is on another origin than this page (shown in the header). */
export const apiIsRemote = new URL(apiBase).origin !== window.location.origin;

/** An absolute URL for a server path such as "/vnc/…" or an image URL from an event. */
export function absoluteUrl(path) {
  return new URL(path, apiBase + "/").href;
}

export class ApiError extends Error {
  constructor(status, code, message, { details = null, retryAfter = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }

  /** The server requires an API token (API_TOKENS) and this request had none it accepts. */
  get needsApiToken() {
    return this.status === 401 && this.code === "unauthorized";
  }

  /** The server wants an Anthropic key that neither it nor this request has. */
  get needsApiKey() {
    if (this.status !== 400 && this.status !== 401) return false;
    return /api[_ -]?key/i.test(`${this.code} ${this.message}`);
  }
}

// --- the user's own Anthropic key: this tab only (sessionStorage), never localStorage ---

// The server's own API token (API_TOKENS) is kept the same way.

const memory = new Map();

function stored(name) {
  try {
    return window.sessionStorage.getItem(name) || memory.get(name) || null;
  } catch {
    return memory.get(name) || null; // storage disabled: keep it in memory
  }
}

function store(name, value) {
  memory.set(name, value);
  try {
    window.sessionStorage.setItem(name, value);
  } catch {
    // memory only
  }
}

function forget(name) {
  memory.delete(name);
  try {
    window.sessionStorage.removeItem(name);
  } catch {
    // nothing stored
  }
}

export const getApiKey = () => stored(KEY_STORAGE);
export const setApiKey = (key) => store(KEY_STORAGE, key);
export const clearApiKey = () => forget(KEY_STORAGE);
export const getApiToken = () => stored(TOKEN_STORAGE);
export const setApiToken = (token) => store(TOKEN_STORAGE, token);
export const clearApiToken = () => forget(TOKEN_STORAGE);

// Signed stream URLs (auth on) by session id, from every session the server returned:
// EventSource cannot send the Authorization header, so it uses these.
const signedStreams = new Map();

function remember(payload) {
  const sessions = payload && Array.isArray(payload.items) ? payload.items : [payload];
  for (const session of sessions) {
    if (session && session.id && String(session.stream_url || "").includes("token=")) {
      signedStreams.set(session.id, session.stream_url);
    }
  }
  return payload;
}

// --- requests ---

async function request(method, path, { body, withKey = false, query } = {}) {
  const url = new URL(apiBase + path);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
  }
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const key = withKey ? getApiKey() : null;
  if (key) headers["X-Anthropic-API-Key"] = key;
  const token = getApiToken();
  if (token) headers.Authorization = `Bearer ${token}`;

  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    // fetch rejects only when no HTTP answer came back at all.
    throw new ApiError(0, "network_error", `Cannot reach the server at ${apiBase}.`);
  }
  if (response.status === 204) return null;

  const text = await response.text();
  let payload = null;
  try {
    payload = text ? JSON.parse(text) : null;
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const error = payload && typeof payload.error === "object" ? payload.error : {};
    const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    throw new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || `${method} ${path} failed with HTTP ${response.status}.`,
      { details: error.details ?? null, retryAfter: Number.isFinite(retryAfter) ? retryAfter : null },
    );
  }
  return payload;
}

const sessionPath = (id) => `/api/v1/sessions/${encodeURIComponent(id)}`;

export const api = {
  config: () => request("GET", "/api/v1/config"),
  models: () => request("GET", "/api/v1/models"),
  health: () => request("GET", "/api/v1/health"),
  listSessions: ({ limit = 100, offset = 0 } = {}) =>
    request("GET", "/api/v1/sessions", { query: { limit, offset } }).then(remember),
  createSession: ({ title, model, record = false, ask = false }) =>
    request("POST", "/api/v1/sessions", {
      body: {
        ...(title && { title }), ...(model && { model }), ...(record ? { record: true } : {}),
        ...(ask ? { approval: "ask" } : {}),
      },
    }).then(remember),
  getSession: (id) => request("GET", sessionPath(id)).then(remember),
  deleteSession: (id) => request("DELETE", sessionPath(id)),
  sendMessage: (id, content) =>
    request("POST", `${sessionPath(id)}/messages`, { body: { content }, withKey: true }),
  cancel: (id) => request("POST", `${sessionPath(id)}/cancel`),
  answerApproval: (id, approvalId, decision, remember = false) =>
    request("POST", `${sessionPath(id)}/approvals/${encodeURIComponent(approvalId)}`, {
      body: { decision, remember },
    }),
  // Taking control holds the agent at its next step; handing back lets it go on.
  takeControl: (id) => request("POST", `${sessionPath(id)}/pause`, { body: { take_control: true } }),
  handBack: (id) => request("POST", `${sessionPath(id)}/resume`),

  /**
   * A viewer URL that lets the user drive the desktop (`vnc_url` is view-only): the session
   * read with `?interactive=true` adds `vnc_interactive_url`. Null when there is none.
   */
  async interactiveVncUrl(id) {
    const session = await request("GET", sessionPath(id), { query: { interactive: "true" } });
    return session.vnc_interactive_url || null;
  },

  /**
   * The SSE endpoint, resuming after `lastEventId`: a new EventSource cannot send the
   * Last-Event-ID header, so the first request says it with `?after=`. With API_TOKENS on,
   * the signed stream_url of the session's last read (re-read before each reopen).
   */
  streamUrl(id, lastEventId) {
    const url = new URL(apiBase + (signedStreams.get(id) || `${sessionPath(id)}/stream`));
    if (lastEventId > 0) url.searchParams.set("after", String(lastEventId));
    return url.href;
  },
};
