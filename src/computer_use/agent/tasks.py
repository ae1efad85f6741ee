"""A task as something a client starts, follows for a while, comes back to, or cancels.

A run can take many minutes while a client's call gives up after one (the TypeScript MCP SDK
after 60 s by default). So following a run is separate from the run: `TaskTracker.follow`
watches the session's latest run for at most `max_wait` seconds and returns what it knows
(done with the final answer, or the progress so far). Stopping to follow never stops the run;
only `cancel` does. Everything is read from the session's stored events, so a client that
disconnected, or a server restart in between, loses nothing: the last run's outcome is there.

Transports (MCP tools, REST) translate to and from these calls; the rule lives here.

    tracker = TaskTracker(runtime)
    start = await tracker.start(session_id=sid, task="Open Firefox", api_key=None)
    state = await tracker.follow(session_id=sid, after=start, max_wait=40, on_progress=report)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import select

from computer_use import errors
from computer_use.sessions.models import SessionStatus
from computer_use.streaming.bus import StoredEvent
from computer_use.streaming.models import Event

if TYPE_CHECKING:
    from computer_use.runtime import Runtime

# A waiting caller hears something at least this often, even while one model request or one
# command runs for minutes (the issue asks for at most 15 s).
HEARTBEAT_SECONDS = 10.0
PROGRESS_TEXT_CHARS = 200
# Status events read back to find where the latest run began (each run adds two or three).
_STATUS_LOOKBACK = 50

# (notification counter, message): the counter increases with every call.
OnProgress = Callable[[int, str], Awaitable[None]]


class NoTask(errors.Conflict):
    """The session has never been given a task."""


class SessionClosed(errors.NotFound):
    """The session went away (destroyed or expired) while being followed."""


@dataclass
class TaskState:
    """What is known of a session's latest run."""

    session_id: str
    done: bool = False
    stop_reason: str | None = None  # message_complete's, once done
    detail: str | None = None
    steps: int = 0  # model requests, once done
    actions: int = 0  # tool calls so far
    last_action: str | None = None
    running_action: str | None = None  # a tool call without its result yet
    answer: list[str] = field(default_factory=list)  # text blocks after the last action
    last_text: str = ""
    error: dict[str, Any] | None = None  # the `error` event before a failed end
    approval: dict[str, Any] | None = None  # an approval_required not resolved (yet)
    question: str | None = None  # the agent's question to the person (stop reason question)
    since: float = field(default_factory=time.monotonic)  # the last tool call or result

    @property
    def answer_text(self) -> str:
        """The agent's final words: its text after the last action (else its last text)."""
        return "\n\n".join(self.answer) or self.last_text

    @property
    def failed(self) -> bool:
        return self.done and self.stop_reason == "error"

    @property
    def error_message(self) -> str | None:
        if not self.failed:
            return None
        return str((self.error or {}).get("message") or self.detail or "unknown error")

    def apply(self, event: StoredEvent) -> str | None:
        """Folds one event in; returns a progress line when it is news for a waiting caller."""
        data = event.data
        if event.type == "tool_use":
            self.answer = []
            self.actions += 1
            action = str(data.get("description") or data.get("name") or "action")
            self.last_action = self.running_action = action
            self.since = time.monotonic()
            return f"Step {self.actions}: {action}"
        if event.type == "tool_result":
            self.running_action = None
            self.since = time.monotonic()
        elif event.type == "text":
            text = str(data.get("text") or "").strip()
            if text:
                self.answer.append(text)
                self.last_text = text
                return shorten(text)
        elif event.type == "error":
            self.error = data
        elif event.type == "approval_required":
            keys = ("approval_id", "action", "description", "input")
            self.approval = {k: data.get(k) for k in keys}
            return f"Waiting for approval: {data.get('description')}"
        elif event.type == "approval_resolved":
            if self.approval and self.approval["approval_id"] == data.get("approval_id"):
                self.approval = None
        elif event.type == "question":
            self.question = str(data.get("question") or "")
        elif event.type == "message_complete":
            self.done = True
            self.stop_reason = str(data.get("stop_reason"))
            self.steps = int(data.get("steps") or 0)
            self.detail = data.get("detail")
            self.running_action = None
        return None

    def heartbeat(self) -> str:
        """A progress line for when nothing happened lately: what the run is busy with."""
        elapsed = int(time.monotonic() - self.since)
        if self.running_action:
            return f"Step {self.actions}: still running {self.running_action} ({elapsed} s)"
        return f"After step {self.actions}: the model is working on the next one ({elapsed} s)"


