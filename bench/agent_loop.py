"""Agent loop speed against its targets, with a zero-latency scripted model, measured in one run.

- steps per minute (a step = one model request + its tool call), one session alone and five
  sessions at once, each on a real desktop (no browser), through the real AgentRunner, the
  InProcessEventBus over the DatabaseEventStore and SQLite;
- the loop's own cost per step (everything but the model call), split into desktop (the
  tool: input + settle + screenshot + resize), persistence (message, image and event rows,
  the TTL touch) and streaming (the fan-out to subscribers), against its 150 ms p50 target;
- the baseline: the very same model requests sent alone, so the loop's share is visible;
- event delivery from publish to 100 subscribers of one session, p50/p99 (target p99 20 ms),
  on the bus in process and (bonus) as HTTP SSE from the real app to httpx clients;
- the two computer tool paths side by side, same run: the GA computer toolset (the default
  model, claude-sonnet-5-5: each step is a batch `left_click` + `screenshot` of member calls
  through the SDK's driver) against the beta tool (claude-sonnet-4-6: one `computer` call
  whose result carries the screenshot); loop overhead per step and per tool call.

The loopback model runs in a child process (this file with --serve-loopback): a real API is
another machine, and in-process its request parsing would be charged to the loop.

Run as root: `.venv/bin/python bench/agent_loop.py [--steps 20] [--sessions 5] [--paths-only]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import itertools
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from anthropic import AsyncAnthropic
from anthropic.resources.beta.messages import AsyncMessages
from bench.common import Report, percentile
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from computer_use.agent.providers import ModelClient
from computer_use.agent.service import AgentRunner
from computer_use.agent.tools import SessionTools, ToolResult
from computer_use.agent.versions import ToolVersions
from computer_use.config import Settings
from computer_use.desktops import DesktopManager
from computer_use.desktops.mounts import read_mounts
from computer_use.loopback import LoopbackModelServer
from computer_use.loopback.script import RecordedRequest, Reply, computer, member, say
from computer_use.loopback.server import EmbeddedServer
from computer_use.main import create_app
from computer_use.runtime import Runtime, RuntimeParts, build_runtime, install_runtime
from computer_use.sessions.models import Message, SessionStatus
from computer_use.sessions.service import SessionService
from computer_use.streaming.bus import InProcessEventBus, StoredEvent
from computer_use.streaming.store import DatabaseEventStore

# Overridable so two checkouts on one host can run it side by side.
DISPLAY_BASE = int(os.environ.get("BENCH_DISPLAY_BASE", "1500"))
USER_PREFIX = os.environ.get("BENCH_USER_PREFIX", "cu-al")
API_KEY = "bench-key"
OVERHEAD_TARGET = 0.150
DELIVERY_P99_TARGET = 0.020
TOOLSET_MODEL = "claude-sonnet-5-5"  # the default: computer_toolset_20260801
BETA_MODEL = "claude-sonnet-4-6"  # computer_20251124

# -- the scripted model (runs in the child process) ------------------------------------------


def scripted_turn(steps: int, request: RecordedRequest) -> Reply:
    """Step k of a run: a click somewhere new, every fourth a bare screenshot, then a final
    text. Derived from the request alone, so sessions can share one server. On the toolset a
    click answers with text only, so the model batches a screenshot after it (as it does)."""
    k = 0  # assistant turns since the user's latest prompt (earlier runs are history)
    for message in request.messages:
        content = message.get("content")
        if message.get("role") == "assistant":
            k += 1
        elif isinstance(content, list) and any(b.get("type") == "text" for b in content):
            k = 0
    toolset = "computer" in request.toolset_names
    if k >= steps:
        return say("All done.")
    if k % 4 == 3:
        shot = member("screenshot") if toolset else computer("screenshot")
        return say(f"Step {k}: looking again.", shot)
    x, y = 40 + (k * 97) % 900, 40 + (k * 61) % 650
    if toolset:
        click = member("left_click", coordinate=[x, y])
        return say(f"Step {k}: clicking.", click, member("screenshot"))
    return say(f"Step {k}: clicking.", computer("left_click", coordinate=[x, y]))


async def serve_loopback(steps: int) -> None:
    """Serve until stdin closes (the parent's end), so the child never outlives it."""
    server: LoopbackModelServer

    def responder(request: RecordedRequest) -> Reply:
        server.requests.clear()  # every request is recorded: bodies with images add up
        return scripted_turn(steps, request)

    server = LoopbackModelServer(responder, delay=0.0)
    async with server:
        print(server.base_url, flush=True)
        await asyncio.to_thread(sys.stdin.read)


@contextlib.asynccontextmanager
async def loopback_child(steps: int) -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-loopback", "--steps", str(steps),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            base_url = (await proc.stdout.readline()).decode().strip()
        if not base_url.startswith("http"):
            raise RuntimeError("the loopback server did not start")
        yield base_url
    finally:
        proc.stdin.close()
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


# -- timing: spans per session, attributed through a context variable ------------------------

current_session: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_session", default=None
)


