"""Who approves an action before it runs: the approval policy and the session's seam for it.

A session's `approval` policy is `"auto"` (nothing waits), `"ask"` (every action that changes
something waits for a person) or a list of the action kinds that wait. A kind is a computer
action (`type`, `key`, `left_click`, ...), `bash` (any command, a restart too) or `editor` (a
write: create, str_replace, insert, undo_edit). Looking never waits: screenshots, zoom, the
cursor position, waits and the editor's `view`.

Each session has exactly one `ActionApprover`, owned by its SessionTools. The SDK's toolset
driver asks it (its `confirm` hook) before every member call; the beta tools ask it through
`check` before they run. It asks the run's gate (agent/approvals_gate.py), when one is set: a
refusal is a ToolError the model reads as the call's result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from anthropic.tools import ToolError as SDKToolError
from anthropic.tools.computer import BetaComputerConfirmContext

from computer_use.agent.tools.base import ToolError

# Actions that change something, in the order the docs list them.
CHANGING_ACTIONS = (
    "type",
    "key",
    "hold_key",
    "left_click",
    "right_click",
    "middle_click",
    "double_click",
    "triple_click",
    "left_click_drag",
    "left_mouse_down",
    "left_mouse_up",
    "mouse_move",
    "scroll",
)
KINDS = (*CHANGING_ACTIONS, "bash", "editor")
EDITOR_WRITES = ("create", "str_replace", "insert", "undo_edit")
EDITOR_TOOLS = ("str_replace_based_edit_tool", "str_replace_editor")

Policy = frozenset[str]


def parse_policy(value: str | list[str] | None) -> Policy:
    """The kinds that wait under `value`; ValueError naming what is accepted."""
    if value is None or value == "auto":
        return frozenset()
    if value == "ask":
        return frozenset(KINDS)
    if isinstance(value, str):
        raise ValueError('approval must be "auto", "ask" or a list of action kinds')
    unknown = sorted(set(value) - set(KINDS))
    if unknown:
        raise ValueError(
            f"unknown action kind(s) {', '.join(unknown)}; the kinds are {', '.join(KINDS)}"
        )
    return frozenset(value)


def stored_policy(value: str | list[str] | None) -> str | list[str] | None:
    """How a session row keeps a policy: None is "auto" (the default)."""
    return None if value in (None, "auto") else value


def action_kind(name: str, params: Mapping[str, Any], toolset_name: str | None) -> str | None:
    """The kind of one call (None: it only looks, never waits)."""
    if toolset_name is not None:
        return name if name in CHANGING_ACTIONS else None
    if name == "computer":
        action = params.get("action")
        return action if action in CHANGING_ACTIONS else None
    if name == "bash":
        return "bash"
    if name in EDITOR_TOOLS:
        return "editor" if params.get("command") in EDITOR_WRITES else None
    return None


@dataclass(frozen=True)
class GatedCall:
    """A call of a kind the gate may hold (`action_kind`), as the gate sees it."""

    kind: str
    name: str
    params: Mapping[str, Any]
    toolset_name: str | None
    tool_use_id: str | None


class Gate(Protocol):
    async def check(self, call: GatedCall) -> None:
        """Returns when the call may run; raises ToolError when it may not."""


class ActionApprover:
    def __init__(self) -> None:
        self.gate: Gate | None = None  # set by the runner for the session's runs

    async def __call__(self, context: BetaComputerConfirmContext) -> bool:
        return await self.decide(context)

    async def decide(self, context: BetaComputerConfirmContext) -> bool:
        """The toolset's confirm hook: True runs the call; a refusal reaches the model as the
        call's error (the SDK relays a ToolError raised here as-is)."""
        params = context.input.model_dump(exclude_none=True)
        tool_use_id = context.tool_use.id if context.tool_use is not None else None
        try:
            await self.check(
                context.member, params, toolset_name="computer", tool_use_id=tool_use_id
            )
        except ToolError as exc:
            raise SDKToolError(str(exc)) from None
        return True

    async def check(
        self,
        name: str,
        params: Mapping[str, Any],
        *,
        toolset_name: str | None = None,
        tool_use_id: str | None = None,
    ) -> None:
        kind = action_kind(name, params, toolset_name)
        if self.gate is None or kind is None:
            return
        await self.gate.check(GatedCall(kind, name, params, toolset_name, tool_use_id))
