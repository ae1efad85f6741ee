// The session's desktop over our websocket proxy, with noVNC's RFB module.
// No inline script or style in the page, so a strict Content-Security-Policy holds.
import RFB from "../../novnc/core/rfb.js";

const MAX_RETRIES = 5;

const body = document.body;
const statusEl = document.getElementById("status");
const screenEl = document.getElementById("screen");
const viewOnly = body.dataset.viewOnly !== "false";
const expiresAt = Number(body.dataset.expiresAt) * 1000;
const token = new URLSearchParams(window.location.search).get("token") || "";
let retries = 0;

function showStatus(text, state) {
  statusEl.textContent = text;
  statusEl.className = state || "";
}

function websocketUrl() {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const query = "?token=" + encodeURIComponent(token);
  return scheme + "//" + window.location.host + body.dataset.websocketPath + query;
}

function connect() {
  showStatus(retries ? "Reconnecting…" : "Connecting…");
  // noVNC offers the "binary" subprotocol only if asked; the proxy accepts it.
  const rfb = new RFB(screenEl, websocketUrl(), { shared: true, wsProtocols: ["binary"] });
  rfb.viewOnly = viewOnly;
  rfb.scaleViewport = true;
  rfb.resizeSession = false;
  rfb.addEventListener("connect", () => {
    retries = 0;
    showStatus(viewOnly ? "Connected (view only)" : "Connected", "connected");
  });
  rfb.addEventListener("disconnect", (event) => {
    // The token only admits new connections: once expired, retrying cannot succeed.
    if (Date.now() >= expiresAt) {
      showStatus("Disconnected; this link has expired. Reopen the desktop from the app.", "failed");
    } else if (retries < MAX_RETRIES) {
      retries += 1;
      showStatus("Disconnected; reconnecting…", "failed");
      window.setTimeout(connect, 1000 * 2 ** (retries - 1));
    } else {
      const why = event.detail.clean ? "Disconnected." : "Connection lost.";
      showStatus(why + " Reload to try again.", "failed");
    }
  });
  rfb.addEventListener("securityfailure", (event) => {
    showStatus("VNC security failure: " + (event.detail.reason || "unknown"), "failed");
  });
}

connect();
