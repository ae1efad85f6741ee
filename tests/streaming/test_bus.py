"""EventBus: replay then live, no gaps, no duplicates, slow readers never block writers."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from computer_use.streaming.bus import EventBus, InMemoryEventStore, StoredEvent

DEADLINE = 10.0


class YieldingStore(InMemoryEventStore):
    """Gives the loop away inside every call, as a database round trip would."""

    async def append(self, session_id: str, type: str, data: dict[str, Any]) -> StoredEvent:
        await asyncio.sleep(0)
        event = await super().append(session_id, type, data)
        await asyncio.sleep(0)
        return event

    async def since(self, session_id: str, after_id: int, limit: int = 1000) -> list[StoredEvent]:
        await asyncio.sleep(0)
        return await super().since(session_id, after_id, limit)


async def collect(bus: EventBus, session: str, last: int | None, until: int) -> list[int]:
    ids: list[int] = []
    async for event in bus.subscribe(session, last):
        ids.append(event.id)
        if event.id >= until:
            break
    return ids


async def test_replay_then_live_with_concurrent_publishers_has_no_gaps_or_dups() -> None:
    bus = EventBus(YieldingStore(), replay_batch=7)
    total = 3 * 150
    for n in range(20):  # some history before anyone subscribes
        await bus.publish("s1", "text", {"n": n})
    total += 20

    async def publisher(name: str) -> None:
        for n in range(150):
            await bus.publish("s1", "text", {"from": name, "n": n})
            if random.random() < 0.3:
                await asyncio.sleep(0)

    async def late_subscriber(last: int | None, wait: int) -> list[int]:
        for _ in range(wait):  # join at a random point of the publishing
            await asyncio.sleep(0)
        return await collect(bus, "s1", last, total)

    async with asyncio.timeout(DEADLINE):
        subscribers = [
            asyncio.create_task(late_subscriber(last, wait))
            for last, wait in [(None, 0), (0, 5), (10, 40), (19, 200), (None, 400), (100, 10)]
        ]
        await asyncio.gather(*(publisher(p) for p in "abc"))
        results = await asyncio.gather(*subscribers)
    for (last, _), ids in zip(
        [(None, 0), (0, 5), (10, 40), (19, 200), (None, 400), (100, 10)], results, strict=True
    ):
        assert ids == list(range((last or 0) + 1, total + 1))


async def test_slow_subscriber_does_not_block_publishers_and_catches_up() -> None:
    bus = EventBus(InMemoryEventStore(), queue_size=4)
    stream = bus.subscribe("s1", None)
    await bus.publish("s1", "text", {"n": 0})
    first = await anext(stream)  # live now, and then it stops reading
    async with asyncio.timeout(DEADLINE):
        for n in range(1, 100):
            await bus.publish("s1", "text", {"n": n})
    rest = []
    async with asyncio.timeout(DEADLINE):
        async for event in stream:
            rest.append(event)
            if event.id == 100:
                break
    assert [first.id] + [e.id for e in rest] == list(range(1, 101))
    assert rest[-1].data == {"n": 99}
    await stream.aclose()


async def test_sessions_are_separate_and_channels_are_released() -> None:
    bus = EventBus(InMemoryEventStore())
    await bus.publish("a", "text", {"x": 1})
    await bus.publish("b", "text", {"x": 2})
    stream = bus.subscribe("b", None)
    event = await anext(stream)
    assert (event.id, event.data) == (1, {"x": 2})
    await stream.aclose()
    assert bus._channels == {}