@dataclass
class Span:
    kind: str  # model, tool, publish, append, touch, message, image
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Ledger:
    spans: dict[str, list[Span]] = field(default_factory=lambda: defaultdict(list))

    @contextlib.asynccontextmanager
    async def span(self, kind: str) -> AsyncIterator[None]:
        session_id = current_session.get()
        start = time.perf_counter()
        try:
            yield
        finally:
            if session_id is not None:
                self.spans[session_id].append(Span(kind, start, time.perf_counter()))


LEDGER = Ledger()


class TimedStore(DatabaseEventStore):
    async def append(self, session_id: str, type: str, data: dict[str, Any]) -> StoredEvent:
        async with LEDGER.span("append"):
            return await super().append(session_id, type, data)


class TimedBus(InProcessEventBus):
    async def publish(self, session_id: str, type: str, data: Mapping[str, object]) -> StoredEvent:
        async with LEDGER.span("publish"):
            return await super().publish(session_id, type, data)


class TimedSessions(SessionService):
    async def touch(self, *, session_id: str) -> None:
        async with LEDGER.span("touch"):
            await super().touch(session_id=session_id)

    async def add_message(
        self,
        *,
        session_id: str,
        role: str,
        content: list[dict[str, object]],
        usage: dict[str, object] | None = None,
    ) -> Message:
        async with LEDGER.span("message"):
            return await super().add_message(
                session_id=session_id, role=role, content=content, usage=usage
            )


class TimedTools(SessionTools):
    async def run(
        self,
        name: str,
        params: Mapping[str, Any],
        versions: ToolVersions,
        tool_use_id: str | None = None,
    ) -> ToolResult:
        async with LEDGER.span("tool"):
            return await super().run(name, params, versions, tool_use_id)

    async def run_member(
        self, tool_use_id: str, toolset_name: str, name: str, params: Mapping[str, Any]
    ) -> ToolResult:
        async with LEDGER.span("tool"):
            return await super().run_member(tool_use_id, toolset_name, name, params)


