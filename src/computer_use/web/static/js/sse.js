// One session's live event stream: EventSource, plus what it lacks.
//
// - Exactly once: every event carries a per-session increasing id; anything at or below the
//   highest id already handled is dropped, so a replay after a reconnect never shows twice.
// - Resumes: the browser reconnects by itself with a Last-Event-ID header while the stream
//   is "CONNECTING". When it gives up ("CLOSED": an HTTP error, a non-SSE answer) we open a
//   new EventSource ourselves, passing the last id in the URL (`?after=`) since a new
//   EventSource cannot set headers, with a growing delay.

export const EVENT_TYPES = [
  "text",
  "text_delta",
  "thinking",
  "thinking_delta",
  "tool_use",
  "tool_result",
  "message_complete",
  "error",
  "status",
  "usage",
  "approval_required",
  "approval_resolved",
  "paused",
  "resumed",
  "question",
];

const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 15000];

export class SessionStream {
  /**
   * @param {object} options
   * @param {(lastEventId: number) => string} options.url  the stream URL resuming after an id
   * @param {number} options.lastEventId  events up to this id are already shown
   * @param {(type: string, data: object, id: number) => void} options.onEvent
   * @param {(state: "connecting"|"open"|"reconnecting"|"closed") => void} options.onState
   * @param {() => Promise<boolean>} [options.shouldReconnect]  asked before reopening a
   *   stream the browser gave up on (e.g. false once the session is gone)
   */
  constructor({ url, lastEventId = 0, onEvent, onState, shouldReconnect }) {
    this.url = url;
    this.lastEventId = lastEventId;
    this.onEvent = onEvent;
    this.onState = onState;
    this.shouldReconnect = shouldReconnect || (async () => true);
    this.source = null;
    this.retries = 0;
    this.retryTimer = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.#open("connecting");
  }

  stop() {
    this.stopped = true;
    window.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.source) this.source.close();
    this.source = null;
    this.onState("closed");
  }

  #open(state) {
    this.onState(state);
    const source = new EventSource(this.url(this.lastEventId));
    this.source = source;
    source.onopen = () => {
      this.retries = 0;
      this.onState("open");
    };
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (event) => this.#deliver(type, event));
    }
    // The server's `error` events and the EventSource's own connection errors share the
    // name "error": only the server's are MessageEvents with data (handled in #deliver).
    source.addEventListener("error", (event) => {
      if (event instanceof MessageEvent || source !== this.source || this.stopped) return;
      if (source.readyState === EventSource.CONNECTING) {
        this.onState("reconnecting"); // the browser retries on its own, with Last-Event-ID
        return;
      }
      source.close();
      this.#scheduleReopen();
    });
  }

  #scheduleReopen() {
    this.onState("reconnecting");
    const delay = RETRY_DELAYS_MS[Math.min(this.retries, RETRY_DELAYS_MS.length - 1)];
    this.retries += 1;
    this.retryTimer = window.setTimeout(async () => {
      if (this.stopped) return;
      let again = true;
      try {
        again = await this.shouldReconnect();
      } catch {
        again = true; // cannot tell (server unreachable): keep trying
      }
      if (this.stopped) return;
      if (again) this.#open("reconnecting");
      else this.stop();
    }, delay);
  }

  #deliver(type, event) {
    if (!(event instanceof MessageEvent)) return;
    const id = Number.parseInt(event.lastEventId, 10);
    if (Number.isFinite(id)) {
      if (id <= this.lastEventId) return; // already shown (replay after a reconnect)
      this.lastEventId = id;
    }
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      data = { text: String(event.data) };
    }
    try {
      this.onEvent(type, data && typeof data === "object" ? data : { value: data }, id);
    } catch (error) {
      // A rendering bug must not kill the stream; report it where developers look.
      console.error(`failed to render ${type} event ${id}`, error);
    }
  }
}
