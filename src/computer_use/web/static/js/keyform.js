// "Bring your own key": the field that appears when the server has no Anthropic API key (or
// refuses a message for want of one). The key lives in api.js (this tab only), never here.
import { clearApiKey, getApiKey, setApiKey } from "./api.js";
import { SecretForm } from "./secretform.js";

const NO_SERVER_KEY = "This server has no Anthropic API key. Paste yours to let the agent work.";

export class KeyForm extends SecretForm {
  /**
   * @param {object} els  form, reason, input, status, forget, dismiss
   * @param {() => void} onKey  a key was just given (e.g. re-send the refused message)
   */
  constructor(els, onKey) {
    super(
      els,
      { get: getApiKey, set: setApiKey, clear: clearApiKey },
      {
        given: onKey,
        forgotten: () => {
          if (!this.serverHasKey) this.ask(NO_SERVER_KEY);
        },
      },
    );
    this.serverHasKey = true;
    // Hidden for now; it comes back when the server asks for a key.
    this.dismiss.addEventListener("click", () => {
      this.form.hidden = true;
    });
  }

  /** What the server said about its own key (GET /config). */
  setServerHasKey(hasKey) {
    this.serverHasKey = hasKey;
    if (!hasKey && !getApiKey()) this.ask(NO_SERVER_KEY);
    this.refresh();
  }

  /** Shows the field with the reason, e.g. the server's own message. */
  ask(reason) {
    this.show(reason);
    this.status.hidden = true;
  }

  focus() {
    this.input.focus();
  }
}
