// The left panel's list: one row per session with its status and a live TTL countdown.
// Rows are updated in place (keyed by id) so a refresh never steals focus or scroll.
import { formatDuration, h } from "./dom.js";

const STATUS_LABELS = {
  starting: "Starting",
  active: "Ready",
  processing: "Working",
  error: "Error",
  expired: "Expired",
};

export class SessionList {
  constructor({ listEl, countEl, emptyEl, onSelect, onDelete }) {
    this.listEl = listEl;
    this.countEl = countEl;
    this.emptyEl = emptyEl;
    this.onSelect = onSelect;
    this.onDelete = onDelete;
    this.rows = new Map(); // id -> {li, title, status, model, ttl, deleteButton, deadline, session}
    this.selectedId = null;
  }

  /** Shows `sessions` (newest first) out of `total`. */
  update(sessions, total) {
    const seen = new Set();
    for (const session of sessions) {
      seen.add(session.id);
      const row = this.rows.get(session.id) || this.#createRow(session.id);
      this.#fill(row, session);
      this.listEl.appendChild(row.li); // moves an existing row into order
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.li.remove();
        this.rows.delete(id);
      }
    }
    this.emptyEl.hidden = sessions.length > 0;
    this.countEl.textContent = total ? String(total) : "";
    this.select(this.selectedId);
    this.tick();
  }

  /** Patches one session (e.g. a `status` event) without waiting for the next refresh. */
  patch(id, changes) {
    const row = this.rows.get(id);
    if (row) this.#fill(row, { ...row.session, ...changes });
  }

  get(id) {
    return this.rows.get(id)?.session || null;
  }

  select(id) {
    this.selectedId = id;
    for (const [rowId, row] of this.rows) {
      if (rowId === id) row.open.setAttribute("aria-current", "true");
      else row.open.removeAttribute("aria-current");
      row.li.classList.toggle("selected", rowId === id);
    }
  }

  /** Once a second: the countdowns. */
  tick() {
    const now = Date.now();
    for (const row of this.rows.values()) {
      const { status } = row.session;
      if (status === "expired") {
        row.ttl.textContent = "expired";
        row.ttl.title = "Its desktop was released; the history stays readable.";
        continue;
      }
      const left = Math.max(0, (row.deadline - now) / 1000);
      row.ttl.textContent = formatDuration(left);
      row.ttl.title = "Time left before the session expires (any activity resets it)";
      row.ttl.classList.toggle("ttl-low", left < 300);
    }
  }

  #createRow(id) {
    const title = h("span", { class: "session-title" });
    const status = h("span", { class: "status" });
    const model = h("span", { class: "session-model" });
    const ttl = h("span", { class: "ttl" });
    const open = h("button", { type: "button", class: "session-open", onclick: () => this.onSelect(id) },
      h("span", { class: "session-line" }, title, ttl),
      h("span", { class: "session-meta" }, status, model));
    const deleteButton = h("button", { type: "button", class: "session-delete", text: "×",
      onclick: () => this.onDelete(id) });
    const li = h("li", { class: "session-item", dataset: { sessionId: id } }, open, deleteButton);
    const row = { li, open, title, status, model, ttl, deleteButton, deadline: 0, session: null };
    this.rows.set(id, row);
    return row;
  }

  #fill(row, session) {
    const changedTtl = !row.session ||
      row.session.ttl_remaining_seconds !== session.ttl_remaining_seconds ||
      row.session.last_activity_at !== session.last_activity_at;
    row.session = session;
    row.title.textContent = session.title;
    row.title.title = session.title;
    row.status.textContent = STATUS_LABELS[session.status] || session.status;
    row.status.dataset.status = session.status;
    row.status.title = session.status_detail || "";
    row.model.textContent = session.model;
    row.deleteButton.setAttribute("aria-label", `Delete session ${session.title}`);
    row.deleteButton.title = "Delete session";
    if (changedTtl && Number.isFinite(session.ttl_remaining_seconds)) {
      row.deadline = Date.now() + session.ttl_remaining_seconds * 1000;
    }
  }
}

export function statusLabel(status) {
  return STATUS_LABELS[status] || status;
}
