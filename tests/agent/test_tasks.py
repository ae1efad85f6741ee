"""TaskTracker.follow on a real EventBus: what a waiting caller hears and when it returns."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import anyio
import pytest

from computer_use.agent.tasks import SessionClosed, TaskTracker
from computer_use.streaming.bus import EventBus, InMemoryEventStore, InProcessEventBus

if TYPE_CHECKING:
    from computer_use.runtime import Runtime

SID = "session-1"


@dataclass
class BusOnly:
    """Following a run from a known event id needs nothing of the runtime but its bus."""

    bus: EventBus


def tracker(bus: EventBus, heartbeat: float = 0.2) -> TaskTracker:
    return TaskTracker(cast("Runtime", BusOnly(bus)), heartbeat_seconds=heartbeat)


class Heard:
    def __init__(self) -> None:
        self.counts: list[int] = []
        self.messages: list[str] = []
        self.times: list[float] = []
        self.still_running_twice = anyio.Event()

    async def __call__(self, count: int, message: str) -> None:
        self.counts.append(count)
        self.messages.append(message)
        self.times.append(time.monotonic())
        if sum("still running" in m for m in self.messages) >= 2:
            self.still_running_twice.set()


async def test_news_and_heartbeats_until_the_run_ends() -> None:
    bus = InProcessEventBus(InMemoryEventStore())
    start = (await bus.publish(SID, "status", {"status": "processing"})).id
    heard = Heard()

    async def run() -> None:
        await bus.publish(SID, "text", {"text": "Let me look."})
        await bus.publish(SID, "tool_use", {"name": "bash", "description": "run `sleep 1`"})
        with anyio.fail_after(5):  # the caller hears the long command at least twice
            await heard.still_running_twice.wait()
        await bus.publish(SID, "tool_result", {"is_error": False})
        for _ in range(30):  # text deltas are no news: heartbeats go on between them
            await bus.publish(SID, "text_delta", {"index": 0, "text": "."})
            await anyio.sleep(0.02)
        await bus.publish(SID, "text", {"text": "Done."})
        await bus.publish(SID, "message_complete", {"stop_reason": "end_turn", "steps": 2})

    began = time.monotonic()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run)
        state = await tracker(bus).follow(
            session_id=SID, max_wait=10, after=start, on_progress=heard
        )
    assert state.done and state.stop_reason == "end_turn" and state.steps == 2
    assert state.actions == 1 and state.last_action == "run `sleep 1`"
    assert state.answer_text == "Done."
    assert heard.messages[:2] == ["Let me look.", "Step 1: run `sleep 1`"]
    assert heard.messages[-1] == "Done."
    assert any("the model is working on the next one" in m for m in heard.messages)
    assert heard.counts == list(range(1, len(heard.counts) + 1))
    gaps = [b - a for a, b in itertools.pairwise([began, *heard.times])]
    assert max(gaps) < 0.2 + 0.15


async def test_max_wait_returns_the_progress_so_far_and_the_run_is_untouched() -> None:
    bus = InProcessEventBus(InMemoryEventStore())
    start = (await bus.publish(SID, "status", {"status": "processing"})).id
    await bus.publish(SID, "tool_use", {"name": "computer", "description": "click at (1, 2)"})
    heard = Heard()
    state = await tracker(bus, heartbeat=5).follow(
        session_id=SID, max_wait=0.3, after=start, on_progress=heard
    )
    assert not state.done and state.actions == 1 and state.last_action == "click at (1, 2)"
    assert heard.messages == ["Step 1: click at (1, 2)"]
    # A later follow picks the same run up and sees its end.
    await bus.publish(SID, "message_complete", {"stop_reason": "cancelled", "steps": 1})
    again = await tracker(bus).follow(session_id=SID, max_wait=5, after=start)
    assert again.done and again.stop_reason == "cancelled"


async def test_a_session_closed_while_followed_is_reported() -> None:
    bus = InProcessEventBus(InMemoryEventStore())
    start = (await bus.publish(SID, "status", {"status": "processing"})).id

    asyncio.get_running_loop().call_later(0.1, bus.close, SID)
    with pytest.raises(SessionClosed):
        await tracker(bus).follow(session_id=SID, max_wait=5, after=start)