class TimedStream:
    """The SDK's stream manager, timed from request to the end of the response."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._span: contextlib.AbstractAsyncContextManager[None] = LEDGER.span("model")

    async def __aenter__(self) -> Any:
        await self._span.__aenter__()
        return await self._inner.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._inner.__aexit__(exc_type, exc, tb)
        finally:
            await self._span.__aexit__(None, None, None)


class TimedClient:
    """Enough of AsyncAnthropic for the loop: beta.messages.stream, api_key, close."""

    def __init__(self, inner: ModelClient, requests: list[dict[str, Any]] | None) -> None:
        self._inner = inner
        self.api_key = getattr(inner, "api_key", None)
        self.beta = SimpleNamespace(messages=SimpleNamespace(stream=self._stream))
        self._requests = requests

    def _stream(self, **kwargs: Any) -> TimedStream:
        if self._requests is not None:
            self._requests.append(kwargs)
        messages = cast(AsyncMessages, self._inner.beta.messages)  # as agent.loop does
        return TimedStream(messages.stream(**kwargs))

    async def close(self) -> None:
        await self._inner.close()


class TimedRunner(AgentRunner):
    """The real runner; its model client and its SessionTools are the timed ones."""

    requests: list[dict[str, Any]] | None = None  # when set, the loop's requests are kept

    def _client_for(self, api_key: str | None) -> Any:
        return TimedClient(super()._client_for(api_key), self.requests)

    def give_tools(self, session_id: str, tools: SessionTools) -> None:
        # The runner makes a session's SessionTools on its first run; this is the only seam
        # to hand it timed ones without touching src.
        self._tools[session_id] = tools

    async def save_image(self, session_id: str, png: bytes) -> str:
        async with LEDGER.span("image"):
            return await super().save_image(session_id, png)


# -- the runtime, wired as lifespan.build_runtime does ---------------------------------------


@dataclass
class Bench:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    sessions: TimedSessions
    bus: TimedBus
    runner: TimedRunner
    desktops: DesktopManager


def bench_settings(data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=data_dir,
        anthropic_api_key=SecretStr(API_KEY),
        desktop_display_base=DISPLAY_BASE,
        desktop_user_prefix=USER_PREFIX,
        session_disk_quota_mb=64,
        max_displays=8,
        # The clicks land on an empty desktop and change nothing: stuck detection still hashes
        # the screen around each (part of a step's cost) but must not end a run early.
        stuck_steps=49,
    )


@contextlib.asynccontextmanager
async def bench_runtime(settings: Settings, base_url: str) -> AsyncIterator[Bench]:
    runtime = build_runtime(
        settings,
        RuntimeParts(
            event_store=TimedStore, event_bus=TimedBus, sessions=TimedSessions, runner=TimedRunner
        ),
        model_base_url=base_url,
    )
    sessions, bus, runner = runtime.sessions, runtime.bus, runtime.runner
    assert isinstance(sessions, TimedSessions) and isinstance(bus, TimedBus)
    assert isinstance(runner, TimedRunner)
    engine, sessionmaker, desktops = runtime.engine, runtime.sessionmaker, runtime.desktops
    try:
        await desktops.start()
        yield Bench(settings, engine, sessionmaker, sessions, bus, runner, desktops)
    finally:
        bus.close_all()
        await runner.shutdown()
        await desktops.shutdown()
        await engine.dispose()


async def open_session(bench: Bench, title: str, model: str | None = None) -> str:
    """SessionService.open, but without Firefox (memory): the same rows and desktop."""
    session = await bench.sessions.create(title=title, model=model)
    desktop = await bench.desktops.create(session.id, browser=False)
    await desktop.wait_until_settled(timeout=2)
    await bench.sessions.transition(session.id, SessionStatus.ACTIVE)
    bench.runner.give_tools(session.id, TimedTools(desktop))
    return session.id


@dataclass
class RunFigures:
    session_id: str
    wall: float  # start() to the end of the run
    steps: int  # model requests
    delivery: list[float]  # a UI subscriber's publish-to-receipt latencies


async def run_session(bench: Bench, session_id: str) -> RunFigures:
    """One user message through AgentRunner.start, with one live subscriber (the UI)."""
    delivery: list[float] = []
    bus = bench.bus

    async def watch() -> None:
        last = (await bench.sessions.get(session_id=session_id)).last_event_id
        async for event in bus.subscribe(session_id, last_event_id=last):
            delivery.append(time.time() - event.created_at.timestamp())
            if event.type == "status" and event.data.get("status") == SessionStatus.ACTIVE:
                return

    token = current_session.set(session_id)
    try:
        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.05)  # let it register before the first event
        started = time.perf_counter()
        await bench.runner.start(session_id=session_id, content="Click around.", api_key=API_KEY)
        result = await bench.runner.wait(session_id=session_id)
        wall = time.perf_counter() - started
        async with asyncio.timeout(10):
            await watcher
    finally:
        current_session.reset(token)
    if result is None or result.stop_reason != "end_turn":
        raise RuntimeError(f"run of {session_id} ended badly: {result!r}")
    return RunFigures(session_id, wall, result.steps, delivery)


# -- the per-step breakdown -------------------------------------------------------------------


@dataclass
class Step:
    wall: float
    model: float  # the model call, net of the loop's hooks that ran inside it
    desktop: float
    persistence: float
    streaming: float
    stores: dict[str, float]  # persistence by kind: message, image, append, touch
    calls: int = 1  # tool calls in the step (a toolset batch has several)

    @property
    def overhead(self) -> float:
        return self.wall - self.model

    @property
    def overhead_per_call(self) -> float:
        return self.overhead / max(1, self.calls)

    @property
    def other(self) -> float:
        return self.overhead - self.desktop - self.persistence - self.streaming


def steps_of(spans: list[Span]) -> list[Step]:
    """Step k runs from model request k to model request k+1 (so the last, text-only request
    is not a step); every span is charged to the step it started in."""
    models = sorted((s for s in spans if s.kind == "model"), key=lambda s: s.start)
    steps: list[Step] = []
    for model, following in itertools.pairwise(models):
        inside = [s for s in spans if model.start <= s.start < following.start]

        def total(*kinds: str, within: Span | None = None, spans: list[Span] = inside) -> float:
            return sum(
                s.duration
                for s in spans
                if s.kind in kinds and (within is None or within.start <= s.start < within.end)
            )

        hooks_in_model = total("publish", "touch", within=model)
        steps.append(
            Step(
                wall=following.start - model.start,
                model=model.duration - hooks_in_model,
                desktop=total("tool"),
                persistence=total("append", "touch", "message", "image"),
                streaming=total("publish") - total("append"),
                stores={kind: total(kind) for kind in ("message", "image", "append", "touch")},
                calls=sum(1 for s in inside if s.kind == "tool"),
            )
        )
    return steps


# -- report ------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def report_steps(report: Report, label: str, steps: list[Step]) -> None:
    def p50(attr: str) -> float:
        return statistics.median(float(getattr(s, attr)) for s in steps)

    overhead = [s.overhead for s in steps]
    report.add(f"{label}: loop overhead per step p50", ms(statistics.median(overhead)),
               "<= 150 ms", statistics.median(overhead) <= OVERHEAD_TARGET)  # fmt: skip
    report.add(f"{label}:   p95", ms(percentile(overhead, 0.95)))
    report.add(f"{label}:   desktop (input+settle+shot+resize) p50", ms(p50("desktop")))
    report.add(f"{label}:   persistence (messages, images, events) p50", ms(p50("persistence")))
    split = "/".join(
        f"{statistics.median(s.stores[kind] for s in steps) * 1000:.0f}"
        for kind in ("message", "image", "append", "touch")
    )
    report.add(f"{label}:     messages/image/events/touch p50 (ms)", split)
    report.add(f"{label}:   streaming (fan-out) p50", ms(p50("streaming")))
    report.add(f"{label}:   other (request building, base64, loop) p50", ms(p50("other")))
    report.add(f"{label}: model call in the loop p50", ms(p50("model")))


# -- the sections ------------------------------------------------------------------------------


async def bench_one(bench: Bench, report: Report) -> list[dict[str, Any]]:
    """One session alone; returns the loop's model requests for the baseline."""
    session_id = await open_session(bench, "one")
    warm = await run_session(bench, session_id)  # imports, first screenshots, SQLite pages
    LEDGER.spans.clear()
    requests: list[dict[str, Any]] = []
    bench.runner.requests = requests
    figures = await run_session(bench, session_id)
    bench.runner.requests = None
    steps = steps_of(LEDGER.spans[session_id])
    rate = figures.steps / figures.wall * 60
    report.add("1 session: steps per minute", f"{rate:.0f} /min",
               "(none set; 150 ms => 400)")  # fmt: skip
    report.add("1 session: run wall (start to message_complete)",
               f"{figures.wall:.2f} s", f"{figures.steps} requests")  # fmt: skip
    report_steps(report, "1 session", steps)
    report.add("1 session: UI subscriber delivery p99 (during run)",
               ms(percentile(figures.delivery, 0.99)))  # fmt: skip
    del warm
    await bench.desktops.destroy(session_id)
    return requests


