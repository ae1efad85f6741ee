// The server's API token (API_TOKENS): a field shown when the server answers 401. The token
// lives in api.js (this tab only, sent as `Authorization: Bearer`), never here.
import { clearApiToken, getApiToken, setApiToken } from "./api.js";
import { SecretForm } from "./secretform.js";

export class TokenForm extends SecretForm {
  /**
   * @param {object} els  form, reason, input, status, forget
   * @param {() => void} onToken  a token was just given or forgotten (reload what was refused)
   */
  constructor(els, onToken) {
    super(
      els,
      { get: getApiToken, set: setApiToken, clear: clearApiToken },
      { given: onToken, forgotten: onToken },
    );
    this.refresh();
  }

  /** Shows the field with the server's reason (a wrong token is forgotten first). */
  ask(reason) {
    if (getApiToken()) clearApiToken();
    this.show(reason);
    this.refresh();
    this.input.focus();
  }
}
