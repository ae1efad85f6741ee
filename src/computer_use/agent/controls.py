"""A person's hand on a run: pause and resume (taking control of the desktop is a pause by a
person), the approval gate, and what the loop asks of them between actions.

The loop (agent.loop) calls `before_action()` before each model request and before each tool
call: while the session is paused it waits there, so the agent sends no input while a person
holds the desktop. When the run was held, the calls left in that turn are answered "not run"
(they were planned on a screen that may have changed) and `handover()` gives the next user turn
a note saying who used the desktop, with a fresh screenshot. `stop()` says the run must end
(an approval expired, or too many were declined).

`LoopControls` is the inert form (never paused, nothing to stop); `SessionControls` is one
session's, kept by the runner for the session's life. Who holds the desktop is stored on the
session (`paused_by`) so it outlives a restart; a run started while paused waits before its
first request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from computer_use.agent.events import StopReason
from computer_use.agent.history import base64_image, stored_image

if TYPE_CHECKING:
    from computer_use.agent.approvals_gate import ApprovalGate

log = logging.getLogger(__name__)
Holder = Literal["person", "api"]
Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
Screenshot = Callable[[], Awaitable[bytes]]
SaveImage = Callable[[bytes], Awaitable[str]]
ImageUrl = Callable[[str], str]

NOT_RUN_PAUSED = (
    "Not run: the run was paused before this action (the screen may have changed since you "
    "planned it); look at the new screenshot and decide again."
)
HANDED_BACK = {
    "person": "A person took control of the desktop and used it while you were paused; they "
    "have handed it back. Here is the screen as they left it: check it before you act.",
    "api": "The run was paused and is now resumed; the screen may have changed meanwhile. "
    "Here is the screen now: check it before you act.",
}


class LoopControls:
    """What the loop asks between actions; this base never pauses and never stops."""

    async def before_action(self) -> bool:
        """Waits while paused; True when it did wait (the caller skips what it planned)."""
        return False

    async def handover(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        """After a wait: (API form, storage form) blocks telling the model, once."""
        return None

    def stop(self) -> tuple[StopReason, str] | None:
        """(stop reason, detail) when the run must end now (an approval expired, or the
        person declined DECLINES_TO_STOP actions in a row), else None."""
        return None


class SessionControls(LoopControls):
    def __init__(
        self,
        *,
        gate: ApprovalGate,
        publish: Publish,
        screenshot: Screenshot,
        save_image: SaveImage,
        image_url: ImageUrl,
        paused_by: Holder | None = None,
    ) -> None:
        self.gate = gate
        self._publish, self._screenshot = publish, screenshot
        self._save_image, self._image_url = save_image, image_url
        self.paused_by: Holder | None = paused_by
        self._resumed = asyncio.Event()
        if paused_by is None:
            self._resumed.set()
        self.held = False  # a run is waiting in before_action right now
        self._held_by: Holder | None = None  # who the last wait was for, until handover

    # --- the person's side (REST, MCP, console) ---------------------------------------

    def pause(self, by: Holder) -> None:
        self.paused_by = by
        self._resumed.clear()

    def resume(self) -> None:
        self.paused_by = None
        self._resumed.set()

    # --- the loop's side --------------------------------------------------------------

    async def before_action(self) -> bool:
        if self._resumed.is_set():
            return False
        by = self.paused_by or "api"
        self.held, self._held_by = True, by
        detail = (
            "A person holds the desktop; the agent waits until it is handed back."
            if by == "person"
            else "Paused; the agent waits until the run is resumed."
        )
        await self._publish("paused", {"by": by, "detail": detail})
        try:
            await self._resumed.wait()
        finally:
            self.held = False
        return True

    async def handover(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        by, self._held_by = self._held_by, None
        if by is None:
            return None
        text = {"type": "text", "text": HANDED_BACK[by]}
        try:
            png = await self._screenshot()
            image_id = await self._save_image(png)
        except Exception:  # no picture (the desktop is restarting): the note all the same
            log.exception("no screenshot for the hand-back")
            await self._publish("resumed", {"by": by, "image_id": None, "image_url": None})
            return [text], [text]
        await self._publish(
            "resumed", {"by": by, "image_id": image_id, "image_url": self._image_url(image_id)}
        )
        return [text, base64_image(png)], [text, stored_image(image_id)]

    def stop(self) -> tuple[StopReason, str] | None:
        return self.gate.ended
