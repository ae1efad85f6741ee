"""VNC input counts as session activity, reported at most once per interval."""

from __future__ import annotations

import asyncio

from computer_use.vnc.proxy import ActivityThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_reports_at_most_once_per_interval() -> None:
    reports: list[float] = []
    clock = Clock()

    async def report() -> None:
        reports.append(clock.now)

    throttle = ActivityThrottle(report, interval=5.0, clock=clock)
    for step in range(12):  # one input per second for 12 s
        clock.now = 100.0 + step
        throttle.notify()
        await throttle.aclose()  # let the report task run before the next input
    assert reports == [100.0, 105.0, 110.0]


async def test_slow_report_is_never_doubled_and_is_awaited_on_close() -> None:
    release = asyncio.Event()
    calls = 0

    async def report() -> None:
        nonlocal calls
        calls += 1
        await release.wait()

    clock = Clock()
    throttle = ActivityThrottle(report, interval=0.0, clock=clock)
    throttle.notify()
    throttle.notify()  # the first is still in flight: skipped
    release.set()
    await throttle.aclose()
    assert calls == 1


async def test_failing_report_does_not_raise() -> None:
    async def report() -> None:
        raise RuntimeError("database down")

    throttle = ActivityThrottle(report, interval=5.0)
    throttle.notify()
    await throttle.aclose()
