// Human-readable names for tool calls. Live `tool_use` events carry the server's own
// `description`; history (the stored Anthropic content blocks) does not, so the console
// describes those itself, the same way.

const shorten = (text, max = 60) => {
  const s = String(text ?? "").replace(/\s+/g, " ").trim();
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
};

const at = (coordinate) =>
  Array.isArray(coordinate) && coordinate.length === 2 ? ` at (${coordinate[0]}, ${coordinate[1]})` : "";

const CLICKS = {
  left_click: "Click",
  right_click: "Right-click",
  middle_click: "Middle-click",
  double_click: "Double-click",
  triple_click: "Triple-click",
};

function describeComputer(input) {
  const action = input.action;
  const modifiers = input.text && CLICKS[action] ? `${input.text}+` : "";
  if (CLICKS[action]) return `${modifiers}${CLICKS[action].toLowerCase()}${at(input.coordinate)}`;
  switch (action) {
    case "screenshot":
      return "take a screenshot";
    case "mouse_move":
      return `move the mouse${at(input.coordinate).replace(" at", " to")}`;
    case "left_click_drag": {
      const from = at(input.start_coordinate).replace(" at", " from");
      return `drag${from}${at(input.coordinate).replace(" at", " to")}`;
    }
    case "left_mouse_down":
      return "press the left mouse button";
    case "left_mouse_up":
      return "release the left mouse button";
    case "type":
      return `type '${shorten(input.text)}'`; // quoted like the server's own descriptions
    case "key":
      return `press ${shorten(input.text, 40)}`;
    case "hold_key":
      return `hold ${shorten(input.text, 30)} for ${input.duration ?? "?"} s`;
    case "scroll":
      return `scroll ${input.scroll_direction || ""} ${input.scroll_amount ?? ""}${at(input.coordinate)}`
        .replace(/\s+/g, " ")
        .trim();
    case "wait":
      return `wait ${input.duration ?? ""} s`.replace(/\s+/g, " ");
    case "cursor_position":
      return "read the cursor position";
    case "zoom": {
      const r = Array.isArray(input.region) ? input.region : [];
      return r.length === 4 ? `zoom into (${r[0]}, ${r[1]})–(${r[2]}, ${r[3]})` : "zoom in";
    }
    default:
      return shorten(action || "computer action");
  }
}

function describeEditor(input) {
  const path = shorten(input.path, 50);
  switch (input.command) {
    case "view":
      return `view ${path}`;
    case "create":
      return `create ${path}`;
    case "str_replace":
      return `edit ${path}`;
    case "insert":
      return `insert into ${path} after line ${input.insert_line ?? "?"}`;
    case "undo_edit":
      return `undo the last edit of ${path}`;
    default:
      return `${input.command || "edit"} ${path}`;
  }
}

/** A short sentence for a tool call, e.g. "click at (512, 300)", "run `ls -la`". A computer
 * toolset member (toolsetName "computer", name "left_click") reads like the same action. */
export function describeToolUse(name, input = {}, toolsetName = null) {
  const args = input && typeof input === "object" ? input : {};
  if (toolsetName === "computer") return describeComputer({ ...args, action: name });
  if (name === "computer") return describeComputer(args);
  if (name === "bash") return args.restart ? "restart the shell" : `run \`${shorten(args.command)}\``;
  if (name === "str_replace_based_edit_tool" || name === "str_replace_editor") {
    return describeEditor(args);
  }
  return `${name}(${shorten(JSON.stringify(args), 50)})`;
}

/** The short label on a tool card: the computer action, or the tool's name. */
export function toolKind(name, input = {}, toolsetName = null) {
  if (toolsetName === "computer") return toolKind("computer", { action: name });
  if (name === "computer") {
    const action = String(input?.action || "computer");
    if (CLICKS[action]) return "click";
    return action.replace(/_/g, " ");
  }
  if (name === "str_replace_based_edit_tool" || name === "str_replace_editor") return "edit";
  return name;
}
