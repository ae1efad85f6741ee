// The conversation panel: history (stored Anthropic content blocks) and live SSE events,
// rendered into the same shapes. Everything untrusted goes in as text (dom.js) or through
// the DOM-building Markdown renderer (markdown.js); nothing is parsed as HTML.
import { describeToolUse, toolKind } from "./describe.js";
import { clear, formatNumber, formatTime, h } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { formatUsd } from "./spending.js";

const STOP_REASONS = {
  end_turn: "Done",
  stop_sequence: "Done",
  max_steps: "Stopped: the step limit was reached",
  max_tokens: "Stopped: the answer reached the token limit",
  cancelled: "Stopped by you",
  refusal: "The model declined to continue",
  error: "Ended with an error",
  budget: "Stopped: the budget was reached",
  stuck: "Stopped: the agent was stuck",
};
const LONG_OUTPUT_LINES = 8;
const STICK_TO_BOTTOM_PX = 120;

export class Conversation {
  /**
   * @param {HTMLElement} root  the scrolling log element
   * @param {object} options
   * @param {(url: string) => string|null} options.imageSrc  an image URL from the server as
   *   a src this page may load, or null to refuse it
   * @param {(src: string, caption: string) => void} options.onOpenImage
   */
  constructor(root, { imageSrc, onOpenImage }) {
    this.root = root;
    this.imageSrc = imageSrc;
    this.onOpenImage = onOpenImage;
    this.reset();
  }

  reset() {
    clear(this.root);
    this.group = null; // the assistant turn being written (a run between two user messages)
    this.tools = new Map(); // tool_use id -> card
    this.openText = null; // {el, raw} of a text block still streaming deltas
    this.openThinking = null;
    this.renderQueued = false;
    this.replayGuard = null;
    this.runActive = false; // a run this page is watching live (guard mode: not a replay)
  }

  get isEmpty() {
    return this.root.childElementCount === 0;
  }

  // --- history ---------------------------------------------------------------------------

  /** Rebuilds the panel from GET /sessions/{id} `messages`. */
  renderHistory(messages) {
    this.reset();
    for (const message of messages || []) {
      const blocks = Array.isArray(message.content) ? message.content : [];
      if (message.role === "user") {
        for (const block of blocks) {
          if (block.type === "text") this.addUserMessage(block.text, message.created_at);
          else if (block.type === "tool_result") this.#historyToolResult(block);
        }
        continue;
      }
      for (const block of blocks) {
        if (block.type === "text") this.#textBlock(block.text);
        else if (block.type === "thinking") this.#thinkingBlock(block.thinking);
        else if (block.type === "redacted_thinking") this.#thinkingBlock("(redacted)");
        else if (block.type === "tool_use") {
          this.#toolUse({ id: block.id, name: block.name, input: block.input, toolset_name: block.toolset_name });
        }
      }
    }
    this.group = null; // a new run starts a new turn
    this.#scrollToBottom();
  }

  /**
   * Without the server's `last_event_id` the stream replays every stored event: skip the
   * replayed copies of blocks the history already shows (texts matched by content, tools by
   * id), and end-of-run markers that belong to no run of this page.
   */
  guardAgainstReplay(messages) {
    if (!messages || !messages.length) return; // no history: every event is news
    const seen = new Map();
    for (const message of messages || []) {
      for (const block of message.content || []) {
        const key = block.type === "text" ? `t:${block.text}` :
          block.type === "thinking" ? `k:${block.thinking}` : null;
        if (key) seen.set(key, (seen.get(key) || 0) + 1);
      }
    }
    this.replayGuard = seen;
  }

  /** Marks a run as live (a message is being sent, or the session is processing); false
   *  withdraws that when the server refused the message. */
  startRun(active = true) {
    this.runActive = active;
  }

