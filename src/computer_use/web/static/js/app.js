// The console: wires the three panels to the API and to the selected session's event stream.
//
// Selection lives in the URL (#/sessions/<id>) so a reload comes back to the same session:
// its history is rebuilt from GET /sessions/{id}, then the stream resumes after the last
// event that history covers (the session's `last_event_id`; without it the stream replays
// everything and the conversation skips what history already shows).
import { absoluteUrl, api, apiBase, apiIsRemote, ApiError } from "./api.js";
import { ChatView } from "./chat.js";
import { DesktopPanel } from "./desktop.js";
import { $, formatDuration } from "./dom.js";
import { KeyForm } from "./keyform.js";
import { TokenForm } from "./tokenform.js";
import { Banner, confirmInDialog, Lightbox } from "./notices.js";
import { Conversation } from "./render.js";
import { SessionList } from "./sessions.js";
import { SessionStream } from "./sse.js";
import { installExtras } from "./extras.js";
import { PersonInTheLoop } from "./approvals.js";

const LIST_REFRESH_MS = 10_000;

const state = {
  config: null,
  selectedId: null,
  session: null, // detail of the selected session (without messages)
  processing: false,
  stopping: false,
  stream: null,
  selectSeq: 0, // guards against a slow load finishing after the user picked another session
  pendingPrompt: null, // a message refused for want of an API key, re-sent once one is given
  asking: false, // the agent's last run ended with a question
};

const els = {
  serverInfo: $("server-info"),
  createForm: $("create-form"),
  createTitle: $("create-title"),
  createModel: $("create-model"),
  createRecord: $("create-record"),
  createAsk: $("create-ask"),
  createButton: $("create-button"),
  createError: $("create-error"),
  modelOptions: $("model-options"),
  conversation: $("conversation"),
  composer: $("composer"),
  suggestions: $("suggestions"),
  prompt: $("prompt"),
  sendButton: $("send-button"),
  stopButton: $("stop-button"),
};

const apiOrigin = new URL(apiBase).origin;
const chat = new ChatView({
  title: $("chat-title"),
  meta: $("chat-meta"),
  streamStateEl: $("stream-state"),
  conversation: els.conversation,
  welcome: $("welcome"),
  facts: $("session-facts"),
  prompt: els.prompt,
  sendButton: els.sendButton,
  stopButton: els.stopButton,
  suggestions: els.suggestions,
});
const banner = new Banner($("banner"));
const lightbox = new Lightbox($("lightbox"), $("lightbox-image"), $("lightbox-caption"));
const keyForm = new KeyForm(
  {
    form: $("key-form"),
    reason: $("key-reason"),
    input: $("key-input"),
    status: $("key-status"),
    forget: $("key-forget"),
    dismiss: $("key-dismiss"),
  },
  () => {
    // Re-send the message the server refused for want of a key.
    if (state.pendingPrompt && state.selectedId) {
      els.prompt.value = state.pendingPrompt;
      state.pendingPrompt = null;
      sendMessage();
    }
  },
);

const tokenForm = new TokenForm(
  {
    form: $("token-form"),
    reason: $("token-reason"),
    input: $("token-input"),
    status: $("token-status"),
    forget: $("token-forget"),
  },
  () => {
    banner.online();
    loadConfig().then(refreshSessions);
  },
);

/** A 401 for want of the server's API token: ask for it. True when that was the error. */
function askForToken(error) {
  if (!(error instanceof ApiError && error.needsApiToken)) return false;
  tokenForm.ask(error.message);
  return true;
}

const conversation = new Conversation(els.conversation, {
  // Screenshots come from our own API only; anything else is not loaded.
  imageSrc: (url) => {
    try {
      const src = new URL(url, apiBase + "/");
      return src.origin === apiOrigin ? src.href : null;
    } catch {
      return null;
    }
  },
  onOpenImage: (src, caption) => lightbox.open(src, caption),
});

// Approvals, questions, paused / resumed notes (approvals.js).
const person = new PersonInTheLoop(els.conversation, {
  answer: (approvalId, decision, remember) =>
    api.answerApproval(state.selectedId, approvalId, decision, remember),
  onError: (message) => conversation.addError(message),
  onQuestion: () => {
    state.asking = true; // the composer says the next message is the answer
    renderHeader();
  },
});

