"""Soak: the reliability load for a long while, watching the server for leaks.

N sessions (default 20, each a real desktop) run agent turns back to back against the loopback
model server while S SSE subscribers (default 200, spread over the sessions) read every event.
Reports throughput (runs and events per minute), event latency (message POST -> `processing`
event; fan-out spread: first to last subscriber receiving the same event), lost / repeated
events per subscriber, and the server's memory (RSS) and open files before, during and after
the load. Flat after the load ends is the bar.

Run as root: `make soak` or `.venv/bin/python bench/soak.py [--minutes 10] [--sessions 20]
[--subscribers 200] [--database-url postgresql://...]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import percentile  # noqa: E402

from computer_use.loopback import LoopbackModelServer, RecordedRequest, Reply, bash, say  # noqa: E402

KEY = "sk-ant-soak-0123456789"
STEPS = 3


def respond(request: RecordedRequest) -> Reply:
    """Each run: STEPS bash calls, then an answer; decided by the request's own history."""
    # A run adds its prompt, STEPS (call, result) pairs and the answer to the history.
    step = (len(request.messages) - 1) % (2 * STEPS + 2) // 2
    turn = len(request.messages) // 2
    if step < STEPS:
        return say(f"Step {turn}.", bash(f"echo step-{turn}"))
    return say("Done.")


@dataclass
class Sample:
    label: str
    rss_mb: float
    open_files: int
    children: int


@dataclass
class Stats:
    runs: int = 0
    events: int = 0
    processing_latency: list[float] = field(default_factory=list)
    first_seen: dict[tuple[str, int], float] = field(default_factory=dict)
    spread: dict[tuple[str, int], float] = field(default_factory=dict)
    lost: int = 0
    repeated: int = 0
    errors: list[str] = field(default_factory=list)


def sample(pid: int, label: str) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    children = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    children += 1
    return Sample(label, rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd")), children)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def subscribe(
    http: httpx.AsyncClient, sid: str, stats: Stats, stop: asyncio.Event, started: dict[str, float]
) -> None:
    """One SSE subscriber for the whole soak; checks ids are contiguous (1, 2, 3, ...)."""
    last = 0
    async with http.stream("GET", f"/api/v1/sessions/{sid}/stream") as response:
        frame: dict[str, str] = {}
        async for line in response.aiter_lines():
            if stop.is_set():
                return
            if line:
                name, _, value = line.partition(": ")
                frame[name] = value
                continue
            if "id" in frame:
                event_id, now = int(frame["id"]), time.monotonic()
                if event_id <= last:
                    stats.repeated += 1
                elif event_id > last + 1:
                    stats.lost += event_id - last - 1
                last = max(last, event_id)
                key = (sid, event_id)
                first = stats.first_seen.setdefault(key, now)
                stats.spread[key] = now - first
                stats.events += 1
                data = json.loads(frame["data"])
                if frame["event"] == "status" and data.get("status") == "processing":
                    posted = started.pop(sid, None)
                    if posted is not None:
                        stats.processing_latency.append(now - posted)
            frame = {}


async def drive(
    http: httpx.AsyncClient, sid: str, stats: Stats, stop: asyncio.Event, started: dict[str, float]
) -> None:
    """Posts a message whenever the session is idle, until `stop`."""
    while not stop.is_set():
        started[sid] = time.monotonic()
        posted = await http.post(
            f"/api/v1/sessions/{sid}/messages",
            json={"content": "count to three"},
            headers={"X-Anthropic-API-Key": KEY},
        )
        if posted.status_code != 202:
            started.pop(sid, None)
            if posted.status_code != 409:
                stats.errors.append(f"POST messages: {posted.status_code} {posted.text[:200]}")
            await asyncio.sleep(0.2)
            continue
        while not stop.is_set():  # poll the session: the next message once this run is over
            await asyncio.sleep(0.2)
            status = (await http.get(f"/api/v1/sessions/{sid}")).json()["status"]
            if status == "active":
                stats.runs += 1
                break


