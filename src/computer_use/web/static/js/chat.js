// The centre panel's frame around the conversation: the header (title, status, stream
// state), the composer's state (Send or Stop) and the session facts under the desktop.
import { formatDateTime, h } from "./dom.js";
import { statusLabel } from "./sessions.js";
import { formatBudget, formatSpent } from "./spending.js";

// A routine reconnect takes a moment: only say so when it lasts.
const RECONNECTING_NOTICE_MS = 1500;
const STREAM_LABELS = { connecting: "Connecting…", open: "Live", reconnecting: "Reconnecting…" };

export class ChatView {
  /** @param {object} els  title, meta, streamState, conversation, welcome, facts, prompt,
   *   sendButton, stopButton, suggestions */
  constructor(els) {
    Object.assign(this, els);
    this.reconnectingTimer = null;
  }

  /**
   * @param {object} view
   * @param {object|null} view.session  the selected session (null while none or loading)
   * @param {boolean} view.selected  a session is selected (maybe still loading)
   * @param {boolean} view.processing  the agent is working
   * @param {boolean} view.stopping  Stop was pressed, the run has not ended yet
   * @param {boolean} view.empty  the conversation has nothing in it
   */
  render({ session, selected, processing, stopping, empty, asking = false }) {
    this.#renderFacts(session);
    this.welcome.hidden = selected;
    this.conversation.hidden = !selected;
    if (!session) {
      document.title = "Computer Use";
      this.conversation.dataset.processing = "false";
      if (!selected) this.title.textContent = "No session selected";
      this.meta.textContent = "";
      this.#composer({ enabled: false, processing: false, stopping: false });
      this.suggestions.hidden = true;
      return;
    }
    document.title = `${session.title} · Computer Use`;
    this.title.textContent = session.title;
    const status = h("span", { class: "status", dataset: { status: session.status } },
      statusLabel(session.status));
    this.meta.replaceChildren(status, ` · ${session.model}`);
    if (session.paused) {
      const who = session.held_by === "person" ? "paused: a person holds the desktop" : "paused";
      this.meta.append(" · ", h("span", { class: "paused-state", text: who }));
    }
    if (session.approval && session.approval !== "auto") this.meta.append(" · asks before acting");
    if (session.status_detail && session.status !== "active") {
      this.meta.append(` · ${session.status_detail}`);
    }
    const expired = session.status === "expired";
    this.conversation.dataset.processing = String(processing);
    this.#composer({ enabled: !expired, processing, stopping });
    this.prompt.placeholder = expired ?
      "This session has expired: create a new session to continue." :
      asking ? "Your answer to the agent's question…" : "Tell the agent what to do…";
    this.suggestions.hidden = expired || processing || !empty;
  }

  /** The title while a session loads. */
  loading(title) {
    this.title.textContent = title || "Loading…";
  }

  /** The event stream's state: connecting, open, reconnecting or closed. */
  streamState(state) {
    window.clearTimeout(this.reconnectingTimer);
    if (state === "reconnecting" && this.streamStateEl.dataset.state === "open") {
      this.reconnectingTimer = window.setTimeout(
        () => this.#showStreamState("reconnecting"),
        RECONNECTING_NOTICE_MS,
      );
      return;
    }
    this.#showStreamState(state);
  }

  #showStreamState(state) {
    this.streamStateEl.hidden = !STREAM_LABELS[state];
    this.streamStateEl.textContent = STREAM_LABELS[state] || "";
    this.streamStateEl.dataset.state = state;
  }

  #composer({ enabled, processing, stopping }) {
    this.prompt.disabled = !enabled;
    this.sendButton.hidden = processing;
    this.sendButton.disabled = !enabled || processing;
    this.stopButton.hidden = !processing;
    this.stopButton.disabled = stopping;
    this.stopButton.textContent = stopping ? "Stopping…" : "Stop";
  }

  #renderFacts(session) {
    this.facts.hidden = !session;
    if (!session) return;
    const rows = [
      ["Session", session.id, "mono"],
      ["Model", session.model],
      ["Display", session.display],
      ["Created", formatDateTime(session.created_at)],
      ["Last activity", formatDateTime(session.last_activity_at)],
      ["Spent", formatSpent(session.spent), "spent"],
      ["Budget", formatBudget(session.budget), "budget"],
    ].filter(([, value]) => value);
    this.facts.replaceChildren(...rows.flatMap(([name, value, cls]) => [
      h("dt", { text: name }),
      h("dd", { text: value, title: value, class: cls }),
    ]));
  }
}