async def bench_paths(bench: Bench, report: Report, rounds: int = 3) -> None:
    """The toolset and the beta tool, one session each, runs interleaved (same machine state):
    the loop's cost per step and per tool call on each path, and their ratio."""
    paths = {"toolset": TOOLSET_MODEL, "beta tool": BETA_MODEL}
    ids = {label: await open_session(bench, label, model) for label, model in paths.items()}
    for session_id in ids.values():
        await run_session(bench, session_id)  # warm-up
    LEDGER.spans.clear()
    for _ in range(rounds):
        for session_id in ids.values():
            await run_session(bench, session_id)
    figures: dict[str, tuple[float, float, float]] = {}
    for label, session_id in ids.items():
        steps = steps_of(LEDGER.spans[session_id])
        per_step = statistics.median(s.overhead for s in steps)
        per_call = statistics.median(s.overhead_per_call for s in steps)
        calls = statistics.mean(s.calls for s in steps)
        desktop = statistics.median(s.desktop for s in steps)
        figures[label] = (per_step, per_call, desktop)
        name = f"{label} ({paths[label]})"
        report.add(f"{name}: overhead per step p50", ms(per_step), f"{calls:.2f} calls/step")
        report.add(f"{label}:   per tool call p50", ms(per_call))
        report.add(f"{label}:   desktop per step p50", ms(desktop))
        report.add(f"{label}:   persistence / streaming p50",
                   f"{statistics.median(s.persistence for s in steps) * 1000:.0f}/"
                   f"{statistics.median(s.streaming for s in steps) * 1000:.0f} ms")  # fmt: skip
        report.add(f"{label}:   other (request, SDK driver, loop) p50",
                   ms(statistics.median(s.other for s in steps)))  # fmt: skip
    toolset, beta = figures["toolset"], figures["beta tool"]
    report.add("toolset / beta tool: overhead per step", f"{toolset[0] / beta[0]:.2f}x")
    report.add("toolset / beta tool: overhead per tool call", f"{toolset[1] / beta[1]:.2f}x")
    await asyncio.gather(*(bench.desktops.destroy(sid) for sid in ids.values()))


