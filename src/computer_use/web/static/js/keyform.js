// "Bring your own key": the field that appears when the server has no Anthropic API key (or
// refuses a message for want of one). The key lives in api.js (this tab only), never here.
import { clearApiKey, getApiKey, setApiKey } from "./api.js";

const NO_SERVER_KEY = "This server has no Anthropic API key. Paste yours to let the agent work.";

export class KeyForm {
  /**
   * @param {object} els  form, reason, input, status, forget, dismiss
   * @param {() => void} onKey  a key was just given (e.g. re-send the refused message)
   */
  constructor(els, onKey) {
    Object.assign(this, els);
    this.serverHasKey = true;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const key = this.input.value.trim();
      if (!key) {
        this.input.focus();
        return;
      }
      setApiKey(key);
      this.input.value = ""; // not left in the page
      this.form.hidden = true;
      this.#refresh();
      onKey();
    });
    // Hidden for now; it comes back when the server asks for a key.
    this.dismiss.addEventListener("click", () => {
      this.form.hidden = true;
    });
    this.forget.addEventListener("click", () => {
      clearApiKey();
      this.#refresh();
      if (!this.serverHasKey) this.ask(NO_SERVER_KEY);
    });
  }

  /** What the server said about its own key (GET /config). */
  setServerHasKey(hasKey) {
    this.serverHasKey = hasKey;
    if (!hasKey && !getApiKey()) this.ask(NO_SERVER_KEY);
    this.#refresh();
  }

  /** Shows the field with the reason, e.g. the server's own message. */
  ask(reason) {
    this.reason.textContent = reason;
    this.form.hidden = false;
    this.status.hidden = true;
  }

  focus() {
    this.input.focus();
  }

  #refresh() {
    this.status.hidden = !getApiKey();
  }
}