def start_server(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "computer_use", "serve", "--migrate", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


async def soak(args: argparse.Namespace) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="cu-soak-"))
    port = free_port()
    async with LoopbackModelServer(respond, chunk_size=64) as model:
        env = {
            **os.environ,
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": args.database_url,
            "ANTHROPIC_API_KEY": "",
            "ANTHROPIC_BASE_URL": model.base_url,
            "MAX_DISPLAYS": str(args.sessions),
            "DESKTOP_DISPLAY_BASE": str(args.display_base),
            "DESKTOP_USER_PREFIX": "cu-soak",
            "SESSION_TTL_SECONDS": str(max(3600, int(args.minutes * 120))),
            # the soak is one client hammering on purpose: the per-client limits would stop it
            "RATE_LIMIT_MESSAGES": "1000000/minute",
            "RATE_LIMIT_SESSIONS": "1000000/minute",
        }
        server = start_server(env, port, data_dir / "server.log")
        base_url = f"http://127.0.0.1:{port}"
        samples: list[Sample] = []
        stats = Stats()
        limits = httpx.Limits(max_connections=args.subscribers + 2 * args.sessions + 20)
        try:
            async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
                for _ in range(600):
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get("/api/v1/health")).status_code == 200:
                            break
                    if server.poll() is not None:
                        raise RuntimeError("the server exited during start-up")
                    await asyncio.sleep(0.1)
                samples.append(sample(server.pid, "before (idle, no sessions)"))
                sids = []
                for i in range(args.sessions):
                    created = await http.post("/api/v1/sessions", json={"title": f"soak {i}"})
                    created.raise_for_status()
                    sids.append(created.json()["id"])
                samples.append(sample(server.pid, f"{len(sids)} sessions up, idle"))

                stop = asyncio.Event()
                started: dict[str, float] = {}
                tasks = [
                    asyncio.create_task(subscribe(http, sids[i % len(sids)], stats, stop, started))
                    for i in range(args.subscribers)
                ]
                tasks += [asyncio.create_task(drive(http, s, stats, stop, started)) for s in sids]
                began = time.monotonic()
                end = began + args.minutes * 60
                interval = min(60.0, max(5.0, args.minutes * 6))
                while time.monotonic() < end:
                    await asyncio.sleep(min(interval, max(0.0, end - time.monotonic())))
                    minute = (time.monotonic() - began) / 60
                    samples.append(sample(server.pid, f"during, {minute:.1f} min"))
                    print(
                        f"  {minute:5.1f} min: {stats.runs} runs, {stats.events} events received",
                        flush=True,
                    )
                stop.set()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                elapsed = time.monotonic() - began
                for sid in sids:  # let the runs in flight finish, then settle
                    with contextlib.suppress(httpx.HTTPError):
                        await http.post(f"/api/v1/sessions/{sid}/cancel")
                await asyncio.sleep(10)
                samples.append(sample(server.pid, "after the load, 10 s idle"))
                for sid in sids:
                    await http.delete(f"/api/v1/sessions/{sid}")
                await asyncio.sleep(5)
                samples.append(sample(server.pid, "after deleting every session"))
        finally:
            await asyncio.to_thread(stop_server, server)
    log_text = (data_dir / "server.log").read_text(errors="replace")
    flags = {
        flag: log_text.count(flag)
        for flag in ("database is locked", "QueuePool limit", "Traceback", "ERROR")
    }
    report(args, stats, samples, elapsed, flags, data_dir)
    bad = stats.lost or stats.repeated or stats.errors or flags["database is locked"]
    return 1 if bad or flags["QueuePool limit"] else 0


def report(
    args: argparse.Namespace,
    stats: Stats,
    samples: list[Sample],
    elapsed: float,
    flags: dict[str, int],
    data_dir: Path,
) -> None:
    minutes = elapsed / 60
    spread = list(stats.spread.values())
    per_session: dict[str, int] = defaultdict(int)
    for sid, _ in stats.first_seen:
        per_session[sid] += 1
    print(f"\nsoak: {args.sessions} sessions, {args.subscribers} subscribers, {minutes:.1f} min")
    print(f"  database            {'postgresql' if args.database_url else 'sqlite'}")
    print(f"  agent runs          {stats.runs} ({stats.runs / minutes:.1f}/min)")
    distinct = len(stats.first_seen)
    print(f"  events published    {distinct} ({distinct / minutes:.0f}/min)")
    print(f"  events received     {stats.events} ({stats.events / minutes:.0f}/min)")
    print(f"  lost / repeated     {stats.lost} / {stats.repeated}")
    pl = stats.processing_latency
    print(
        "  POST -> processing  "
        f"p50 {1000 * percentile(pl, 0.5):.0f} ms, p95 {1000 * percentile(pl, 0.95):.0f} ms"
    )
    print(
        "  fan-out spread      "
        f"p50 {1000 * percentile(spread, 0.5):.1f} ms, p95 {1000 * percentile(spread, 0.95):.1f} "
        f"ms, max {1000 * max(spread, default=0):.1f} ms"
    )
    if stats.errors:
        print(f"  request errors      {len(stats.errors)}, first: {stats.errors[0]}")
    print(f"  server log          {flags} ({data_dir / 'server.log'})")
    print("\n  server process                         RSS MB   open files   children")
    for s in samples:
        print(f"  {s.label:<38} {s.rss_mb:7.1f}   {s.open_files:10d}   {s.children:8d}")
    if len(samples) >= 3:
        print(
            f"  RSS after/idle-with-sessions: {samples[-2].rss_mb / samples[1].rss_mb:.2f}x; "
            f"open files after deleting all / before: {samples[-1].open_files} / "
            f"{samples[0].open_files}"
        )
    if per_session:
        print(f"  events per session: {min(per_session.values())}-{max(per_session.values())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--database-url", default="", help="empty: SQLite in a temp DATA_DIR")
    parser.add_argument("--display-base", type=int, default=1200)
    args = parser.parse_args()
    sys.exit(asyncio.run(soak(args)))


if __name__ == "__main__":
    main()