  #pastRun() {
    return Boolean(this.replayGuard) && !this.group && !this.runActive;
  }

  #replayed(key) {
    const count = this.replayGuard?.get(key);
    if (!count) return false;
    this.replayGuard.set(key, count - 1);
    return true;
  }

  #historyToolResult(block) {
    const parts = typeof block.content === "string" ? [{ type: "text", text: block.content }] :
      Array.isArray(block.content) ? block.content : [];
    const output = parts.filter((p) => p.type === "text").map((p) => p.text).join("\n");
    const image = parts.find((p) => p.type === "image" && p.source?.type === "url");
    this.#toolResult({
      tool_use_id: block.tool_use_id,
      is_error: Boolean(block.is_error),
      output,
      image_url: image ? image.source.url : null,
    });
  }

  // --- live events ---------------------------------------------------------------------

  /** Applies one SSE event (already de-duplicated by id). `status` is the app's business. */
  applyEvent(type, data) {
    switch (type) {
      case "text_delta":
        this.#delta("openText", "text", data.text);
        break;
      case "thinking_delta":
        this.#delta("openThinking", "thinking", data.thinking ?? data.text);
        break;
      case "text":
        if (this.#replayed(`t:${data.text}`)) this.#drop("openText");
        else this.#finish("openText", "text", data.text);
        break;
      case "thinking":
        if (this.#replayed(`k:${data.thinking}`)) this.#drop("openThinking");
        else this.#finish("openThinking", "thinking", data.thinking);
        break;
      case "tool_use":
        this.#toolUse(data);
        break;
      case "tool_result":
        this.#toolResult(data);
        break;
      case "message_complete":
        this.#complete(data);
        break;
      case "error":
        if (this.#pastRun()) break; // a past run's error, replayed
        this.addError(data.message || "The agent reported an error.", errorHint(data));
        break;
      default:
        break; // unknown types are extensions this console does not show
    }
  }

  /** The user's message; returns its element (the caller may withdraw a refused one). */
  addUserMessage(text, createdAt) {
    this.#closeOpen();
    this.group = null;
    const time = createdAt ? formatTime(createdAt) : formatTime(new Date().toISOString());
    const el = h("article", { class: "msg user" },
      h("header", { class: "msg-head" }, h("span", { class: "who", text: "You" }),
        h("time", { class: "when", text: time })),
      h("div", { class: "user-text", text: text }));
    this.#mutate(() => this.root.appendChild(el));
    return el;
  }

  /** An error in place: the server's own message, plus an optional hint. */
  addError(message, hint) {
    this.#closeOpen();
    this.#mutate(() => {
      const box = h("div", { class: "block error", role: "alert" },
        h("strong", { text: "Error" }), " ", h("span", { class: "error-text", text: message }),
        hint ? h("p", { class: "error-hint", text: hint }) : null);
      (this.group ? this.group.body : this.root).appendChild(box);
    });
  }

  // --- pieces ----------------------------------------------------------------------------

  #ensureGroup() {
    if (this.group) return this.group;
    const body = h("div", { class: "msg-body" });
    const el = h("article", { class: "msg assistant" },
      h("header", { class: "msg-head" }, h("span", { class: "who", text: "Claude" })), body);
    this.root.appendChild(el);
    this.group = { el, body };
    return this.group;
  }

  #textBlock(text) {
    this.#mutate(() => {
      const el = h("div", { class: "block text markdown" });
      el.appendChild(renderMarkdown(text));
      this.#ensureGroup().body.appendChild(el);
    });
  }

  #thinkingBlock(text, streaming = false) {
    const body = h("div", { class: "thinking-body", text: text });
    const label = h("span", { class: "thinking-label", text: streaming ? "Thinking…" : "Thinking" });
    const el = h("details", { class: `block thinking${streaming ? " streaming" : ""}` },
      h("summary", {}, label), body);
    this.#mutate(() => this.#ensureGroup().body.appendChild(el));
    return { el, body, label };
  }

  /** Appends a delta to the open text/thinking block, creating it on the first delta. */
  #delta(slot, kind, piece) {
    if (typeof piece !== "string" || !piece) return;
    if (!this[slot]) {
      if (kind === "text") {
        const el = h("div", { class: "block text markdown streaming" });
        this.#mutate(() => this.#ensureGroup().body.appendChild(el));
        this[slot] = { el, raw: "" };
      } else {
        this[slot] = { ...this.#thinkingBlock("", true), raw: "" };
      }
    }
    this[slot].raw += piece;
    this.#queueRender();
  }

  // Deltas may come hundreds a second: re-render the open blocks once per frame.
  #queueRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    window.requestAnimationFrame(() => {
      this.renderQueued = false;
      this.#mutate(() => {
        if (this.openText) this.openText.el.replaceChildren(renderMarkdown(this.openText.raw));
        if (this.openThinking) this.openThinking.body.textContent = this.openThinking.raw;
      });
    });
  }

  /** The complete block arrived: it replaces what the deltas built (or stands alone). */
  #finish(slot, kind, full) {
    const open = this[slot];
    this[slot] = null;
    if (!open) {
      if (kind === "text") this.#textBlock(full ?? "");
      else this.#thinkingBlock(full ?? "");
      return;
    }
    this.#mutate(() => {
      if (kind === "text") {
        open.el.classList.remove("streaming");
        open.el.replaceChildren(renderMarkdown(full ?? open.raw));
      } else {
        open.el.classList.remove("streaming");
        open.label.textContent = "Thinking";
        open.body.textContent = full ?? open.raw;
      }
    });
  }

  #drop(slot) {
    if (this[slot]) this[slot].el.remove();
    this[slot] = null;
    if (this.group && !this.group.body.childElementCount) {
      this.group.el.remove(); // it held only the replayed copy
      this.group = null;
    }
  }

  #closeOpen() {
    if (this.openText) this.#finish("openText", "text", this.openText.raw);
    if (this.openThinking) this.#finish("openThinking", "thinking", this.openThinking.raw);
  }

  #toolUse(data) {
    if (!data || this.tools.has(data.id)) return; // shown already (history + stream overlap)
    this.#closeOpen();
    const description = data.description || describeToolUse(data.name, data.input, data.toolset_name);
    const state = h("span", { class: "tool-state", "aria-label": "running" });
    const body = h("div", { class: "tool-body" });
    const card = h("div", { class: "block tool", dataset: { state: "running", toolUseId: data.id || "" } },
      h("div", { class: "tool-head" },
        h("span", { class: "tool-kind", text: toolKind(data.name, data.input, data.toolset_name) }),
        h("span", { class: "tool-desc", text: description }),
        state),
      body);
    this.#mutate(() => this.#ensureGroup().body.appendChild(card));
    if (data.id) this.tools.set(data.id, { card, body, state, description, done: false });
  }

  #toolResult(data) {
    let tool = this.tools.get(data.tool_use_id);
    if (tool?.done) return;
    if (!tool) {
      // A result whose call this page never saw (e.g. history pruned): show it on its own.
      this.#toolUse({ id: data.tool_use_id, name: "tool", description: "tool result", input: {} });
      tool = this.tools.get(data.tool_use_id);
      if (!tool) return;
    }
    tool.done = true;
    const failed = Boolean(data.is_error);
    this.#mutate(() => {
      tool.card.dataset.state = failed ? "error" : "done";
      tool.state.setAttribute("aria-label", failed ? "failed" : "done");
      const output = String(data.output || "").trim();
      if (output) tool.body.appendChild(outputBlock(output, failed));
      const src = data.image_url ? this.imageSrc(data.image_url) : null;
      if (src) {
        const caption = `Screenshot after: ${tool.description}`;
        const img = h("img", { src, alt: caption, loading: "lazy", decoding: "async" });
        tool.body.appendChild(
          h("button", { type: "button", class: "thumb", title: "Enlarge screenshot",
            onclick: () => this.onOpenImage(src, caption) }, img));
      }
    });
  }

  #complete(data) {
    this.#closeOpen();
    if (this.#pastRun()) return; // a past run's marker, replayed
    this.runActive = false;
    for (const tool of this.tools.values()) {
      if (!tool.done) {
        tool.done = true;
        tool.card.dataset.state = "interrupted";
        tool.state.setAttribute("aria-label", "interrupted");
      }
    }
    const reason = data.stop_reason || "end_turn";
    const label = STOP_REASONS[reason] || `Stopped (${reason})`;
    const usage = data.usage || {};
    const facts = [];
    if (data.steps) facts.push(`${data.steps} step${data.steps === 1 ? "" : "s"}`);
    if (usage.input_tokens || usage.output_tokens) {
      const cached = (usage.cache_read_input_tokens || 0) + (usage.cache_creation_input_tokens || 0);
      const input = (usage.input_tokens || 0) + cached;
      facts.push(`${formatNumber(input)} tokens in · ${formatNumber(usage.output_tokens)} out`);
    }
    const cost = data.totals && data.totals.run ? data.totals.run.cost_usd : null;
    if (cost !== null && cost !== undefined) facts.push(formatUsd(cost));
    this.#mutate(() => {
      const marker = h("p", { class: `run-end reason-${reason.replace(/[^a-z_]/g, "")}` },
        h("span", { class: "run-end-label", text: label }),
        facts.length ? h("span", { class: "run-end-facts", text: ` · ${facts.join(" · ")}` }) : null,
        data.detail ? h("span", { class: "run-end-facts", text: ` · ${data.detail}` }) : null);
      (this.group ? this.group.body : this.root).appendChild(marker);
    });
    this.group = null;
  }

  // --- scrolling -------------------------------------------------------------------------

  // Follow the newest output, unless the reader scrolled up to look at something.
  #mutate(change) {
    const { scrollTop, scrollHeight, clientHeight } = this.root;
    const atBottom = scrollHeight - scrollTop - clientHeight < STICK_TO_BOTTOM_PX;
    change();
    if (atBottom) this.#scrollToBottom();
  }

  #scrollToBottom() {
    this.root.scrollTop = this.root.scrollHeight;
  }
}

function outputBlock(output, failed) {
  const pre = h("pre", { class: `tool-output${failed ? " failed" : ""}`, text: output });
  const lines = output.split("\n").length;
  if (lines <= LONG_OUTPUT_LINES && output.length < 600) return pre;
  return h("details", { class: "tool-output-more" },
    h("summary", { text: `Output (${lines} line${lines === 1 ? "" : "s"})` }), pre);
}

function errorHint(data) {
  if (data.code === "authentication_error") return "Check the Anthropic API key.";
  if (data.retryable) return "This may work if you try again in a moment.";
  return null;
}