class TaskTracker:
    def __init__(self, runtime: Runtime, *, heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self._runtime = runtime
        self._heartbeat = heartbeat_seconds

    async def start(
        self, *, session_id: str, task: str, api_key: str | None, owner: str | None = None
    ) -> int:
        """Starts the agent on `task`; returns the event id to follow from. Raises what
        runner.start raises (its rules of a new message)."""
        # Shielded: a half-done start would leave the session marked processing with no run.
        with anyio.CancelScope(shield=True):
            session = await self._runtime.runner.start(
                session_id=session_id, content=task, api_key=api_key, owner=owner
            )
        return session.last_event_id

    async def latest_start(self, session_id: str) -> int:
        """The event id just before the session's latest run (its `processing` status)."""
        async with self._runtime.sessionmaker() as db:
            rows = await db.scalars(
                select(Event)
                .where(Event.session_id == session_id, Event.type == "status")
                .order_by(Event.id.desc())
                .limit(_STATUS_LOOKBACK)
            )
            for row in rows:
                if row.data.get("status") == SessionStatus.PROCESSING:
                    return row.id
        raise NoTask(f"No task has been started in session {session_id} yet.")

    async def follow(
        self,
        *,
        session_id: str,
        max_wait: float,
        after: int | None = None,
        on_progress: OnProgress | None = None,
    ) -> TaskState:
        """The latest run's state once it ends or after `max_wait` seconds, whichever is
        first. `after`: follow from that event id (from `start`); default the latest run.
        Cancelling the caller only stops the following, never the run."""
        state = TaskState(session_id)
        count = 0

        async def tell(message: str) -> None:
            nonlocal count
            if on_progress is not None:
                count += 1
                await on_progress(count, message)

        first_news_soon = after is None
        if after is None:
            after = await self.latest_start(session_id)
        with anyio.move_on_after(max_wait):
            await self._fold(session_id, after, state, tell, first_news_soon=first_news_soon)
        return state

    async def _fold(
        self,
        session_id: str,
        after: int,
        state: TaskState,
        tell: Callable[[str], Awaitable[None]],
        *,
        first_news_soon: bool,
    ) -> None:
        # The subscription is read by its own task into a channel: a receive may be cancelled
        # (heartbeat timer, max_wait) without cancelling the subscription's generator.
        send, receive = anyio.create_memory_object_stream[StoredEvent | None](100)

        async def pump() -> None:
            async with (
                send,
                contextlib.aclosing(self._runtime.bus.subscribe(session_id, after)) as events,
            ):
                async for event in events:
                    await send.send(event)
                await send.send(None)

        async with anyio.create_task_group() as tasks, receive:
            tasks.start_soon(pump)
            # A caller coming back to a run (no `after`) hears where it stands within a
            # second, once the stored events are read; a new run speaks for itself.
            told = time.monotonic() - (self._heartbeat - 1.0 if first_news_soon else 0.0)
            # Coming back to a run, its events stored before this call are replayed silently
            # (old news); a caller that just started the run hears all of them.
            fresh_after = time.time() if first_news_soon else float("-inf")
            while not state.done and not await self._waits_for_person(session_id, state):
                # A heartbeat at most `heartbeat` seconds after the previous message, however
                # many events without news (text deltas) arrive meanwhile.
                with anyio.move_on_after(max(0.0, told + self._heartbeat - time.monotonic())):
                    event = await receive.receive()
                    if event is None:
                        break  # the session went away
                    message = state.apply(event)
                    if message is not None and event.created_at.timestamp() >= fresh_after:
                        await tell(message)
                        told = time.monotonic()
                    continue
                await tell(state.heartbeat())
                told = time.monotonic()
            tasks.cancel_scope.cancel()
        if not state.done and not await self._waits_for_person(session_id, state):
            # raised out here: inside, the task group would wrap it
            raise SessionClosed(f"Session {session_id} was closed during the task.")

    async def _waits_for_person(self, session_id: str, state: TaskState) -> bool:
        """The run waits for an approval now (not one of the past, replayed)."""
        if state.approval is None:
            return False
        pending = await self._runtime.runner.people.pending_approval(session_id)
        return bool(state.approval["approval_id"] == pending)

    async def cancel(self, *, session_id: str, owner: str | None = None) -> bool:
        """Asks the running task of the session to stop; False when none runs."""
        await self._runtime.sessions.get(session_id=session_id, owner=owner)
        return await self._runtime.runner.cancel(session_id=session_id)


def shorten(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= PROGRESS_TEXT_CHARS else line[: PROGRESS_TEXT_CHARS - 1] + "…"