const sessionList = new SessionList({
  listEl: $("session-list"),
  countEl: $("session-count"),
  emptyEl: $("session-empty"),
  onSelect: (id) => navigateTo(id),
  onDelete: (id) => confirmDelete(id),
});

const desktop = new DesktopPanel(
  {
    iframe: $("desktop-iframe"),
    placeholder: $("desktop-placeholder"),
    controlButton: $("control-button"),
    reloadButton: $("desktop-reload"),
    openLink: $("desktop-open"),
    badge: $("desktop-mode"),
    note: $("desktop-note"),
  },
  {
    interactiveUrl: (id) => api.interactiveVncUrl(id),
    fetchSession: (id) => api.getSession(id),
    takeControl: (id) => api.takeControl(id).then(() => refreshSelected(id)),
    handBack: (id) => api.handBack(id).then(() => refreshSelected(id)),
  },
);

// Files, recording and trajectory (extras.js).
const extras = installExtras({ imageSrc: (url) => conversation.imageSrc(url) });

// --- configuration ---

async function loadConfig() {
  try {
    state.config = await api.config();
  } catch (error) {
    if (askForToken(error)) return;
    if (!banner.reportNetwork(error)) banner.show(`Could not read the server configuration: ${error.message}`);
    els.serverInfo.textContent = apiIsRemote ? apiBase : "Server unavailable";
    return;
  }
  const config = state.config;
  const where = apiIsRemote ? `${new URL(apiBase).host} · ` : "";
  els.serverInfo.textContent = `${where}default ${config.default_model}`;
  els.createModel.placeholder = config.default_model;
  await loadModels(config.default_model);
  keyForm.setServerHasKey(Boolean(config.server_api_key_configured));
  if (config.screen_width && config.screen_height) {
    // CSSOM custom properties, not a style attribute: allowed under the strict CSP.
    const root = document.documentElement;
    root.style.setProperty("--desktop-w", String(config.screen_width));
    root.style.setProperty("--desktop-h", String(config.screen_height));
  }
}

// The model choice: the server's catalogue minus retired models (any other id may be typed).
async function loadModels(defaultModel) {
  let catalogue = [];
  try {
    catalogue = (await api.models()).items.filter((m) => m.status !== "retired");
  } catch {
    // An older server without the catalogue: offer the default only.
  }
  const label = (m) => `${m.name} · ${m.status} · $${m.input_price_per_mtok} / $${m.output_price_per_mtok} per MTok`;
  const options = catalogue.map((m) => new Option(label(m), m.id));
  if (!catalogue.some((m) => m.id === defaultModel)) options.unshift(new Option(defaultModel, defaultModel));
  els.modelOptions.replaceChildren(...options);
}

// --- sessions list ---

async function refreshSessions() {
  let page;
  try {
    page = await api.listSessions({ limit: 200 });
  } catch (error) {
    if (askForToken(error)) return;
    if (!banner.reportNetwork(error)) banner.show(`Could not list sessions: ${error.message}`);
    return;
  }
  banner.online();
  sessionList.update(page.items, page.total);
  const current = state.selectedId && page.items.find((s) => s.id === state.selectedId);
  if (current) applySessionUpdate(current);
}

els.createForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  // No title: the server names the session after its first message.
  const title = els.createTitle.value.trim() || undefined;
  const model = els.createModel.value.trim() || undefined;
  els.createButton.disabled = true;
  els.createButton.textContent = "Starting a desktop…";
  els.createError.hidden = true;
  try {
    const record = els.createRecord.checked;
    const ask = els.createAsk.checked;
    const session = await api.createSession({ title, model, record, ask });
    els.createTitle.value = "";
    await refreshSessions();
    navigateTo(session.id);
  } catch (error) {
    askForToken(error);
    let message = error.message;
    if (error.status === 429 && error.retryAfter) {
      message += ` Try again in ${formatDuration(error.retryAfter)}.`;
    }
    els.createError.textContent = message;
    els.createError.hidden = false;
  } finally {
    els.createButton.disabled = false;
    els.createButton.textContent = "New session";
  }
});