async def bench_baseline(base_url: str, report: Report, requests: list[dict[str, Any]]) -> None:
    """The loop's own requests, sent again straight through the SDK: the model alone."""
    client = AsyncAnthropic(base_url=base_url, api_key=API_KEY, max_retries=0)
    durations: list[float] = []
    try:
        for _ in range(2):
            for kwargs in requests:
                started = time.perf_counter()
                async with client.beta.messages.stream(**kwargs) as stream:
                    async for _event in stream:
                        pass
                    await stream.get_final_message()
                durations.append(time.perf_counter() - started)
    finally:
        await client.close()
    p50 = statistics.median(durations)
    report.add("baseline: model round trip alone p50 (same requests)", ms(p50), "(reference)")
    report.add("baseline: steps per minute if the loop were free",
               f"{60 / p50:.0f} /min", "(reference)")  # fmt: skip


async def bench_many(bench: Bench, report: Report, count: int) -> None:
    ids = [await open_session(bench, f"many-{i}") for i in range(count)]
    LEDGER.spans.clear()
    started = time.perf_counter()
    results = await asyncio.gather(*(run_session(bench, sid) for sid in ids))
    elapsed = time.perf_counter() - started
    total_steps = sum(r.steps for r in results)
    per_session = [r.steps / r.wall * 60 for r in results]
    report.add(f"{count} sessions: steps per minute, all together",
               f"{total_steps / elapsed * 60:.0f} /min", "(reported)")  # fmt: skip
    report.add(f"{count} sessions: steps per minute per session p50",
               f"{statistics.median(per_session):.0f} /min", "(reported)")  # fmt: skip
    steps = [s for sid in ids for s in steps_of(LEDGER.spans[sid])]
    report_steps(report, f"{count} sessions", steps)
    delivery = [d for r in results for d in r.delivery]
    report.add(f"{count} sessions: UI subscriber delivery p99 (during runs)",
               ms(percentile(delivery, 0.99)))  # fmt: skip
    await asyncio.gather(*(bench.desktops.destroy(sid) for sid in ids))


