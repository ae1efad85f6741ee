"""The computer tool (computer_20250124 and computer_20251124) over a DesktopPort; its actions
also serve the computer toolset's members (tools/toolset.py).

Coordinates arrive in the model's image space and are checked there, then mapped to the screen
(see scaling.py). Every action that can change the screen waits for it to settle and returns a
screenshot at the advertised size, so the model sees the effect of what it did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from computer_use.agent.tools.base import ToolError, ToolResult
from computer_use.agent.tools.scaling import Scaling, fit_png, fit_within_limits
from computer_use.agent.versions import ToolVersions
from computer_use.desktop_port import DesktopPort, MouseButton, ScrollDirection

CLICKS: dict[str, tuple[MouseButton, int]] = {
    "left_click": ("left", 1),
    "right_click": ("right", 1),
    "middle_click": ("middle", 1),
    "double_click": ("left", 2),
    "triple_click": ("left", 3),
}
SCROLL_DIRECTIONS: tuple[ScrollDirection, ...] = ("up", "down", "left", "right")
ACTIONS_20250124 = frozenset(
    {
        "key",
        "type",
        "mouse_move",
        *CLICKS,
        "left_click_drag",
        "left_mouse_down",
        "left_mouse_up",
        "scroll",
        "hold_key",
        "wait",
        "screenshot",
        "cursor_position",
    }
)
ACTIONS_20251124 = ACTIONS_20250124 | {"zoom"}
MAX_DURATION = 100.0
MAX_REPEAT = 100


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _point(params: Mapping[str, Any], key: str) -> tuple[int, int] | None:
    value = params.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or any(isinstance(v, float) and not v.is_integer() for v in value)
    ):
        raise ToolError(f"{key} must be a list of two integers [x, y], got {value!r}")
    return int(value[0]), int(value[1])


def _required_point(params: Mapping[str, Any], key: str, action: str) -> tuple[int, int]:
    point = _point(params, key)
    if point is None:
        raise ToolError(f"{key} is required for {action}")
    return point


def _text(params: Mapping[str, Any], action: str) -> str:
    text = params.get("text")
    if not isinstance(text, str) or not text:
        raise ToolError(f"text is required for {action} (a non-empty string)")
    return text


def _duration(params: Mapping[str, Any], action: str, *, allow_zero: bool) -> float:
    value = params.get("duration")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ToolError(f"duration (seconds) is required for {action}")
    if value < 0 or (value == 0 and not allow_zero) or value > MAX_DURATION:
        raise ToolError(f"duration must be between 0 and {MAX_DURATION:g} seconds, got {value}")
    return float(value)


def _modifiers(params: Mapping[str, Any]) -> list[str]:
    # The docs put click/scroll modifiers in `text`; the reference demo used `key`. Accept both.
    raw = params.get("text") or params.get("key") or ""
    if not isinstance(raw, str):
        raise ToolError("modifier keys must be a string such as 'shift' or 'ctrl+shift'")
    return [part.strip() for part in raw.split("+") if part.strip()]


class ComputerTool:
    name = "computer"

    def __init__(self, desktop: DesktopPort, *, settle_timeout: float = 2.0) -> None:
        self._desktop = desktop
        self._settle_timeout = settle_timeout

    @property
    def scaling(self) -> Scaling:
        return Scaling(self._desktop.width, self._desktop.height)

    def definition(self, versions: ToolVersions) -> dict[str, Any]:
        scaling = self.scaling
        definition: dict[str, Any] = {
            "type": versions.computer,
            "name": self.name,
            "display_width_px": scaling.api_width,
            "display_height_px": scaling.api_height,
        }
        if versions.zoom:
            definition["enable_zoom"] = True
        return definition

    async def __call__(self, params: Mapping[str, Any], versions: ToolVersions) -> ToolResult:
        action = params.get("action")
        allowed = ACTIONS_20251124 if versions.zoom else ACTIONS_20250124
        if not isinstance(action, str) or action not in allowed:
            raise ToolError(
                f"unknown action {action!r} for {versions.computer}; "
                f"valid actions: {', '.join(sorted(allowed))}"
            )
        if action == "screenshot":
            return ToolResult(image=await self.screenshot())
        if action == "cursor_position":
            ax, ay = await self.cursor_position()
            return ToolResult(output=f"X={ax},Y={ay}")
        if action == "zoom":
            return ToolResult(image=await self.zoom(params.get("region")))
        if action == "wait":
            await self.wait(params)
            return ToolResult(image=await self.screenshot())
        await self.act(action, params)
        return ToolResult(image=await self.screenshot())

    async def cursor_position(self) -> tuple[int, int]:
        """Where the pointer is, in the screenshot's pixel space."""
        x, y = await self._desktop.cursor_position()
        return self.scaling.to_api(x, y)

    async def wait(self, params: Mapping[str, Any]) -> None:
        await asyncio.sleep(_duration(params, "wait", allow_zero=True))

    async def screenshot(self) -> bytes:
        scaling = self.scaling
        png = await self._desktop.screenshot()
        # Resizing takes tens of milliseconds on a big screen: keep it off the event loop.
        return await asyncio.to_thread(fit_png, png, scaling.api_width, scaling.api_height)

    def _screen_point(self, params: Mapping[str, Any], key: str) -> tuple[int, int] | None:
        point = _point(params, key)
        return None if point is None else self.scaling.to_screen(*point)

    async def act(self, action: str, params: Mapping[str, Any]) -> None:
        """One input action (coordinates in the screenshot's space), then the settle-wait."""
        await self._input(action, params)
        await self._desktop.wait_until_settled(timeout=self._settle_timeout)

    async def _input(self, action: str, params: Mapping[str, Any]) -> None:
        desktop = self._desktop
        if action == "key":
            combo, repeat = _text(params, action), params.get("repeat") or 1
            if not _is_int(repeat) or not 1 <= repeat <= MAX_REPEAT:
                raise ToolError(f"repeat must be an integer from 1 to {MAX_REPEAT}")
            for _ in range(repeat):
                await desktop.key(combo)
        elif action == "type":
            await desktop.type_text(_text(params, action))
        elif action == "hold_key":
            text = _text(params, action)
            await desktop.hold_key(text, _duration(params, action, allow_zero=False))
        elif action == "mouse_move":
            x, y = self.scaling.to_screen(*_required_point(params, "coordinate", action))
            await desktop.move_mouse(x, y)
        elif action in CLICKS:
            button, count = CLICKS[action]
            point = self._screen_point(params, "coordinate")
            modifiers = _modifiers(params)
            if point is None:
                await desktop.click(None, None, button=button, count=count, modifiers=modifiers)
            else:
                await desktop.click(*point, button=button, count=count, modifiers=modifiers)
        elif action == "left_click_drag":
            start = _required_point(params, "start_coordinate", action)
            end = _required_point(params, "coordinate", action)
            self.scaling.check(*start, what="start_coordinate")
            x1, y1 = self.scaling.to_screen(*start)
            x2, y2 = self.scaling.to_screen(*end)
            await desktop.drag(x1, y1, x2, y2)
        elif action in ("left_mouse_down", "left_mouse_up"):
            point = self._screen_point(params, "coordinate")
            if point is not None:
                await desktop.move_mouse(*point)
            if action == "left_mouse_down":
                await desktop.mouse_down("left")
            else:
                await desktop.mouse_up("left")
        elif action == "scroll":
            await self._scroll(params)

    async def _scroll(self, params: Mapping[str, Any]) -> None:
        direction = params.get("scroll_direction")
        if direction not in SCROLL_DIRECTIONS:
            raise ToolError(f"scroll_direction must be one of {', '.join(SCROLL_DIRECTIONS)}")
        amount = params.get("scroll_amount", 3)
        if not _is_int(amount) or amount < 0:
            raise ToolError(f"scroll_amount must be a non-negative integer, got {amount!r}")
        point = self._screen_point(params, "coordinate")
        x, y = (None, None) if point is None else point
        await self._desktop.scroll(x, y, direction, amount, modifiers=_modifiers(params))

    async def zoom(self, region: object) -> bytes:
        """PNG of `region` ([x1, y1, x2, y2] in the screenshot's space), captured at the
        screen's own resolution and shrunk only if it exceeds the API's image limits."""
        if (
            not isinstance(region, list | tuple)
            or len(region) != 4
            or not all(_is_int(v) for v in region)
        ):
            raise ToolError(f"region must be [x1, y1, x2, y2] (integers), got {region!r}")
        x1, y1, x2, y2 = (int(v) for v in region)
        scaling = self.scaling
        if not (0 <= x1 < x2 <= scaling.api_width and 0 <= y1 < y2 <= scaling.api_height):
            raise ToolError(
                f"region {list(region)} must satisfy 0 <= x1 < x2 <= {scaling.api_width} and "
                f"0 <= y1 < y2 <= {scaling.api_height} (the screenshot's size)"
            )
        scale = scaling.scale
        sx1, sy1 = round(x1 / scale), round(y1 / scale)
        sx2 = min(scaling.screen_width, max(sx1 + 1, round(x2 / scale)))
        sy2 = min(scaling.screen_height, max(sy1 + 1, round(y2 / scale)))
        png = await self._desktop.zoom(sx1, sy1, sx2, sy2)
        return await asyncio.to_thread(fit_within_limits, png)
