// The server's API token (API_TOKENS): a field shown when the server answers 401. The token
// lives in api.js (this tab only, sent as `Authorization: Bearer`), never here.
import { clearApiToken, getApiToken, setApiToken } from "./api.js";

export class TokenForm {
  /**
   * @param {object} els  form, reason, input, status, forget
   * @param {() => void} onToken  a token was just given (reload what was refused)
   */
  constructor(els, onToken) {
    Object.assign(this, els);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const token = this.input.value.trim();
      if (!token) {
        this.input.focus();
        return;
      }
      setApiToken(token);
      this.input.value = ""; // not left in the page
      this.form.hidden = true;
      this.#refresh();
      onToken();
    });
    this.forget.addEventListener("click", () => {
      clearApiToken();
      this.#refresh();
      onToken();
    });
    this.#refresh();
  }

  /** Shows the field with the server's reason (a wrong token is forgotten first). */
  ask(reason) {
    if (getApiToken()) clearApiToken();
    this.reason.textContent = reason;
    this.form.hidden = false;
    this.#refresh();
    this.input.focus();
  }

  #refresh() {
    this.status.hidden = !getApiToken();
  }
}