async def bench_fanout(bench: Bench, report: Report, subscribers: int, events: int) -> None:
    """`events` publishes back to back on one session, each to `subscribers` subscribers."""
    session = await bench.sessions.create(title="fan-out", model=None)
    bus = bench.bus
    latencies: list[float] = []
    ready = asyncio.Semaphore(0)

    async def subscriber() -> None:
        async for event in bus.subscribe(session.id, last_event_id=0):
            if event.type == "ready":
                ready.release()
            elif event.type == "end":
                return
            else:
                latencies.append(time.perf_counter() - float(event.data["sent"]))

    tasks = [asyncio.create_task(subscriber()) for _ in range(subscribers)]
    try:
        await bus.publish(session.id, "ready", {})
        async with asyncio.timeout(30):
            for _ in range(subscribers):
                await ready.acquire()
        appends: list[float] = []
        for i in range(events):
            sent = time.perf_counter()
            await bus.publish(
                session.id, "text_delta", {"index": 0, "text": f"w{i} ", "sent": sent}
            )
            appends.append(time.perf_counter() - sent)
        await bus.publish(session.id, "end", {})
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    p99 = percentile(latencies, 0.99)
    report.add(f"{subscribers} subscribers: publish->subscriber p50",
               ms(statistics.median(latencies)), f"{len(latencies)} deliveries")  # fmt: skip
    report.add(f"{subscribers} subscribers: publish->subscriber p99",
               ms(p99), "<= 20 ms", p99 <= DELIVERY_P99_TARGET)  # fmt: skip
    report.add(f"{subscribers} subscribers: publish call (store+offer) p50",
               ms(statistics.median(appends)))  # fmt: skip


async def sse_clients(url: str, count: int) -> None:
    """Child side of the HTTP fan-out: `count` SSE streams of `url`; prints "ready" once every
    stream has seen a `ready` event, then, after `end`, "<p50> <p99> <n>" of the latencies
    (CLOCK_MONOTONIC is one clock for both processes)."""
    latencies: list[float] = []
    ready = 0

    async def stream(client: httpx.AsyncClient) -> None:
        nonlocal ready
        seen_ready, kind = False, ""
        async with client.stream("GET", url) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "ready" and not seen_ready:
                    seen_ready, ready = True, ready + 1
                    if ready == count:
                        print("ready", flush=True)
                elif line.startswith("data: ") and kind == "text_delta":
                    latencies.append(time.monotonic() - float(json.loads(line[6:])["sent"]))
                elif kind == "end":
                    return

    limits = httpx.Limits(max_connections=count + 1)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60)) as client:
        await asyncio.gather(*(stream(client) for _ in range(count)))
    ordered = sorted(latencies)
    print(f"{statistics.median(ordered)} {percentile(ordered, 0.99)} {len(ordered)}", flush=True)


