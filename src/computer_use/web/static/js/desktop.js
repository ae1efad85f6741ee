// The right panel: the session's desktop in the VNC viewer page, view-only unless the user
// takes control. Viewer URLs carry a short-lived token minted on every read of the session,
// so the iframe is (re)loaded only when something real changes (another session, control
// toggled, the desktop appearing or going away), never because a refresh minted a new token.
import { absoluteUrl, apiIsRemote } from "./api.js";

// The viewer page may only be framed by its own origin (its CSP says frame-ancestors 'self'):
// a console served from elsewhere links to it instead of embedding it.
const EMBEDDABLE = !apiIsRemote;

export class DesktopPanel {
  /**
   * @param {object} els  iframe, placeholder, controlButton, reloadButton, openLink, badge, note
   * @param {object} hooks
   * @param {(id: string) => Promise<string|null>} hooks.interactiveUrl
   * @param {(id: string) => Promise<object>} hooks.fetchSession  a fresh read (new token)
   * @param {(id: string) => Promise<void>} hooks.takeControl  the agent waits from its next step
   * @param {(id: string) => Promise<void>} hooks.handBack  the agent goes on
   */
  constructor(els, hooks) {
    Object.assign(this, els);
    this.hooks = hooks;
    this.sessionId = null;
    this.interactive = false;
    this.loaded = false;
    this.controlButton.addEventListener("click", () => this.#toggleControl());
    this.reloadButton.addEventListener("click", () => this.#reconnect());
    this.#showPlaceholder("Select a session to watch its desktop.");
  }

  /** A session was selected (or deselected with null). */
  show(session) {
    if (!session) {
      this.sessionId = null;
      this.#unload("Select a session to watch its desktop.");
      return;
    }
    if (session.id !== this.sessionId) {
      this.sessionId = session.id;
      this.interactive = false;
      this.loaded = false;
    }
    this.update(session);
  }

  /** Newer data about the shown session (a list refresh, a status change). */
  update(session) {
    if (!session || session.id !== this.sessionId) return;
    this.iframe.title = `Live desktop of ${session.title}`;
    if (session.vnc_url) {
      if (!this.loaded) this.#load(session.vnc_url);
      if (session.held_by === "person" && !this.interactive) {
        this.note.textContent = "A person holds this desktop and the agent waits: take control, " +
          "then release it to hand the desktop back.";
      }
      return;
    }
    const message = placeholderFor(session);
    if (this.loaded || this.placeholder.textContent !== message) this.#unload(message);
  }

  async #toggleControl() {
    const id = this.sessionId;
    if (!id) return;
    this.controlButton.disabled = true;
    try {
      if (this.interactive) {
        await this.hooks.handBack(id);
        const session = await this.hooks.fetchSession(id);
        this.interactive = false;
        if (id === this.sessionId && session.vnc_url) this.#load(session.vnc_url);
      } else {
        const url = await this.hooks.interactiveUrl(id);
        if (id !== this.sessionId) return;
        if (!url) {
          this.note.textContent = "Interactive control is not available for this session.";
          return;
        }
        await this.hooks.takeControl(id);
        this.interactive = true;
        this.#load(url);
      }
    } catch (error) {
      this.note.textContent = `Could not switch control: ${error.message}`;
    } finally {
      this.controlButton.disabled = !this.loaded;
    }
  }

  // The viewer gives up once its token has expired; a reconnect asks for a fresh one.
  async #reconnect() {
    const id = this.sessionId;
    if (!id) return;
    try {
      const url = this.interactive ? await this.hooks.interactiveUrl(id) :
        (await this.hooks.fetchSession(id)).vnc_url;
      if (id !== this.sessionId) return;
      if (url) this.#load(url);
      else this.#unload("No live desktop is available for this session.");
    } catch (error) {
      this.note.textContent = `Could not reconnect: ${error.message}`;
    }
  }

  #load(url) {
    const src = absoluteUrl(url);
    this.loaded = true;
    if (EMBEDDABLE) {
      this.iframe.src = src;
      this.iframe.hidden = false;
      this.placeholder.hidden = true;
    } else {
      this.#showPlaceholder(
        "The live desktop opens from the API's own address: use Open ↗ (this console is " +
          "served from another origin, where the viewer may not be embedded).",
      );
    }
    this.openLink.href = src;
    this.openLink.hidden = false;
    this.controlButton.disabled = false;
    this.reloadButton.disabled = false;
    this.controlButton.setAttribute("aria-pressed", String(this.interactive));
    this.controlButton.textContent = this.interactive ? "Release control" : "Take control";
    this.badge.hidden = false;
    this.badge.textContent = this.interactive ? "You're in control" : "View only";
    this.badge.classList.toggle("badge-warn", this.interactive);
    this.note.textContent = this.interactive ?
      "Your mouse and keyboard go to the desktop. The agent waits until you release control." :
      "Watching the agent. Take control to use the desktop yourself.";
  }

  #unload(message) {
    this.loaded = false;
    this.interactive = false;
    // about:blank closes the viewer's websocket instead of leaving it open in the background.
    if (!this.iframe.hidden) this.iframe.src = "about:blank";
    this.iframe.hidden = true;
    this.openLink.hidden = true;
    this.openLink.removeAttribute("href");
    this.controlButton.disabled = true;
    this.reloadButton.disabled = this.sessionId === null;
    this.controlButton.setAttribute("aria-pressed", "false");
    this.controlButton.textContent = "Take control";
    this.badge.hidden = true;
    this.note.textContent = "";
    this.#showPlaceholder(message);
  }

  #showPlaceholder(message) {
    this.placeholder.textContent = message;
    this.placeholder.hidden = false;
  }
}

function placeholderFor(session) {
  switch (session.status) {
    case "expired":
      return "This session has expired and its desktop was released. Its history stays readable.";
    case "starting":
      return "The desktop is starting…";
    case "error":
      return `The desktop failed${session.status_detail ? `: ${session.status_detail}` : "."}`;
    default:
      return session.status_detail ?
        `No live desktop: ${session.status_detail}` :
        "No live desktop is available for this session.";
  }
}
