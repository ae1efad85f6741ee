// The session's files: a panel listing HOME (Downloads first), uploads by drag and drop or
// by picking files, downloads (a folder as a zip). Paths are relative to the session's HOME.
import { ApiError, apiBase, getApiToken } from "./api.js";
import { clear, h } from "./dom.js";

const UPLOAD_FOLDER = "Uploads";

const sessionPath = (id) => `/api/v1/sessions/${encodeURIComponent(id)}`;
const filePath = (id, path) =>
  `${sessionPath(id)}/files/${path.split("/").map(encodeURIComponent).join("/")}`;

/** fetch() with the API token; a non-2xx answer becomes an ApiError with the server's words. */
export async function apiFetch(method, path, { body, query } = {}) {
  const url = new URL(apiBase + path);
  for (const [name, value] of Object.entries(query || {})) url.searchParams.set(name, value);
  const headers = {};
  const token = getApiToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, { method, headers, body, cache: "no-store" });
  } catch {
    throw new ApiError(0, "network_error", `Cannot reach the server at ${apiBase}.`);
  }
  if (!response.ok) {
    let error = {};
    try {
      error = (await response.json()).error || {};
    } catch {
      // not our JSON error body
    }
    throw new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || `${method} ${path} failed with HTTP ${response.status}.`,
    );
  }
  return response;
}

export const filesApi = {
  list: async (id, path = "") =>
    (await apiFetch("GET", path ? filePath(id, path) : `${sessionPath(id)}/files`)).json(),
  upload: async (id, path, file) => (await apiFetch("PUT", filePath(id, path), { body: file })).json(),
  download: async (id, path, zip = false) =>
    (await apiFetch("GET", filePath(id, path), { query: zip ? { format: "zip" } : {} })).blob(),
  remove: (id, path) => apiFetch("DELETE", filePath(id, path)),
  recording: async (id) => (await apiFetch("GET", `${sessionPath(id)}/recording`)).blob(),
  timeline: async (id) => (await apiFetch("GET", `${sessionPath(id)}/recording/timeline`)).json(),
  trajectory: async (id) => (await apiFetch("GET", `${sessionPath(id)}/trajectory`)).blob(),
};

/** Hands a blob to the browser as a download named `name`. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export class FilesPanel {
  /**
   * @param {object} els  panel, list, path, note, uploadButton, input, refreshButton
   */
  constructor(els) {
    Object.assign(this, els);
    this.sessionId = null;
    this.folder = "";
    this.uploadButton.addEventListener("click", () => this.input.click());
    this.input.addEventListener("change", () => {
      this.upload([...this.input.files]);
      this.input.value = "";
    });
    this.refreshButton.addEventListener("click", () => this.refresh());
  }

  show(session) {
    const id = session && session.status !== "expired" ? session.id : null;
    this.panel.hidden = !session;
    if (id !== this.sessionId) {
      this.sessionId = id;
      this.folder = "";
      if (id) this.refresh();
      else clear(this.list);
    }
    if (session && !id) this.#note("This session has expired: its files were deleted.");
  }

  /** Uploads files into ~/Uploads, one after the other, then shows that folder. */
  async upload(files) {
    const id = this.sessionId;
    if (!id || !files.length) return;
    for (const file of files) {
      this.#note(`Uploading ${file.name} (${formatSize(file.size)})…`);
      try {
        await filesApi.upload(id, `${UPLOAD_FOLDER}/${file.name}`, file);
      } catch (error) {
        this.#note(`Could not upload ${file.name}: ${error.message}`, true);
        return;
      }
    }
    this.#note(`Uploaded ${files.map((f) => f.name).join(", ")} to ~/${UPLOAD_FOLDER}.`);
    this.folder = UPLOAD_FOLDER;
    await this.refresh();
  }

  async refresh() {
    const id = this.sessionId;
    if (!id) return;
    let listing;
    try {
      listing = await filesApi.list(id, this.folder);
    } catch (error) {
      if (this.folder && error.status === 404) {
        this.folder = "";
        return this.refresh();
      }
      this.#note(`Could not list files: ${error.message}`, true);
      return;
    }
    if (id !== this.sessionId) return;
    this.path.textContent = `~/${this.folder}`;
    const entries = [...listing.entries].filter((e) => !e.name.startsWith("."));
    if (!this.folder) {
      // The agent's browser saves into Downloads: what users come for, so it comes first.
      entries.sort((a, b) => (b.name === "Downloads") - (a.name === "Downloads"));
    }
    const rows = entries.map((entry) => this.#row(entry));
    if (this.folder) {
      const up = this.folder.split("/").slice(0, -1).join("/");
      rows.unshift(h("li", { class: "file-row" },
        h("button", { type: "button", class: "link-button", onclick: () => this.#open(up) }, "↑ up")));
    }
    clear(this.list).append(...rows);
    if (!rows.length) this.list.append(h("li", { class: "muted small" }, "Empty folder."));
  }

  #row(entry) {
    const path = this.folder ? `${this.folder}/${entry.name}` : entry.name;
    const dir = entry.type === "dir";
    const name = dir
      ? h("button", { type: "button", class: "link-button file-name", onclick: () => this.#open(path) },
        `${entry.name}/`)
      : h("span", { class: "file-name" }, entry.name);
    const actions = h("span", { class: "file-actions" },
      dir ? null : h("span", { class: "muted small" }, formatSize(entry.size)),
      h("button", { type: "button", class: "link-button", title: dir ? "Download as zip" : "Download",
        onclick: () => this.#download(path, entry.name, dir) }, dir ? "zip" : "download"),
      h("button", { type: "button", class: "link-button danger-link", title: "Delete",
        onclick: () => this.#remove(path) }, "delete"));
    return h("li", { class: "file-row", dataset: { path, type: entry.type } }, name, actions);
  }

  #open(folder) {
    this.folder = folder;
    this.refresh();
  }

  async #download(path, name, zip) {
    try {
      saveBlob(await filesApi.download(this.sessionId, path, zip), zip ? `${name}.zip` : name);
    } catch (error) {
      this.#note(`Could not download ${name}: ${error.message}`, true);
    }
  }

  async #remove(path) {
    try {
      await filesApi.remove(this.sessionId, path);
    } catch (error) {
      this.#note(`Could not delete ${path}: ${error.message}`, true);
    }
    await this.refresh();
  }

  #note(text, isError = false) {
    this.note.textContent = text;
    this.note.dataset.kind = isError ? "error" : "info";
  }
}

/**
 * Files dropped anywhere on `zone` go to `onFiles`; `overlay` shows while they are dragged
 * over it. The live desktop is an iframe, which swallows drag events: the overlay covers it
 * as soon as a drag of files enters the page.
 */
export function installDropTarget(zone, overlay, onFiles) {
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (hasFiles(event)) overlay.hidden = false;
  });
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) overlay.hidden = true;
  });
  for (const el of [zone, overlay]) {
    el.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
  }
  zone.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    overlay.hidden = true;
    onFiles([...event.dataTransfer.files]);
  });
  // A file dropped elsewhere on the page must not make the browser navigate to it.
  document.addEventListener("dragover", (event) => {
    if (hasFiles(event)) event.preventDefault();
  });
  document.addEventListener("drop", (event) => {
    if (hasFiles(event)) event.preventDefault();
    overlay.hidden = true;
  });
}
