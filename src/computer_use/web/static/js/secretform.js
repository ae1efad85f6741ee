// A field for a secret the console keeps in api.js (this tab only), never in the page: the
// base of the Anthropic API key's field (keyform.js) and the server token's (tokenform.js).
export class SecretForm {
  /**
   * @param {object} els  form, reason, input, status, forget (and the subclass's own)
   * @param {{get: () => string | null, set: (value: string) => void, clear: () => void}} store
   * @param {{given: () => void, forgotten: () => void}} on  after a secret is given / forgotten
   */
  constructor(els, store, on) {
    Object.assign(this, els);
    this.store = store;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = this.input.value.trim();
      if (!value) {
        this.input.focus();
        return;
      }
      store.set(value);
      this.input.value = ""; // not left in the page
      this.form.hidden = true;
      this.refresh();
      on.given();
    });
    this.forget.addEventListener("click", () => {
      store.clear();
      this.refresh();
      on.forgotten();
    });
  }

  /** Shows the field with the reason. */
  show(reason) {
    this.reason.textContent = reason;
    this.form.hidden = false;
  }

  /** The "a secret is kept" line shows while one is. */
  refresh() {
    this.status.hidden = !this.store.get();
  }
}
