"""Stuck detection: a run whose input actions no longer change the screen is ended as `stuck`.

Two rules (settings STUCK_REPEATS and STUCK_STEPS, 0 turns one off):

- the same input action (same action, same input) taken on the same screen `repeats` times;
- `steps` model steps in a row whose input actions all left the screen as it was.

Input actions are the computer tool's actions and the computer toolset's members that act on
the desktop (clicks, typing, keys, scrolls, drags, pointer moves); screenshots, zoom, cursor
position and waits never count, and a step with no input action (only looking, or only bash
and editor calls) neither counts nor clears the streak. "The same screen" is a hash of a full
capture (`DesktopPort.fingerprint`: CRC-32 of the raw XShm frame, ~1 ms) taken just before and
just after each input action (after the action's settle-wait).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
COMPUTER_TOOL = "computer"
OBSERVATIONS = frozenset({"screenshot", "zoom", "cursor_position", "wait"})
Screen = Callable[[], Awaitable[int]]  # the screen's fingerprint now


def input_action(call: Mapping[str, Any]) -> tuple[str, str] | None:
    """(action, its input as canonical JSON) for a call that acts on the desktop, else None."""
    params = call.get("input")
    params = dict(params) if isinstance(params, Mapping) else {}
    if call.get("toolset_name") is not None:
        action = call.get("name")
    elif call.get("name") == COMPUTER_TOOL:
        action = params.pop("action", None)
    else:
        return None
    if not isinstance(action, str) or action in OBSERVATIONS:
        return None
    return action, json.dumps(params, sort_keys=True, default=str)


class StuckDetector:
    """One per run. `watch` each tool call, `end_step` after each step's calls; `verdict` is
    set (a sentence for the user) once the run is stuck."""

    def __init__(self, screen: Screen, *, repeats: int, steps: int) -> None:
        self._screen = screen
        self.repeats, self.steps = repeats, steps
        self._seen: Counter[tuple[str, str, int]] = Counter()
        self._stalled = 0  # steps in a row whose input actions changed nothing
        self._acted = self._changed = False  # in the current step
        self.verdict: str | None = None

    @property
    def enabled(self) -> bool:
        return self.repeats > 0 or self.steps > 0

    async def watch(self, call: Mapping[str, Any], work: Awaitable[T]) -> T:
        """Run `work` (the call); around an input action, fingerprint the screen."""
        action = input_action(call) if self.enabled else None
        if action is None:
            return await work
        before = await self._screen()
        result = await work
        after = await self._screen()
        self._acted = True
        self._changed = self._changed or after != before
        key = (*action, before)
        self._seen[key] += 1
        if self.repeats and self._seen[key] >= self.repeats and self.verdict is None:
            self.verdict = (
                f"Stopped: stuck, the same {action[0]} on an unchanged screen "
                f"{self._seen[key]} times (STUCK_REPEATS)."
            )
        return result

    def end_step(self) -> None:
        if self._acted:
            self._stalled = 0 if self._changed else self._stalled + 1
        self._acted = self._changed = False
        if self.steps and self._stalled >= self.steps and self.verdict is None:
            self.verdict = (
                f"Stopped: stuck, {self._stalled} steps in a row whose actions changed nothing "
                "on the screen (STUCK_STEPS)."
            )
