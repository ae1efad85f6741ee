"""Sessions per host: memory of N sessions idle and after one short scripted run each, with
the browser started on first use against today's eager start, measured in the same run.

For each mode (`eager`: Firefox starts with the desktop, the old behaviour and the baseline;
`lazy`: Firefox starts on first use; `lazy+ksm` with --ksm; `pool+browser` with --pool-browser:
each session takes one of N pooled desktops whose Firefox is up, WARM_POOL_BROWSER;
`lazy+viewer` with --viewer-lead S: a VNC viewer connects S seconds before the message, as the
console's does on create while the person types; `lazy+cold` with --cold: without the recorded
Firefox startup cache in the base home, desktops/startup_cache.py; `lazy+noaslr+ksm` with
--ksm-no-aslr: KSM with the merged programs run without ASLR, KSM_DISABLE_ASLR; `lazy+keep`
with --keep: without the memory reclaim, MEMORY_RECLAIM_INTERVAL=0; `lazy+blank` with
--blank: without the profile template in the base home, every session's Firefox sets up a new
profile, desktops/startup_cache.py; `lazy+watched` with --watched: every session has a VNC
viewer from its create on, so its x11vnc runs (it runs only while watched, viewing.py); through
--modes, `+zero` in a KSM mode's name: ksmd's
use_zero_pages for that mode; `+keep`, `+blank`, `+watched` or `+nomin` (the reclaim without
asking idle browsers to minimize their memory, minimize.py) in any, e.g. `eager+watched`) and each N
(default 1, 10, 20). Every other mode reclaims: right before each PSS figure the bench runs
the sweeps of the memory reclaim (desktops/reclaim.py) that the service runs every
MEMORY_RECLAIM_INTERVAL seconds over a quiet spell: idle browsers are asked to minimize their
memory (minimize.py; not with `+nomin`), then what they freed is paged out:

- create N desktops; "idle": PSS summed over each session user's processes (smaps_rollup),
  eager sessions once their Firefox window is up (that is what an idle session costs today);
- one short scripted run each, all at once: what the agent runner does for a posted message
  (request the browser, then the model's first call, simulated as --model-latency seconds)
  then the model's first screenshot, a click, a second screenshot. "First step" is the time
  from the message to the first screenshot in hand;
- after the run (browser up on a blank page): PSS again; per session, total, and how many
  such sessions fit in 24 GiB (24 GiB / per-session PSS, nothing else counted);
- "new session": N more sessions arrive (5 at a time) and each posts its message as soon as
  its create returns, as an API client does: the eager baseline's Firefox is then still
  starting (create never waited for it, before or since the lazy browser), so both modes'
  first steps include Firefox's start on the host (lazy+viewer: its viewer connects at create's
  return, the message --viewer-lead later). Time from the message to the first screenshot in
  hand, and on how many first screenshots a Firefox window was mapped (checked
  right after the screenshot: eager's first look may be at an empty desktop); when the first
  screenshot has none, the model looks again (another simulated model call, then a
  screenshot) until one has, and "the model first sees Firefox" is the time from the message
  to that screenshot in hand. Also the time from create's return until a Firefox window is
  mapped (polled every 0.25 s), and the CPU seconds the session's processes have used by the
  end of its run (create, Firefox's start, the run), with what N such sessions need at least
  on this host's cores. The "idle" figures above wait for eager's windows before the
  message, so their eager first step never includes Firefox's start.

PSS divides a shared page among every process that maps it, on the whole host: other users'
Firefox processes (e.g. other test suites) lower these figures somewhat. The machine's CPU may
be shared too, which slows Firefox's start (the first-step times) but not what it occupies.

Run as root: `.venv/bin/python bench/density.py [--sessions 1,10,20] [--ksm] [--pool-browser]
[--prefs [names] [--prefs-sessions N]]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from computer_use.desktops import Desktop, DesktopManager, display, firefox_prefs
from computer_use.desktops.filesystem import PROFILE_TEMPLATE, SHARED_STARTUP_CACHE
from computer_use.desktops.launcher import live_pids_of_uid, poll_until
from computer_use.desktops.mounts import read_mounts

WIDTH, HEIGHT = 1024, 768
MIB = 1024 * 1024
HOST = 24 * 1024 * MIB
QUIET_GAP = 5.0  # seconds between the sweeps that find a browser quiet (minimize.py)
DISPLAY_BASE = int(os.environ.get("DESKTOP_DISPLAY_BASE", "700"))
USER_PREFIX = os.environ.get("DESKTOP_USER_PREFIX", "cu-bd")


def pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass  # exited while we looked
    return 0


def session_pss(desktop: Desktop) -> int:
    return sum(pss_bytes(pid) for pid in live_pids_of_uid(desktop.user.uid))


def session_cpu(desktop: Desktop) -> float:
    """CPU seconds the session user's processes have used, with their waited-for children."""
    ticks = 0
    for pid in live_pids_of_uid(desktop.user.uid):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def session_processes(desktop: Desktop) -> int:
    return len(live_pids_of_uid(desktop.user.uid))


