"""One short human-readable line per tool call, for the UI: "click at (512, 300)"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_CLICK_WORDS = {
    "left_click": "click",
    "right_click": "right-click",
    "middle_click": "middle-click",
    "double_click": "double-click",
    "triple_click": "triple-click",
}


def _short(text: object, limit: int = 60) -> str:
    value = str(text).replace("\n", "\u21b5")
    return value if len(value) <= limit else value[: limit - 1] + "\u2026"


def _point(value: object) -> str | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"({value[0]}, {value[1]})"
    return None


def describe_tool_use(name: str, params: Mapping[str, Any], toolset_name: str | None = None) -> str:
    """`toolset_name` "computer": `name` is a computer toolset member, described like the
    same action of the beta computer tool."""
    if toolset_name == "computer":
        return _describe_computer({**params, "action": name})
    if toolset_name is not None:
        return f"{toolset_name}: {name}"
    if name == "computer":
        return _describe_computer(params)
    if name == "bash":
        if params.get("restart"):
            return "restart the shell"
        return f"run `{_short(params.get('command', ''))}`"
    if name == "str_replace_based_edit_tool":
        command, path = params.get("command"), params.get("path", "?")
        if command == "insert":
            return f"insert into {path} after line {params.get('insert_line')}"
        verbs = {"view": "view", "create": "create", "str_replace": "edit"}
        return f"{verbs.get(str(command), str(command))} {path}"
    return name


def _describe_computer(params: Mapping[str, Any]) -> str:
    action = str(params.get("action", "?"))
    point = _point(params.get("coordinate"))
    at = f" at {point}" if point else ""
    if action in _CLICK_WORDS:
        modifiers = params.get("text") or params.get("key")
        prefix = f"{modifiers}+" if modifiers else ""
        return f"{prefix}{_CLICK_WORDS[action]}{at}"
    simple = {
        "screenshot": "take a screenshot",
        "cursor_position": "read the cursor position",
        "mouse_move": f"move the mouse to {point}",
        "left_mouse_down": f"press the left mouse button{at}",
        "left_mouse_up": f"release the left mouse button{at}",
        "type": f"type {_short(params.get('text', ''))!r}",
        "key": f"press {params.get('text', '?')}",
        "hold_key": f"hold {params.get('text', '?')} for {params.get('duration', '?')} s",
        "wait": f"wait {params.get('duration', '?')} s",
        "zoom": f"zoom into {params.get('region')}",
    }
    if action in simple:
        return simple[action]
    if action == "left_click_drag":
        return f"drag from {_point(params.get('start_coordinate'))} to {point}"
    if action == "scroll":
        amount = params.get("scroll_amount", "")
        return f"scroll {params.get('scroll_direction', '?')} {amount}{at}".replace("  ", " ")
    return action
