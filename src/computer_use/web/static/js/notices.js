// The page-level messages: the banner (the server as a whole is unreachable or failing), the
// confirm dialog and the screenshot lightbox. Text only, through textContent.
import { ApiError } from "./api.js";

export class Banner {
  constructor(el) {
    this.el = el;
    this.offline = false;
  }

  show(message, kind = "error") {
    this.el.textContent = message;
    this.el.dataset.kind = kind;
    this.el.hidden = false;
  }

  hide() {
    this.el.hidden = true;
    this.el.textContent = "";
  }

  /** Shows a lost connection (and returns true) when `error` is one. */
  reportNetwork(error) {
    if (error instanceof ApiError && error.status === 0) {
      this.offline = true;
      this.show(`${error.message} Retrying…`);
      return true;
    }
    return false;
  }

  /** The server answered again: clear a lost-connection banner. */
  online() {
    if (!this.offline) return;
    this.offline = false;
    this.hide();
  }
}

/** Asks in the page's own <dialog> (window.confirm blocks the page and cannot be styled). */
export function confirmInDialog(dialog, textEl, text) {
  textEl.textContent = text;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

export class Lightbox {
  constructor(dialog, image, caption) {
    Object.assign(this, { dialog, image, caption });
    // A click on the backdrop (the dialog itself, outside its content) closes it.
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close();
    });
  }

  open(src, caption) {
    this.image.src = src;
    this.image.alt = caption;
    this.caption.textContent = caption;
    this.dialog.showModal();
  }
}