def merges(mode: str) -> bool:
    """Whether a mode runs with KSM (its name ends in "ksm"): the host's KSM is switched on."""
    return mode.endswith("ksm")


KSM_COUNTERS = ("pages_shared", "pages_sharing", "ksm_zero_pages", "full_scans")


def ksm_counters() -> dict[str, int]:
    root = Path("/sys/kernel/mm/ksm")
    return {n: int((root / n).read_text()) for n in KSM_COUNTERS if (root / n).exists()}


async def ksm_converged(within: float) -> int:
    """Until ksmd has scanned everything at least twice since now (a page merges only once it
    is unchanged across two scans) and its savings stop growing (two readings 10 s apart
    within 2%), or `within`. Returns the full scans done meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    scans = ksm_counters()["full_scans"]
    last = -1
    while loop.time() < deadline:
        now = ksm_counters()
        if now["full_scans"] >= scans + 2 and last > 0 and now["pages_sharing"] <= last * 1.02:
            break
        last = now["pages_sharing"]
        await asyncio.sleep(10)
    return ksm_counters()["full_scans"] - scans


class Row:
    def __init__(self, mode: str, n: int) -> None:
        self.mode, self.n = mode, n
        self.idle = self.after = 0.0  # MiB per session
        self.first_step: list[float] = []
        self.ksm_saved = 0.0  # MiB, pages_sharing * 4 KiB after the run
        self.ksm_scans = 0  # ksmd's full scans between the run's end and the figure
        self.reclaimed = 0.0  # MiB per session, the memory reclaim's sweep before "after"
        self.sweep_ms = 0.0  # that sweep's time per session (the last sweep's)
        self.processes = 0.0  # per session, after the run
        self.new_first: list[float] = []  # new sessions: the message -> first screenshot
        self.new_shown = 0  # new sessions whose first screenshot had Firefox's window mapped
        self.new_browser: list[float] = []  # new sessions: create's return -> Firefox mapped
        self.new_seen: list[float] = []  # new sessions: the message -> a screenshot with Firefox
        self.new_cpu: list[float] = []  # new sessions: CPU seconds by the end of their run


async def settle(desktops: list[Desktop], seconds: float) -> None:
    """Give Firefox time to finish its post-startup work, then let the screens settle."""
    await asyncio.sleep(seconds)
    await asyncio.gather(*(d.wait_until_settled(timeout=5) for d in desktops))


async def reclaimed(manager: DesktopManager, row: Row) -> float:
    """The service's memory reclaim sweeps every MEMORY_RECLAIM_INTERVAL; the bench runs the
    sweeps itself (its interval is an hour) right before a figure: those of a quiet spell, in
    which each browser is minimized (minimize.py), then one more. MiB freed per session; the
    last sweep's time per session in `row.sweep_ms`."""
    if not manager.reclaimer.enabled:
        return 0.0
    freed = await minimized(manager)
    started = time.perf_counter()
    freed += await manager.reclaimer.sweep()
    row.sweep_ms = (time.perf_counter() - started) * 1000 / row.n
    return freed / row.n / MIB