async def bench_http_fanout(
    bench: Bench, report: Report, subscribers: int, events: int, gap: float
) -> None:
    """The same through the real app's GET .../stream, read by httpx in a child process, one
    event every `gap` seconds (back to back, 100 clients saturate the reading core)."""
    session = await bench.sessions.create(title="http fan-out", model=None)
    app = create_app(bench.settings)
    runtime = Runtime(
        settings=bench.settings, engine=bench.engine, sessions=bench.sessions, runner=bench.runner
    )
    install_runtime(app, runtime)
    bus = bench.bus
    async with EmbeddedServer(app) as server:
        url = f"{server.base_url}/api/v1/sessions/{session.id}/stream?after=0"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--sse-client", url, "--subscribers", str(subscribers),
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(60):
                ready = asyncio.ensure_future(proc.stdout.readline())
                while not ready.done():  # until every stream has registered and seen one
                    await bus.publish(session.id, "ready", {})
                    await asyncio.wait({ready}, timeout=0.1)
                if ready.result().strip() != b"ready":
                    raise RuntimeError("the SSE clients did not get ready")
                for i in range(events):
                    data = {"index": 0, "text": f"w{i} ", "sent": time.monotonic()}
                    await bus.publish(session.id, "text_delta", data)
                    await asyncio.sleep(gap)
                await bus.publish(session.id, "end", {})
                p50, p99, count = (await proc.stdout.readline()).split()
                await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    p50_s, p99_s = float(p50), float(p99)
    pace = "back to back" if gap == 0 else f"{1 / gap:.0f} ev/s"
    label = f"{subscribers} HTTP SSE clients ({pace}): publish->client"
    report.add(f"{label} p50", ms(p50_s), f"{int(count)} deliveries")
    report.add(f"{label} p99", ms(p99_s), "<= 20 ms (bonus)", p99_s <= DELIVERY_P99_TARGET)


# -- main ----------------------------------------------------------------------------------------


async def main(args: argparse.Namespace, settings: Settings) -> None:
    report = Report()
    print(f"{os.cpu_count()} cores; {args.steps} tool steps per run; SQLite at {settings.data_dir}")
    print(f"  {'metric':<54} {'value':>14}  {'target':<22}")
    async with loopback_child(args.steps) as base_url, bench_runtime(settings, base_url) as bench:
        await bench_paths(bench, report)
        if args.paths_only:
            return
        requests = await bench_one(bench, report)
        await bench_baseline(base_url, report, requests)
        await bench_many(bench, report, args.sessions)
        await bench_fanout(bench, report, args.subscribers, args.events)
        await bench_http_fanout(bench, report, args.subscribers, args.events, 0.0)
        await bench_http_fanout(bench, report, args.subscribers, args.events, args.http_gap)
    missed = report.missed
    print("all targets met" if not missed else f"targets missed: {', '.join(missed)}")


def migrate_quietly(settings: Settings) -> None:
    """The migrations (under their lock), without Alembic's INFO lines in the report."""
    from computer_use import schema

    schema.upgrade(settings, quiet=True)


def cleanup_data_dir(data_dir: Path) -> list[Path]:
    """HomeManager leaves DATA_DIR/sessions bind-mounted by design: unmount, remove, and return
    whatever is still mounted under it (nothing, when all went well)."""
    resolved = data_dir.resolve()

    def mounted() -> list[Path]:
        return [
            m.mount_point
            for m in read_mounts()
            if resolved in (m.mount_point, *m.mount_point.parents)
        ]

    for mount_point in sorted(mounted(), key=lambda p: len(p.parts), reverse=True):
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False, timeout=30)
    shutil.rmtree(data_dir, ignore_errors=True)
    return mounted()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="tool steps per run")
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--http-gap", type=float, default=0.01, help="s between HTTP events")
    parser.add_argument("--paths-only", action="store_true", help="only toolset vs beta tool")
    parser.add_argument("--serve-loopback", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sse-client", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("BENCH_LOG", "WARNING"))
    if args.serve_loopback:
        asyncio.run(serve_loopback(args.steps))
        raise SystemExit(0)
    if args.sse_client:
        asyncio.run(sse_clients(args.sse_client, args.subscribers))
        raise SystemExit(0)
    if os.geteuid() != 0:
        raise SystemExit("run as root: the desktops need their own users and mounts")
    data_dir = Path(tempfile.mkdtemp(prefix="agent-loop-bench-"))
    try:
        settings = bench_settings(data_dir)
        migrate_quietly(settings)  # Alembic runs its own event loop: before ours
        asyncio.run(main(args, settings))
    finally:
        left = cleanup_data_dir(data_dir)
        print(f"cleanup: {len(left)} mount(s) left under {data_dir}", *left)
