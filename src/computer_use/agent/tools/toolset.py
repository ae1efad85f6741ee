"""The GA computer toolset (`computer_toolset_20260801`) on the SDK's own driver class.

`BetaAsyncAbstractComputerToolset20260801` does the protocol: the `tools[]` entry, parsing and
type-checking each member's input, refusing unknown or disabled members, the `confirm` gate,
and rendering results into `tool_result` content. This subclass only supplies the desktop: each
member runs the same input, settle-wait and capture code as the beta computer tool
(tools/computer.py), with coordinates in the screenshot's pixel space scaled to the screen and
bounds-checked there. Errors are fixed phrases about coordinates and limits, never screen text.
"""

from __future__ import annotations

import base64
from typing import Any

from anthropic.tools import ToolError as SDKToolError
from anthropic.tools.computer import (
    BetaAsyncAbstractComputerToolset20260801,
    BetaAsyncComputerConfirmCallable,
    BetaComputerCursorPositionResult,
    BetaScreenshotResult,
    BetaToolsetCallContext,
)
from anthropic.types.beta import (
    BetaComputerCursorPositionInput as CursorPositionInput,
)
from anthropic.types.beta import (
    BetaComputerDoubleClickInput,
    BetaComputerHoldKeyInput,
    BetaComputerKeyInput,
    BetaComputerLeftClickDragInput,
    BetaComputerLeftClickInput,
    BetaComputerMiddleClickInput,
    BetaComputerMouseMoveInput,
    BetaComputerRightClickInput,
    BetaComputerScrollInput,
    BetaComputerTripleClickInput,
    BetaComputerTypeInput,
    BetaComputerWaitInput,
    BetaComputerZoomInput,
)
from anthropic.types.beta import (
    BetaComputerLeftMouseDownInput as LeftMouseDownInput,
)
from anthropic.types.beta import (
    BetaComputerLeftMouseUpInput as LeftMouseUpInput,
)
from anthropic.types.beta import (
    BetaComputerScreenshotInput as ScreenshotInput,
)
from pydantic import BaseModel

from computer_use.agent.tools.base import ToolError
from computer_use.agent.tools.computer import ComputerTool

Context = BetaToolsetCallContext


def _params(input: BaseModel) -> dict[str, Any]:
    return input.model_dump(exclude_none=True)


def _image(png: bytes) -> BetaScreenshotResult:
    return BetaScreenshotResult(data=base64.b64encode(png).decode(), media_type="image/png")


class DesktopToolset(BetaAsyncAbstractComputerToolset20260801):
    """Every computer member, on one session's desktop. Keep one per session, like the tool."""

    def __init__(
        self, computer: ComputerTool, *, confirm: BetaAsyncComputerConfirmCallable
    ) -> None:
        super().__init__(confirm=confirm)
        self._computer = computer

    async def _act(self, action: str, input: BaseModel) -> None:
        try:
            await self._computer.act(action, _params(input))
        except ToolError as exc:
            raise SDKToolError(str(exc)) from None

    async def key(self, context: Context, input: BetaComputerKeyInput) -> None:
        await self._act("key", input)

    async def hold_key(self, context: Context, input: BetaComputerHoldKeyInput) -> None:
        await self._act("hold_key", input)

    async def type(self, context: Context, input: BetaComputerTypeInput) -> None:
        await self._act("type", input)

    async def mouse_move(self, context: Context, input: BetaComputerMouseMoveInput) -> None:
        await self._act("mouse_move", input)

    async def left_mouse_down(self, context: Context, input: LeftMouseDownInput) -> None:
        await self._act("left_mouse_down", input)

    async def left_mouse_up(self, context: Context, input: LeftMouseUpInput) -> None:
        await self._act("left_mouse_up", input)

    async def left_click(self, context: Context, input: BetaComputerLeftClickInput) -> None:
        await self._act("left_click", input)

    async def left_click_drag(
        self, context: Context, input: BetaComputerLeftClickDragInput
    ) -> None:
        await self._act("left_click_drag", input)

    async def right_click(self, context: Context, input: BetaComputerRightClickInput) -> None:
        await self._act("right_click", input)

    async def middle_click(self, context: Context, input: BetaComputerMiddleClickInput) -> None:
        await self._act("middle_click", input)

    async def double_click(self, context: Context, input: BetaComputerDoubleClickInput) -> None:
        await self._act("double_click", input)

    async def triple_click(self, context: Context, input: BetaComputerTripleClickInput) -> None:
        await self._act("triple_click", input)

    async def scroll(self, context: Context, input: BetaComputerScrollInput) -> None:
        await self._act("scroll", input)

    async def wait(self, context: Context, input: BetaComputerWaitInput) -> None:
        try:
            await self._computer.wait(_params(input))
        except ToolError as exc:
            raise SDKToolError(str(exc)) from None

    async def cursor_position(
        self, context: Context, input: CursorPositionInput
    ) -> BetaComputerCursorPositionResult:
        x, y = await self._computer.cursor_position()
        return BetaComputerCursorPositionResult(x=x, y=y)

    async def screenshot(self, context: Context, input: ScreenshotInput) -> BetaScreenshotResult:
        return _image(await self._computer.screenshot())

    async def zoom(self, context: Context, input: BetaComputerZoomInput) -> BetaScreenshotResult:
        try:
            return _image(await self._computer.zoom(input.region))
        except ToolError as exc:
            raise SDKToolError(str(exc)) from None