async function confirmDelete(id) {
  const session = sessionList.get(id);
  const title = session ? session.title : "this session";
  const text = `“${title}” and its desktop, files and history will be removed. This cannot be undone.`;
  if (!(await confirmInDialog($("confirm-dialog"), $("confirm-text"), text))) return;
  // Let go of its stream and viewer first, so neither watches the desktop being torn down.
  if (state.selectedId === id) navigateTo(null);
  try {
    await api.deleteSession(id);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) {
      banner.show(`Could not delete “${title}”: ${error.message}`);
      return;
    }
  }
  await refreshSessions();
}

// --- selection ---

function navigateTo(id) {
  const hash = id ? `#/sessions/${id}` : "";
  if (window.location.hash !== hash) {
    if (hash) window.location.hash = hash;
    else history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  selectSession(id);
}

function idFromHash() {
  const match = /^#\/sessions\/([\w-]+)$/.exec(window.location.hash);
  return match ? match[1] : null;
}

async function selectSession(id) {
  if (id === state.selectedId && state.session) return;
  const seq = ++state.selectSeq;
  closeStream();
  state.selectedId = id;
  state.session = null;
  state.stopping = false;
  sessionList.select(id);
  conversation.reset();
  person.reset();
  state.asking = false;
  if (!id) {
    desktop.show(null);
    extras.show(null);
    renderHeader();
    return;
  }
  chat.loading(sessionList.get(id)?.title);
  let detail;
  try {
    detail = await api.getSession(id);
  } catch (error) {
    if (seq !== state.selectSeq) return;
    if (error instanceof ApiError && error.status === 404) {
      banner.show("That session no longer exists.", "info");
      navigateTo(null);
      refreshSessions();
    } else if (!banner.reportNetwork(error)) {
      conversation.addError(`Could not load the session: ${error.message}`);
    }
    return;
  }
  if (seq !== state.selectSeq) return;
  const { messages, ...session } = detail;
  state.session = session;
  state.processing = Boolean(session.processing);
  conversation.renderHistory(messages);
  const hasCursor = Number.isInteger(session.last_event_id);
  if (!hasCursor) conversation.guardAgainstReplay(messages);
  if (state.processing) conversation.startRun();
  desktop.show(session);
  extras.show(session);
  renderHeader();
  openStream(id, hasCursor ? session.last_event_id : 0);
}

/** Newer facts about the selected session (list refresh, status event, complete). */
function applySessionUpdate(session) {
  if (!state.session || session.id !== state.selectedId) return;
  state.session = { ...state.session, ...session };
  if (typeof session.processing === "boolean") {
    state.processing = session.processing;
    if (!session.processing) state.stopping = false;
  }
  desktop.update(state.session);
  extras.show(state.session);
  renderHeader();
}

async function refreshSelected(id) {
  try {
    const { messages: _history, ...session } = await api.getSession(id);
    applySessionUpdate(session);
  } catch (error) {
    banner.reportNetwork(error);
  }
}

// --- the event stream ---

function openStream(id, lastEventId) {
  state.stream = new SessionStream({
    url: (after) => api.streamUrl(id, after),
    lastEventId,
    onEvent: (type, data) => handleEvent(id, type, data),
    onState: (streamState) => chat.streamState(streamState),
    // The browser gave up on the stream: reopen it only while the session still exists.
    shouldReconnect: async () => {
      try {
        await api.getSession(id);
        return true;
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          if (state.selectedId === id) navigateTo(null);
          refreshSessions();
          return false;
        }
        return true;
      }
    },
  });
  state.stream.start();
}

function closeStream() {
  if (state.stream) state.stream.stop();
  state.stream = null;
  chat.streamState("closed");
}

