// The person in the loop, in the conversation: approve / decline buttons on the step that
// waits (keyboard: A approves, D declines, outside text fields), the agent's questions, and
// paused / resumed notes. Events come from the stream (approval_required, approval_resolved,
// question, paused, resumed); answers go to POST .../approvals/{id}.
import { h } from "./dom.js";

const RESOLVED = {
  approved: "Approved",
  declined: "Declined",
  expired: "Expired: nobody answered in time",
  interrupted: "No longer waiting",
};

export class PersonInTheLoop {
  /**
   * @param {HTMLElement} root  the conversation log
   * @param {object} hooks
   * @param {(approvalId: string, decision: string, remember: boolean) => Promise<void>} hooks.answer
   * @param {(message: string) => void} hooks.onError
   * @param {() => void} hooks.onQuestion  the agent asked: the composer is where to answer
   */
  constructor(root, hooks) {
    this.root = root;
    this.hooks = hooks;
    this.pending = new Map(); // approval id -> its box
    document.addEventListener("keydown", (event) => this.#shortcut(event));
  }

  reset() {
    this.pending.clear();
  }

  /** One stream event; other types are not this module's. */
  applyEvent(type, data) {
    if (type === "approval_required") this.#ask(data);
    else if (type === "approval_resolved") this.#resolved(data);
    else if (type === "question") this.#question(data);
    else if (type === "paused") this.#note("paused", data.detail || "Paused.");
    else if (type === "resumed") {
      this.#note("resumed", data.by === "person" ?
        "Control handed back: the agent goes on from a fresh screenshot." : "Resumed.");
    } else if (type === "message_complete") {
      for (const id of [...this.pending.keys()]) this.#resolved({ approval_id: id, decision: "interrupted" });
    }
  }

  #ask(data) {
    if (!data.approval_id || this.pending.has(data.approval_id)) return;
    const buttons = [
      ["approve", "Approve", false, "button small primary"],
      ["approve", "Approve all like this", true, "button small ghost"],
      ["decline", "Decline", false, "button small danger"],
    ].map(([decision, label, remember, cls]) => h("button", {
      type: "button", class: cls, dataset: { decision },
      title: remember ? `Approve every ${data.action} action for the rest of this run` :
        `${label} (${decision === "approve" ? "A" : "D"})`,
      onclick: () => this.#answer(data.approval_id, decision, remember),
    }, label));
    const box = h("div", { class: "approval", role: "group", "aria-label": "Approval needed",
      dataset: { approvalId: data.approval_id } },
      h("p", { class: "approval-text" }, h("strong", { text: "Approve? " }),
        h("span", { text: data.description || data.action || "an action" })),
      h("div", { class: "approval-actions" }, buttons,
        h("span", { class: "muted small", text: "A approve · D decline" })));
    const card = data.tool_use_id ?
      this.root.querySelector(`[data-tool-use-id="${CSS.escape(data.tool_use_id)}"]`) : null;
    (card || this.root).appendChild(box);
    box.scrollIntoView({ block: "nearest" });
    this.pending.set(data.approval_id, box);
  }

  async #answer(approvalId, decision, remember) {
    const box = this.pending.get(approvalId);
    if (!box) return;
    for (const button of box.querySelectorAll("button")) button.disabled = true;
    try {
      await this.hooks.answer(approvalId, decision, remember);
    } catch (error) {
      for (const button of box.querySelectorAll("button")) button.disabled = false;
      this.hooks.onError(`Could not answer the approval: ${error.message}`);
    }
  }

  #resolved(data) {
    const box = this.pending.get(data.approval_id);
    if (!box) return;
    this.pending.delete(data.approval_id);
    const label = RESOLVED[data.decision] || data.decision;
    const text = data.remember ? `${label} (and the same kind for this run)` : label;
    box.replaceChildren(h("p", { class: "approval-done", text }));
    box.dataset.decision = data.decision;
  }

  #question(data) {
    const box = h("div", { class: "block question", role: "note" },
      h("strong", { text: "Claude asks: " }), h("span", { text: data.question || "" }),
      h("p", { class: "muted small", text: "Your next message is the answer." }));
    const group = this.root.querySelector("article.msg.assistant:last-of-type .msg-body");
    (group || this.root).appendChild(box);
    this.hooks.onQuestion();
  }

  #note(kind, text) {
    const group = this.root.querySelector("article.msg.assistant:last-of-type .msg-body");
    (group || this.root).appendChild(h("p", { class: `run-note ${kind}`, text }));
  }

  // A approves and D declines the latest waiting approval, unless typing somewhere.
  #shortcut(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (target instanceof HTMLElement && target.closest("input, textarea, select, [contenteditable]")) return;
    const key = event.key.toLowerCase();
    if ((key !== "a" && key !== "d") || !this.pending.size) return;
    event.preventDefault();
    const latest = [...this.pending.keys()].at(-1);
    this.#answer(latest, key === "a" ? "approve" : "decline", false);
  }
}