async def minimized(manager: DesktopManager, within: float = 90) -> int:
    """Sweeps as over a quiet spell: one sees each browser, the next, QUIET_GAP later, asks
    the quiet ones to minimize, then more until every report is written and removed (or
    `within`). The bytes these sweeps freed."""
    reclaimer = manager.reclaimer
    if not reclaimer.minimizer.enabled:
        return 0
    freed = await reclaimer.sweep()
    await asyncio.sleep(QUIET_GAP)
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        freed += await reclaimer.sweep()
        if reclaimer.minimizer.settled():
            break
        await asyncio.sleep(1)
    return freed


async def scripted_run(
    desktop: Desktop, model_latency: float, *, until_seen: bool = False
) -> tuple[float, bool, float]:
    """One short run: the first step's time (message -> first screenshot), whether a Firefox
    window was mapped once that screenshot was in hand, and with `until_seen` a model that
    looks again (a model call, then a screenshot) until a screenshot has Firefox on it: the
    time from the message to that screenshot in hand (the first step's without)."""
    started = time.perf_counter()
    desktop.request_browser()  # what AgentRunner.start does when the message is posted
    await asyncio.sleep(model_latency)  # the model's first call, in parallel with it
    await desktop.screenshot()
    first = seen = time.perf_counter() - started
    shown = seen_now = await desktop.browser.window_shown()
    async with asyncio.timeout(120):
        while until_seen and not seen_now:
            await asyncio.sleep(model_latency)
            await desktop.screenshot()
            seen = time.perf_counter() - started
            seen_now = await desktop.browser.window_shown()
    await desktop.click(WIDTH // 2, HEIGHT // 2)
    await desktop.wait_until_settled(timeout=2)
    await desktop.screenshot()
    return first, shown, seen


async def wait_browser_up(desktop: Desktop, within: float = 120) -> None:
    async with asyncio.timeout(within):
        while True:
            if desktop.browser_state == "up" and await desktop.browser.window_shown():
                return
            await asyncio.sleep(0.2)


async def pool_filled(manager: DesktopManager, n: int) -> None:
    """With a warm pool: until it holds `n` desktops with their browsers up."""
    if manager.pool.size:
        await poll_until(lambda: manager.pool.health()["ready"] >= n, timeout=300,
                         what="the pool to fill")  # fmt: skip
        pooled = [d for s, d in manager._desktops.items() if s.startswith("warm-")]
        await asyncio.gather(*(wait_browser_up(d, within=300) for d in pooled))


async def measure(manager: DesktopManager, row: Row, args: argparse.Namespace) -> None:
    ids = [f"{row.mode.replace('+', '-')}-{row.n}-{i}" for i in range(row.n)]
    desktops: list[Desktop] = []
    try:
        await pool_filled(manager, row.n)  # every session takes a pooled desktop, browser up
        for start in range(0, row.n, 5):  # a few at a time, as sessions arrive
            desktops += await asyncio.gather(*(manager.create(s) for s in ids[start : start + 5]))
        if "+watched" in row.mode:  # someone watches each session: its x11vnc runs
            await asyncio.gather(*(d.open_vnc() for d in desktops))
        if manager.eager_browser or manager.pool.browser:
            await asyncio.gather(*(wait_browser_up(d) for d in desktops))
        await settle(desktops, args.settle)
        await reclaimed(manager, row)
        row.idle = sum(session_pss(d) for d in desktops) / row.n / MIB
        if row.mode == "lazy+viewer":  # the viewer connects, the person types for a while
            for desktop in desktops:
                desktop.request_browser()
            await asyncio.sleep(args.viewer_lead)
        runs = await asyncio.gather(*(scripted_run(d, args.model_latency) for d in desktops))
        row.first_step = [first for first, _, _ in runs]
        await asyncio.gather(*(wait_browser_up(d) for d in desktops))
        await settle(desktops, args.settle)
        if merges(row.mode):
            row.ksm_scans = await ksm_converged(args.ksm_wait)
        row.reclaimed = await reclaimed(manager, row)
        row.after = sum(session_pss(d) for d in desktops) / row.n / MIB
        row.processes = sum(session_processes(d) for d in desktops) / row.n
        if merges(row.mode):
            row.ksm_saved = ksm_counters()["pages_sharing"] * 4096 / MIB
    finally:
        await asyncio.gather(*(manager.destroy(d.session_id) for d in desktops))


async def measure_new(manager: DesktopManager, row: Row, args: argparse.Namespace) -> None:
    """N new sessions arrive, 5 at a time, each posting its message as soon as its create
    returns (lazy+viewer: its viewer connects on create, the message --viewer-lead later)."""
    desktops: list[Desktop] = []

    async def browser_mapped(desktop: Desktop, started: float) -> float:
        while True:
            if await desktop.browser.window_shown():
                return time.perf_counter() - started
            await asyncio.sleep(0.25)

    async def arrive(session_id: str, created: asyncio.Event) -> tuple[float, bool, float, float]:
        try:
            desktop = await manager.create(session_id)
            desktops.append(desktop)
            if "+watched" in row.mode:
                await desktop.open_vnc()
        finally:
            created.set()
        mapped = asyncio.create_task(browser_mapped(desktop, time.perf_counter()))
        try:
            if row.mode == "lazy+viewer":
                desktop.request_browser()
                await asyncio.sleep(args.viewer_lead)
            first, shown, seen = await scripted_run(desktop, args.model_latency, until_seen=True)
            row.new_cpu.append(session_cpu(desktop))
            async with asyncio.timeout(120):
                return first, shown, await mapped, seen
        finally:
            mapped.cancel()

    ids = [f"new-{row.mode.replace('+', '-')}-{row.n}-{i}" for i in range(row.n)]
    runs: list[asyncio.Task[tuple[float, bool, float, float]]] = []
    try:
        await pool_filled(manager, row.n)
        for start in range(0, row.n, 5):  # the next five arrive once these five are created
            batch = {s: asyncio.Event() for s in ids[start : start + 5]}
            runs += [asyncio.create_task(arrive(s, e)) for s, e in batch.items()]
            await asyncio.gather(*(e.wait() for e in batch.values()))
        results = await asyncio.gather(*runs)
        row.new_first = [first for first, _, _, _ in results]
        row.new_shown = sum(shown for _, shown, _, _ in results)
        row.new_browser = [mapped for _, _, mapped, _ in results]
        row.new_seen = [seen for _, _, _, seen in results]
    finally:
        await asyncio.gather(*runs, return_exceptions=True)
        await asyncio.gather(*(manager.destroy(d.session_id) for d in desktops))


def print_new(row: Row, baseline: Row | None, viewer_lead: float) -> None:
    def spread(field: str) -> str:
        """p50 and max of one of the row's figures, and the ratio of p50s to the baseline's."""
        figures: list[float] = getattr(row, field)
        p50 = statistics.median(figures)
        text = f"p50 {p50:5.2f} s max {max(figures):5.2f} s"
        if baseline is not None:
            base = statistics.median(getattr(baseline, field))
            text += f" (x{p50 / base:.2f} of {baseline.mode})"
        return text

    when = f"{viewer_lead:.0f} s after create" if row.mode == "lazy+viewer" else "at once"
    cpu = statistics.median(row.new_cpu)
    cores = os.cpu_count() or 1
    print(
        f"  {row.mode:<9} N={row.n:<3} new session, message {when}: first step "
        f"{spread('new_first')}"
        f", Firefox on the first screenshot {row.new_shown}/{row.n}; the model first sees "
        f"Firefox {spread('new_seen')}"
        f"; Firefox mapped after {spread('new_browser')} (from create's return); "
        f"CPU per session p50 {cpu:.2f} s by its run's end, {row.n} on {cores} cores need "
        f">= {row.n * cpu / cores:.1f} s",
        flush=True,
    )


def print_row(row: Row, baseline: Row | None) -> None:
    p50 = statistics.median(row.first_step)
    ratio = ""
    if baseline is not None:
        base = statistics.median(baseline.first_step)
        ratio = (
            f"  first step x{p50 / base:.2f} of {baseline.mode}, "
            f"memory x{row.after / baseline.after:.2f}"
        )
    fits = int(HOST // (row.after * MIB))
    ksm = (
        f", KSM saves {row.ksm_saved:.0f} MiB in all after {row.ksm_scans} full scans"
        if row.ksm_saved
        else ""
    )
    if row.reclaimed:
        ksm += f", reclaim freed {row.reclaimed:.1f} MiB/session in {row.sweep_ms:.0f} ms/session"
    print(
        f"  {row.mode:<9} N={row.n:<3} idle {row.idle:6.1f} MiB/session "
        f"(total {row.idle * row.n:7.0f}, fit {int(HOST // (row.idle * MIB)):5d})  "
        f"after a run {row.after:6.1f} MiB/session (total {row.after * row.n:7.0f}, "
        f"fit {fits:4d}, {row.processes:.0f} processes)  "
        f"first step p50 {p50:5.2f} s max {max(row.first_step):5.2f} s"
        f"{ksm}{ratio}",
        flush=True,
    )


@contextmanager
def manager_for(
    mode: str, capacity: int, *, warm_pool_size: int = 0
) -> Iterator[tuple[DesktopManager, Path]]:
    data_dir = Path(tempfile.mkdtemp(prefix="density-bench-"))
    manager = DesktopManager(
        data_dir,
        width=WIDTH,
        height=HEIGHT,
        max_displays=capacity,
        isolation_enabled=True,
        disk_quota_mb=64,
        display_base=DISPLAY_BASE,
        user_prefix=USER_PREFIX,
        eager_browser=mode.startswith("eager"),
        ksm=merges(mode),
        ksm_start_host=merges(mode),  # --ksm: the bench switches the host's KSM on
        ksm_disable_aslr="+noaslr" in mode,
        warm_pool_size=warm_pool_size,
        warm_pool_browser=mode == "pool+browser",
        # on, swept by the bench itself before each figure (reclaimed()); `+keep`: off
        memory_reclaim_interval=0 if "+keep" in mode else 3600,
    )
    manager.reclaimer.minimizer.enabled = "+nomin" not in mode  # `+nomin`: no minimize
    try:
        yield manager, data_dir
    finally:
        cleanup_data_dir(data_dir)


@contextmanager
def experiment(mode: str) -> Iterator[None]:
    """Variants measured before they are the service's, for that mode only: `+zero`: ksmd
    merges empty pages into the kernel's zero page (use_zero_pages); `+jemr`: Firefox's
    allocator places small allocations in order, not at random (MALLOC_OPTIONS=r)."""
    zero = Path("/sys/kernel/mm/ksm/use_zero_pages")
    saved = zero.read_text()
    if "+zero" in mode:
        zero.write_text("1")
    if "+jemr" in mode:
        display.FIREFOX_ENV["MALLOC_OPTIONS"] = "r"
    try:
        yield
    finally:
        zero.write_text(saved)
        display.FIREFOX_ENV.pop("MALLOC_OPTIONS", None)


async def run_modes(args: argparse.Namespace) -> None:
    sizes = [int(n) for n in args.sessions.split(",")]
    modes = ["eager", "lazy"] + (["lazy+ksm"] if args.ksm else [])
    modes += ["pool+browser"] if args.pool_browser else []
    modes += ["lazy+viewer"] if args.viewer_lead else []
    modes += ["lazy+cold"] if args.cold else []
    modes += ["lazy+noaslr+ksm"] if args.ksm_no_aslr else []
    modes += ["lazy+keep"] if args.keep else []
    modes += ["lazy+blank"] if args.blank else []
    modes += ["lazy+nomin"] if args.no_minimize else []
    modes += ["lazy+watched"] if args.watched else []
    if args.modes:
        modes = args.modes.split(",")
    await _run_sizes(sizes, modes, args)


async def _run_sizes(sizes: list[int], modes: list[str], args: argparse.Namespace) -> None:
    for n in sizes:
        baseline: Row | None = None
        rows: list[Row] = []
        for mode in modes:
            pool = n if mode == "pool+browser" else 0  # N pooled desktops, no refills beyond
            capacity = n if pool else max(sizes)
            with experiment(mode), manager_for(mode, capacity, warm_pool_size=pool) as (manager, _):
                await manager.start()
                if mode == "lazy+cold":  # every session's Firefox makes its own startup cache
                    shutil.rmtree(manager.homes.base_dir / SHARED_STARTUP_CACHE)
                if "+blank" in mode:  # every session's Firefox sets up a new profile
                    shutil.rmtree(manager.homes.base_dir / PROFILE_TEMPLATE)
                try:
                    row = Row(mode, n)
                    await measure(manager, row, args)
                    if args.new_sessions:
                        await measure_new(manager, row, args)
                finally:
                    await manager.shutdown()
            print_row(row, baseline)
            baseline = baseline or row
            rows.append(row)
        for row in rows if args.new_sessions else []:
            print_new(row, None if row is baseline else baseline, args.viewer_lead)


# Firefox preferences measured one by one against the profile as it is (--prefs).
PREF_CANDIDATES: dict[str, dict[str, bool | int | str]] = {
    "(profile as is)": {},
    "extensions in the parent process": {"extensions.webextensions.remote": False},
    "no privileged content process": {
        "browser.tabs.remote.separatePrivilegedContentProcess": False,
        "browser.tabs.remote.separatePrivilegedMozillaWebContentProcess": False,
    },
    "socket + RDD + fork-server processes back": {
        "network.process.enabled": True,
        "media.rdd-process.enabled": True,
        "dom.ipc.forkserver.enable": True,
    },
    "no media utility process": {"media.utility-process.enabled": False},
    "JS validator utility process back": {
        "browser.opaqueResponseBlocking.javascriptValidator": True,
    },
    "no preloaded new tab": {"browser.newtab.preload": False},
    "idle privileged about: process kept (Firefox's default)": {
        "dom.ipc.keepProcessesAlive.privilegedabout": 1,
    },
    "new tab page's feeds started (Firefox's default)": {
        "browser.newtabpage.activity-stream.testing.shouldInitializeFeeds": True,
        "browser.newtabpage.activity-stream.feeds.system.topsites": True,
    },
    "small JS nursery and no empty GC chunks kept": {
        "javascript.options.mem.nursery.max_kb": 4096,
        "javascript.options.mem.gc_min_empty_chunk_count": 0,
    },
    "WebRender on one thread without thread arenas": {
        "gfx.webrender.multithreading": False,
        "gfx.webrender.enable-low-priority-pool": False,
        "gfx.webrender.frame-builder-thread-local-arena": False,
        "gfx.webrender.scene-builder-thread-local-arena": False,
        "gfx.webrender.worker-thread-local-arena": False,
    },
    "WebRender without its compositor": {"gfx.webrender.compositor": False},
    "WebRender 256 px tiles": {
        "gfx.webrender.picture-tile-width": 256,
        "gfx.webrender.picture-tile-height": 256,
    },
    "offline background services off": {
        "browser.safebrowsing.malware.enabled": False,
        "browser.safebrowsing.phishing.enabled": False,
        "browser.safebrowsing.downloads.enabled": False,
        "browser.safebrowsing.blockedURIs.enabled": False,
        "network.captive-portal-service.enabled": False,
        "network.connectivity-service.enabled": False,
        "extensions.pocket.enabled": False,
        "browser.search.update": False,
        "dom.push.connection.enabled": False,
        "browser.discovery.enabled": False,
    },
    "unused built-in features off": {
        "extensions.formautofill.addresses.enabled": False,
        "extensions.formautofill.creditCards.enabled": False,
        "extensions.screenshots.disabled": True,
        "media.videocontrols.picture-in-picture.enabled": False,
        "browser.translations.enable": False,
        "browser.urlbar.quicksuggest.enabled": False,
        "reader.parse-on-load.enabled": False,
        "privacy.trackingprotection.enabled": False,
        "privacy.trackingprotection.socialtracking.enabled": False,
        "browser.contentblocking.category": "custom",
        "network.cookie.cookieBehavior": 0,
    },
    "shrinking GC 15 s after the last input (not 5 min)": {
        "javascript.options.compact_on_user_inactive_delay": 15000,
    },
    "no JIT for the browser's own scripts": {
        "javascript.options.ion": False,
        "javascript.options.baselinejit": False,
    },
    "small caches": {
        "browser.cache.memory.capacity": 16384,
        "browser.sessionhistory.max_total_viewers": 0,
        "image.mem.surfacecache.max_size_kb": 65536,
    },
}


async def run_prefs(args: argparse.Namespace) -> None:
    """PSS per session with Firefox on a blank page, --prefs-sessions of them, one candidate
    at a time."""
    original = dict(firefox_prefs.FIREFOX_PREFS)
    chosen = [n.strip() for n in args.prefs.split(",")] if args.prefs != "all" else None
    if unknown := set(chosen or ()) - PREF_CANDIDATES.keys():
        raise SystemExit(f"no --prefs candidate named {sorted(unknown)}; the candidates: "
                         + "; ".join(PREF_CANDIDATES))  # fmt: skip
    candidates = {n: v for n, v in PREF_CANDIDATES.items() if chosen is None or n in chosen}
    if args.prefs_together:
        together = {k: v for prefs in candidates.values() for k, v in prefs.items()}
        candidates = {"(profile as is)": {}, "all of: " + ", ".join(candidates): together}
    baseline = None
    for name, prefs in candidates.items():
        firefox_prefs.FIREFOX_PREFS.clear()
        firefox_prefs.FIREFOX_PREFS.update({**original, **prefs})
        with manager_for("lazy", args.prefs_sessions) as (manager, _):
            await manager.start()
            try:
                row = Row("prefs", args.prefs_sessions)
                await measure(manager, row, args)
            finally:
                await manager.shutdown()
        baseline = baseline or row.after
        print(f"  {name:<42} {row.after:6.1f} MiB/session with Firefox up "
              f"(x{row.after / baseline:.2f}, {row.processes:.0f} processes), first step p50 "
              f"{statistics.median(row.first_step):.2f} s", flush=True)  # fmt: skip
    firefox_prefs.FIREFOX_PREFS.clear()
    firefox_prefs.FIREFOX_PREFS.update(original)


async def run_pool(args: argparse.Namespace) -> None:
    """create() p50 with a warm pool (each create finds a ready desktop) against without."""
    for size in (0, 2):
        with manager_for("lazy", 4, warm_pool_size=size) as (manager, _):
            await manager.start()
            durations = []
            try:
                for i in range(args.pool_creates):
                    await poll_until(
                        lambda: manager.pool.health()["ready"] >= size,  # noqa: B023
                        timeout=120,
                        what="the pool to refill",
                    )
                    started = time.perf_counter()
                    await manager.create(f"pool-{i}")
                    durations.append(time.perf_counter() - started)
                    await manager.destroy(f"pool-{i}")
            finally:
                await manager.shutdown()
        p50 = statistics.median(durations) * 1000
        print(f"  WARM_POOL_SIZE={size}: create() p50 {p50:6.1f} ms, max "
              f"{max(durations) * 1000:6.1f} ms over {len(durations)}", flush=True)  # fmt: skip


def cleanup_data_dir(data_dir: Path) -> None:
    inside = [m.mount_point for m in read_mounts() if data_dir in m.mount_point.parents]
    for mount_point in sorted(inside, key=lambda p: len(p.parts), reverse=True):
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False)
    shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1,10,20", help="comma-separated N")
    parser.add_argument("--model-latency", type=float, default=3.0,
                        help="seconds the model's first call takes (simulated)")  # fmt: skip
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--ksm", action="store_true", help="also lazy+ksm (switches KSM on)")
    parser.add_argument("--keep", action="store_true",
                        help="also lazy+keep: without the memory reclaim")  # fmt: skip
    parser.add_argument("--blank", action="store_true",
                        help="also lazy+blank: without the profile template")  # fmt: skip
    parser.add_argument("--ksm-wait", type=float, default=240.0,
                        help="most seconds ksmd gets to converge (after-run figure)")  # fmt: skip
    parser.add_argument("--ksm-no-aslr", action="store_true",
                        help="also lazy+noaslr+ksm: KSM_DISABLE_ASLR (implies --ksm)")  # fmt: skip
    parser.add_argument("--ksm-tune", help="ksmd tunables for the run: name=value,...")
    parser.add_argument("--pool", action="store_true", help="measure create() with a warm pool")
    parser.add_argument("--pool-creates", type=int, default=8)
    parser.add_argument("--viewer-lead", type=float, default=0.0,
                        help="also lazy+viewer: a viewer connects (starting the browser) this "
                        "many seconds before the message")  # fmt: skip
    parser.add_argument("--no-minimize", action="store_true",
                        help="also lazy+nomin: the reclaim without minimizing idle "
                        "browsers")  # fmt: skip
    parser.add_argument("--watched", action="store_true",
                        help="also lazy+watched: a VNC viewer on every session, x11vnc "
                        "up")  # fmt: skip
    parser.add_argument("--cold", action="store_true",
                        help="also lazy+cold: no recorded Firefox startup cache")  # fmt: skip
    parser.add_argument("--no-new-sessions", dest="new_sessions", action="store_false",
                        help="skip the new sessions (create, then message at once)")  # fmt: skip
    parser.add_argument("--modes", help="comma-separated modes instead (the first: baseline)")
    parser.add_argument("--pool-browser", action="store_true",
                        help="also pool+browser: sessions take pooled desktops with Firefox up "
                        "(WARM_POOL_BROWSER)")  # fmt: skip
    parser.add_argument(
        "--prefs",
        nargs="?",
        const="all",
        default=None,
        help="measure Firefox preference candidates instead (names or all)",
    )
    parser.add_argument("--prefs-sessions", type=int, default=3,
                        help="with --prefs: sessions per candidate (confirm at 10)")  # fmt: skip
    parser.add_argument(
        "--prefs-together",
        action="store_true",
        help="with --prefs: the chosen candidates at once against none",
    )
    args = parser.parse_args()
    # --modes may name KSM modes too: each switches the host's KSM on, put back at the end
    args.ksm = args.ksm or args.ksm_no_aslr or any(map(merges, (args.modes or "").split(",")))
    if os.geteuid() != 0:
        raise SystemExit("run as root: desktops need their users and mounts")
    print(f"{os.cpu_count()} cores; model latency {args.model_latency:.1f} s (simulated); "
          f"PSS per session; fit = sessions in 24 GiB at that PSS")  # fmt: skip
    run = Path("/sys/kernel/mm/ksm/run")
    ksm_dir = Path("/sys/kernel/mm/ksm")
    tunables = ("run", "pages_to_scan", "sleep_millisecs")
    saved = {n: (ksm_dir / n).read_text() for n in tunables} if run.exists() else None
    if saved is not None and args.ksm:
        # ksmd's default pace (100 pages / 20 ms) needs minutes for 20 sessions; the bench
        # wants the converged figure sooner. Put back afterwards.
        (ksm_dir / "pages_to_scan").write_text("4000")
    for tunable in filter(None, (args.ksm_tune or "").split(",")):
        name, value = tunable.split("=")
        saved = (
            saved
            if saved is None or name in saved
            else {**saved, name: (ksm_dir / name).read_text()}
        )
        (ksm_dir / name).write_text(value)
    try:
        if args.pool:
            asyncio.run(run_pool(args))
        else:
            asyncio.run(run_prefs(args) if args.prefs else run_modes(args))
    finally:
        if saved is not None and (args.ksm or args.ksm_tune):
            for name, value in saved.items():  # the host's KSM as it was before the bench
                (ksm_dir / name).write_text(value)


if __name__ == "__main__":
    main()