function handleEvent(id, type, data) {
  if (id !== state.selectedId) return;
  if (type === "status") {
    const status = String(data.status || "");
    const changed = state.session && state.session.status !== status;
    sessionList.patch(id, { status });
    applySessionUpdate({ id, status, processing: status === "processing" });
    // The desktop came up, failed or was released: re-read the session for its viewer URL.
    if (changed && status !== "processing") refreshSelected(id);
    return;
  }
  conversation.applyEvent(type, data);
  if (data.totals && data.totals.session) {  // usage and message_complete: live totals
    applySessionUpdate({ id, spent: data.totals.session });
  }
  person.applyEvent(type, data);
  if (type === "paused" || type === "resumed") refreshSelected(id);
  if (type === "message_complete") {
    extras.refreshFiles(); // the agent may have downloaded or written something
    applySessionUpdate({ id, processing: false, status: "active" });
    refreshSessions(); // status and TTL from the server
  } else if (type === "error" && data.code === "authentication_error") {
    keyForm.ask(data.message || "The Anthropic API rejected the key.");
  }
  renderHeader();
}

// --- sending and stopping ---

async function sendMessage() {
  const id = state.selectedId;
  const text = els.prompt.value;
  if (!id || !text.trim() || state.processing) return;
  els.sendButton.disabled = true;
  // Shown before the request: the run's first events may arrive before its 202 does.
  state.asking = false;
  const bubble = conversation.addUserMessage(text);
  bubble.classList.add("pending");
  conversation.startRun();
  try {
    await api.sendMessage(id, text);
  } catch (error) {
    bubble.remove();
    conversation.startRun(false);
    if (id !== state.selectedId) return;
    if (askForToken(error)) {
      state.pendingPrompt = text;
    } else if (error instanceof ApiError && error.needsApiKey) {
      state.pendingPrompt = text;
      keyForm.ask(error.message);
      keyForm.focus();
    } else {
      let message = error.message;
      if (error.retryAfter) message += ` Try again in ${formatDuration(error.retryAfter)}.`;
      conversation.addError(message);
      banner.reportNetwork(error);
    }
    renderHeader();
    return;
  }
  bubble.classList.remove("pending");
  if (id !== state.selectedId) return;
  els.prompt.value = "";
  applySessionUpdate({ id, processing: true, status: "processing" });
  sessionList.patch(id, { status: "processing" });
}

async function stopRun() {
  const id = state.selectedId;
  if (!id) return;
  state.stopping = true;
  renderHeader();
  try {
    const result = await api.cancel(id);
    if (!result.cancelled) {
      // The server had nothing to stop: trust its view of the session.
      state.stopping = false;
      const { messages: _history, ...session } = await api.getSession(id);
      applySessionUpdate(session);
      if (session.processing && id === state.selectedId) {
        conversation.addError("The server found no run to stop, yet the session is still working.");
      }
    }
  } catch (error) {
    state.stopping = false;
    conversation.addError(`Could not stop the agent: ${error.message}`);
    renderHeader();
  }
}

els.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendMessage();
});

els.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendMessage();
  }
});

els.stopButton.addEventListener("click", stopRun);

els.suggestions.addEventListener("click", (event) => {
  const chip = event.target.closest("[data-prompt]");
  if (!chip) return;
  els.prompt.value = chip.dataset.prompt;
  els.prompt.focus();
});

function renderHeader() {
  chat.render({
    session: state.session,
    selected: Boolean(state.selectedId),
    processing: state.processing,
    stopping: state.stopping,
    empty: conversation.isEmpty,
    asking: state.asking,
  });
}

// --- start ---

// Back/forward and edited URLs; navigateTo() has already handled its own hash changes.
window.addEventListener("hashchange", () => {
  const id = idFromHash();
  if (id !== state.selectedId) selectSession(id);
});

async function start() {
  renderHeader();
  await loadConfig();
  await refreshSessions();
  const id = idFromHash();
  if (id) await selectSession(id);
  window.setInterval(refreshSessions, LIST_REFRESH_MS);
  window.setInterval(() => sessionList.tick(), 1000);
  document.body.dataset.ready = "true"; // for tests and anyone scripting the page
}

start();

// Exposed for debugging in the browser console; holds no secret (the key is not in `state`).
window.computerUse = { state, apiBase, absoluteUrl };
