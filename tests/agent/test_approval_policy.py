"""Which calls wait for a person under each approval policy (agent/tools/approvals.py)."""

from __future__ import annotations

import pytest

from computer_use.agent.tools.approvals import KINDS, action_kind, parse_policy


def test_ask_covers_every_changing_kind_and_auto_none() -> None:
    assert parse_policy("ask") == frozenset(KINDS)
    assert parse_policy("auto") == parse_policy(None) == frozenset()
    assert parse_policy(["type", "bash"]) == {"type", "bash"}
    with pytest.raises(ValueError, match=r"unknown action kind.*screenshot.*the kinds are type"):
        parse_policy(["screenshot"])
    with pytest.raises(ValueError, match='"auto", "ask"'):
        parse_policy("sometimes")


@pytest.mark.parametrize(
    ("name", "params", "toolset", "kind"),
    [
        ("type", {"text": "x"}, "computer", "type"),
        ("left_click_drag", {}, "computer", "left_click_drag"),
        ("scroll", {}, "computer", "scroll"),
        ("screenshot", {}, "computer", None),
        ("zoom", {}, "computer", None),
        ("cursor_position", {}, "computer", None),
        ("wait", {}, "computer", None),
        ("computer", {"action": "key", "text": "a"}, None, "key"),
        ("computer", {"action": "mouse_move"}, None, "mouse_move"),
        ("computer", {"action": "screenshot"}, None, None),
        ("computer", {"action": "zoom"}, None, None),
        ("bash", {"command": "ls"}, None, "bash"),
        ("bash", {"restart": True}, None, "bash"),
        ("str_replace_based_edit_tool", {"command": "view"}, None, None),
        ("str_replace_based_edit_tool", {"command": "create"}, None, "editor"),
        ("str_replace_based_edit_tool", {"command": "undo_edit"}, None, "editor"),
        ("ask_person", {"question": "?"}, None, None),
    ],
)
def test_kind_of_each_call(
    name: str, params: dict[str, object], toolset: str | None, kind: str | None
) -> None:
    assert action_kind(name, params, toolset) == kind
