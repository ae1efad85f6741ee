"""One agent run seen from an MCP tool call: start it, relay its progress, wait for its end.

The run itself belongs to AgentRunner (the same one REST uses); this module only follows the
session's events from the bus. If the tool call is cancelled (the client sent
notifications/cancelled, or closed the response stream), the run is cancelled too and we wait
for it to finish, so its history stays valid for the next task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from computer_use.streaming.bus import StoredEvent

if TYPE_CHECKING:
    from computer_use.lifespan import Runtime

# How long a cancelled call waits for its run to wind down (it stops at the next await).
STOP_TIMEOUT_SECONDS = 30.0
PROGRESS_TEXT_CHARS = 200

Progress = Callable[[float, float | None, str | None], Awaitable[None]]


@dataclass
class RunOutcome:
    stop_reason: str
    steps: int
    detail: str | None
    answer: list[str] = field(default_factory=list)  # text blocks after the last action
    last_text: str = ""  # the run's last text block, wherever it came
    error: dict[str, Any] | None = None  # the `error` event just before a failed end

    @property
    def answer_text(self) -> str:
        """The agent's final words: its text after the last action (else its last text)."""
        return "\n\n".join(self.answer) or self.last_text


class SessionClosed(Exception):
    """The session's event stream ended before the run did (the session was destroyed)."""


async def run_task(
    runtime: Runtime, *, session_id: str, task: str, api_key: str | None, progress: Progress
) -> RunOutcome:
    """Starts the agent on `task` and returns once it finished; raises what runner.start
    raises (Conflict when busy, DomainError without a key, ...)."""
    session = await runtime.sessions.get(session_id=session_id)
    # From the current last id: this run's events only, none missed between start and follow.
    events = runtime.bus.subscribe(session_id, session.last_event_id)
    async with aclosing(events):
        # Shielded: a half-done start would leave the session marked processing with no run.
        with anyio.CancelScope(shield=True):
            await runtime.runner.start(session_id=session_id, content=task, api_key=api_key)
            # Created now, while the run is surely registered (it has not reached its first
            # database write yet): resolves once the run is over AND the session is idle
            # again, which message_complete alone does not mean.
            finished = asyncio.ensure_future(runtime.runner.wait(session_id=session_id))
        try:
            outcome = await _follow(events, progress)
            await finished
            return outcome
        except anyio.get_cancelled_exc_class():
            with anyio.move_on_after(STOP_TIMEOUT_SECONDS, shield=True):
                await runtime.runner.cancel(session_id=session_id)
                await finished
            raise
        finally:
            finished.cancel()


async def _follow(events: AsyncIterator[StoredEvent], progress: Progress) -> RunOutcome:
    count = 0
    answer: list[str] = []
    last_text = ""
    error: dict[str, Any] | None = None
    async for event in events:
        data = event.data
        message: str | None = None
        if event.type == "tool_use":
            answer = []
            message = str(data.get("description") or data.get("name") or "action")
        elif event.type == "text":
            text = str(data.get("text") or "").strip()
            if text:
                answer.append(text)
                last_text = text
                message = _shorten(text)
        elif event.type == "error":
            error = data
        elif event.type == "message_complete":
            return RunOutcome(
                stop_reason=str(data.get("stop_reason")),
                steps=int(data.get("steps") or 0),
                detail=data.get("detail"),
                answer=answer,
                last_text=last_text,
                error=error,
            )
        if message is not None:
            count += 1  # progress must increase with every notification
            await progress(count, None, message)
    raise SessionClosed


def _shorten(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= PROGRESS_TEXT_CHARS else line[: PROGRESS_TEXT_CHARS - 1] + "…"
