// Seeing a run again: the session's recording with its action timeline (each tool call a
// marker that seeks the video; the step's screenshot and text beside it), and an exported
// trajectory zip opened offline, stepped through with click positions drawn.
import { clear, h } from "./dom.js";
import { filesApi } from "./files.js";
import { readZip } from "./zipread.js";

const POINT_ACTIONS = new Set([
  "left_click", "right_click", "middle_click", "double_click", "triple_click", "mouse_move",
  "left_click_drag", "scroll", "left_mouse_down", "left_mouse_up",
]);

function describe(tool, input) {
  if (!input) return tool;
  if (input.action) {
    const at = Array.isArray(input.coordinate) ? ` (${input.coordinate.join(", ")})` : "";
    const text = input.text ? ` “${input.text}”` : "";
    return `${input.action}${at}${text}`;
  }
  if (input.command) return `${tool}: ${String(input.command).slice(0, 80)}`;
  return tool;
}

function formatSeconds(s) {
  const whole = Math.max(0, Math.floor(s));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

export class RecordingPlayer {
  /** @param {object} els  dialog, video, markers, shot, text, status */
  constructor(els, { imageSrc }) {
    Object.assign(this, els);
    this.imageSrc = imageSrc;
    this.url = null;
    this.dialog.addEventListener("close", () => this.#release());
  }

  async open(sessionId) {
    this.status.textContent = "Loading the recording…";
    clear(this.markers);
    this.text.textContent = "";
    this.shot.hidden = true;
    this.dialog.showModal();
    let timeline;
    try {
      const [blob, data] = await Promise.all([
        filesApi.recording(sessionId),
        filesApi.timeline(sessionId),
      ]);
      timeline = data;
      this.#release();
      this.url = URL.createObjectURL(blob);
      this.video.src = this.url;
    } catch (error) {
      this.status.textContent = `Could not load the recording: ${error.message}`;
      return;
    }
    const markers = timeline.markers.filter((m) => m.video_seconds !== null);
    this.status.textContent = markers.length
      ? `${markers.length} actions; click one to see that moment.`
      : "No agent actions in this recording yet.";
    this.markers.append(...markers.map((marker, index) =>
      h("li", {},
        h("button", {
          type: "button", class: "marker", dataset: { index: String(index), seconds: String(marker.video_seconds) },
          onclick: (event) => this.#select(marker, event.currentTarget),
        },
        h("span", { class: "marker-time" }, formatSeconds(marker.video_seconds)),
        ` ${describe(marker.tool, marker.input)}`))));
  }

  #select(marker, button) {
    for (const el of this.markers.querySelectorAll(".marker")) el.removeAttribute("aria-current");
    button.setAttribute("aria-current", "true");
    this.video.currentTime = marker.video_seconds;
    const src = marker.screenshot_url ? this.imageSrc(marker.screenshot_url) : null;
    this.shot.hidden = !src;
    if (src) this.shot.src = src;
    const parts = [`Step ${marker.step}: ${describe(marker.tool, marker.input)}`];
    if (marker.text) parts.push(marker.text);
    if (marker.error) parts.push(`Error: ${marker.error}`);
    else if (marker.result_text) parts.push(marker.result_text);
    this.text.textContent = parts.join("\n\n");
  }

  #release() {
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
  }
}

export class TrajectoryViewer {
  /** @param {object} els  dialog, title, canvas, text, position, prev, next */
  constructor(els) {
    Object.assign(this, els);
    this.steps = [];
    this.images = new Map();
    this.index = 0;
    this.prev.addEventListener("click", () => this.#go(this.index - 1));
    this.next.addEventListener("click", () => this.#go(this.index + 1));
    this.dialog.addEventListener("keydown", (event) => {
      if (event.key === "ArrowLeft") this.#go(this.index - 1);
      if (event.key === "ArrowRight") this.#go(this.index + 1);
    });
  }

  /** Opens an exported trajectory zip (a File from a picker or a drop). */
  async open(file) {
    for (const url of this.images.values()) URL.revokeObjectURL(url);
    this.images.clear();
    const entries = await readZip(file);
    const read = async (name) => {
      const entry = entries.get(name);
      if (!entry) throw new Error(`${name} is missing: is this a trajectory export?`);
      return entry();
    };
    const decoder = new TextDecoder();
    const meta = JSON.parse(decoder.decode(await read("trajectory.json")));
    this.steps = decoder.decode(await read("steps.jsonl")).split("\n").filter(Boolean).map((l) => JSON.parse(l));
    for (const [name, entry] of entries) {
      if (name.startsWith("screenshots/")) {
        const type = name.endsWith(".jpg") ? "image/jpeg" : name.endsWith(".webp") ? "image/webp" : "image/png";
        this.images.set(name, URL.createObjectURL(new Blob([await entry()], { type })));
      }
    }
    this.title.textContent = `${meta.title || "Trajectory"} · ${meta.model || ""} · ${this.steps.length} steps`;
    this.dialog.showModal();
    this.#go(0);
  }

  async #go(index) {
    if (!this.steps.length) return;
    this.index = Math.max(0, Math.min(index, this.steps.length - 1));
    const step = this.steps[this.index];
    this.position.textContent = `Step ${step.step} of ${this.steps.length}`;
    this.prev.disabled = this.index === 0;
    this.next.disabled = this.index === this.steps.length - 1;
    const lines = [];
    if (step.prompt) lines.push(`User: ${step.prompt}`);
    if (step.thinking) lines.push(`Thinking: ${step.thinking}`);
    if (step.text) lines.push(step.text);
    for (const call of step.tool_calls) {
      lines.push(`→ ${describe(call.name, call.input)}`);
      if (call.error) lines.push(`Error: ${call.error}`);
      else if (call.result_text) lines.push(call.result_text);
    }
    lines.push(`${step.time} · ${step.duration_seconds} s`);
    this.text.textContent = lines.join("\n\n");
    const call = step.tool_calls.find((c) => c.screenshot);
    await this.#draw(call ? this.images.get(call.screenshot) : null, step.tool_calls);
  }

  async #draw(url, calls) {
    const ctx = this.canvas.getContext("2d");
    if (!url) {
      this.canvas.width = 320;
      this.canvas.height = 40;
      ctx.fillStyle = "#697080";
      ctx.fillText("No screenshot in this step.", 10, 24);
      this.canvas.dataset.clicks = "0";
      return;
    }
    const image = new Image();
    image.src = url;
    await image.decode();
    this.canvas.width = image.naturalWidth;
    this.canvas.height = image.naturalHeight;
    ctx.drawImage(image, 0, 0);
    let clicks = 0;
    for (const call of calls) {
      const at = call.input && call.input.coordinate;
      if (!Array.isArray(at) || !POINT_ACTIONS.has(call.input.action)) continue;
      clicks += 1;
      ctx.strokeStyle = "#d9773b";
      ctx.lineWidth = 3;
      ctx.beginPath();
      ctx.arc(at[0], at[1], 14, 0, 2 * Math.PI);
      ctx.moveTo(at[0] - 22, at[1]);
      ctx.lineTo(at[0] + 22, at[1]);
      ctx.moveTo(at[0], at[1] - 22);
      ctx.lineTo(at[0], at[1] + 22);
      ctx.stroke();
    }
    this.canvas.dataset.clicks = String(clicks); // for tests and scripts
  }
}
