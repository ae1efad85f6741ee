"""The memory reclaim: what a session's browser freed (MADV_FREE) but the kernel still counts
goes back to the host on each sweep, the browser keeps working, sessions without a browser
are left alone; never where the reclaim could swap a session out."""

from __future__ import annotations

import asyncio
import errno
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from subprocess import PIPE

import pytest

from computer_use.desktops import Desktop, DesktopManager
from computer_use.desktops.launcher import live_pids_of_uid, poll_until
from computer_use.desktops.minimize import is_browser, reports
from computer_use.desktops.reclaim import (
    MemoryReclaimer,
    anonymous_ranges,
    host_has_swap,
    page_out,
    refusal,
)
from tests.desktop_fixtures import EventLog, running_desktop_manager
from tests.desktops.conftest import desktop_image
from tests.desktops.test_browser import CENTRE, browser_on
from tests.helpers import wait_for_async

MIB = 1024 * 1024


def rollup(pid: int, field: str) -> int:
    """`field` of /proc/PID/smaps_rollup (kB there) in bytes."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def smaps_total(desktop: Desktop, field: str) -> int:
    """`field` summed over the session's processes, in bytes."""
    total = 0
    for pid in live_pids_of_uid(desktop.user.uid):
        try:
            total += rollup(pid, field)
        except OSError:
            continue  # exited while we looked
    return total


async def quiet(desktop: Desktop) -> None:
    """Wait until the session's anonymous memory holds still: three readings a second apart
    within 1 MiB of each other."""
    readings: list[int] = []

    async def still() -> bool:
        readings.append(smaps_total(desktop, "Pss_Anon"))
        recent = readings[-3:]
        return len(recent) == 3 and max(recent) - min(recent) < MIB

    await wait_for_async(still, timeout=90, interval=1.0, what="the browser's memory holding still")


@pytest.fixture(scope="module")
async def reclaiming(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DesktopManager]:
    # On, with a sweep interval no test reaches: the tests sweep themselves.
    async with running_desktop_manager(
        tmp_path_factory,
        EventLog(),
        base=460,
        max_displays=3,
        user_prefix="cu-dm",
        memory_reclaim_interval=3600,
    ) as manager:
        if not manager.reclaimer.enabled:
            pytest.skip(f"the memory reclaim is off here: {manager.reclaimer.reason}")
        yield manager


async def test_a_sweep_gives_back_what_the_browser_freed_and_the_browser_works_on(
    reclaiming: DesktopManager,
) -> None:
    used, _idle = await asyncio.gather(reclaiming.create("used"), reclaiming.create("idle"))
    used.request_browser()
    assert browser_on(await used.screenshot())
    # A browser still starting allocates as fast as a sweep frees: measure once it is quiet.
    await quiet(used)
    # Firefox's start frees part of what it allocated: still mapped, counted in its PSS.
    await poll_until(
        lambda: smaps_total(used, "LazyFree") >= 8 * MIB, timeout=60, what="lazily freed pages"
    )
    lazy_before = smaps_total(used, "LazyFree")
    anon_before = smaps_total(used, "Pss_Anon")
    file_before = smaps_total(used, "Pss_File")

    freed = await reclaiming.reclaimer.sweep()

    # (Firefox goes on freeing and allocating meanwhile: margins, not equalities.)
    assert freed >= 4 * MIB
    assert smaps_total(used, "LazyFree") < lazy_before / 2
    assert smaps_total(used, "Pss_Anon") <= anon_before - 4 * MIB
    health = reclaiming.health()["memory_reclaim"]
    assert health["enabled"] is True and health["sweeps"] == 1
    assert health["reclaimed_mib"] >= 4
    # Only sessions with a browser are swept; files are never touched.
    assert reclaiming._browser_users() == [used.user.uid]
    assert smaps_total(used, "Pss_File") >= file_before - 2 * MIB
    # What the browser still uses stayed: it renders a page.
    await used.key("ctrl+l")
    await used.type_text("data:text/html,<body style='background:rgb(30,160,60)'>\n")

    async def green() -> bool:
        return desktop_image(await used.screenshot()).getpixel(CENTRE) == (30, 160, 60)

    await wait_for_async(green, timeout=30, interval=0.5, what="the data: page painted")
    assert used.browser_state == "up"


async def test_a_quiet_browser_is_minimized_and_gives_back_more(
    reclaiming: DesktopManager,
) -> None:
    desktop = await reclaiming.create("quiet")
    try:
        desktop.request_browser()
        assert browser_on(await desktop.screenshot())
        await quiet(desktop)
        [firefox] = [p for p in live_pids_of_uid(desktop.user.uid) if is_browser(p)]
        reclaimer = reclaiming.reclaimer
        await reclaimer.sweep()  # sees it, pages out what it freed so far
        paged_out = smaps_total(desktop, "Pss_Anon")

        async def minimized() -> bool:
            """A sweep, as the service's; true once Firefox was asked and its report removed."""
            await reclaimer.sweep()
            return firefox in reclaimer.minimizer.minimized_browsers()

        await wait_for_async(minimized, timeout=60, interval=1.0, what="Firefox minimized")
        assert reports(firefox) == []
        assert reclaiming.health()["memory_reclaim"]["browsers_minimized"] >= 1
        await reclaimer.sweep()  # pages out what minimizing freed
        # WebRender's render targets and atlas, spare GC chunks: ~18 MiB in bench/density.py.
        assert smaps_total(desktop, "Pss_Anon") <= paged_out - 5 * MIB
        # The browser draws as before, and the same process does.
        await desktop.key("ctrl+l")
        await desktop.type_text("data:text/html,<body style='background:rgb(160,30,60)'>\n")

        async def red() -> bool:
            return desktop_image(await desktop.screenshot()).getpixel(CENTRE) == (160, 30, 60)

        await wait_for_async(red, timeout=30, interval=0.5, what="the data: page painted")
        assert is_browser(firefox) and desktop.browser_state == "up"
    finally:
        await reclaiming.destroy("quiet")


# -- the kernel interface, on a process of the test's own ---------------------------------

# Maps 64 MiB, writes every page, frees them the way Firefox's allocator does, then waits.
FREEING_CHILD = """
import mmap, sys
buf = mmap.mmap(-1, 64 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
buf.write(b"x" * (64 << 20))
buf.madvise(mmap.MADV_FREE)
print("freed", flush=True)
sys.stdin.read()
"""


@pytest.fixture
async def freeing_child() -> AsyncIterator[int]:
    if os.geteuid() != 0 or host_has_swap():
        pytest.skip("pages out only as root on a host without swap")
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FREEING_CHILD, stdin=PIPE, stdout=PIPE
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        async with asyncio.timeout(30):
            assert await child.stdout.readline() == b"freed\n"
        yield child.pid
    finally:
        child.stdin.close()
        await child.wait()


async def test_page_out_frees_what_a_process_freed_lazily_and_nothing_else(
    freeing_child: int,
) -> None:
    assert rollup(freeing_child, "LazyFree") >= 60 * MIB  # still counted as the process's memory

    freed = page_out(freeing_child)

    assert freed >= 60 * MIB and rollup(freeing_child, "LazyFree") < MIB
    assert page_out(freeing_child) < MIB  # the rest is in use: it stays


def test_only_private_writable_anonymous_mappings_are_paged_out() -> None:
    maps = "\n".join(
        [
            "55d0-55e0 r--p 00000000 08:01 123 /usr/lib/firefox-esr/libxul.so",
            "55e0-55f0 rw-p 00010000 08:01 123 /usr/lib/firefox-esr/libxul.so",
            "5600-5700 rw-p 00000000 00:00 0 [heap]",
            "7f00-7f10 rw-p 00000000 00:00 0",
            "7f10-7f20 rw-s 00000000 00:01 9 /memfd:shared (deleted)",
            "7f20-7f30 ---p 00000000 00:00 0",
            "7ff0-7ff8 rw-p 00000000 00:00 0 [stack]",
        ]
    )
    assert anonymous_ranges(maps) == [(0x5600, 0x100), (0x7F00, 0x10)]


@pytest.mark.parametrize(
    ("interval", "users", "swap", "reason"),
    [
        (0, True, False, "MEMORY_RECLAIM_INTERVAL is 0"),
        (60, False, False, "no dedicated session users"),
        (60, True, True, "the host has swap"),
        (60, True, False, None),
    ],
)
async def test_the_reclaim_says_why_it_is_off(
    interval: float, users: bool, swap: bool, reason: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("computer_use.desktops.reclaim.host_has_swap", lambda: swap)
    monkeypatch.setattr("computer_use.desktops.reclaim.refusal", lambda: None)
    reclaimer = MemoryReclaimer(interval, list)
    reclaimer.start(session_users=users)
    try:
        health = reclaimer.health()
        if reason is None:
            assert health["enabled"] is True and health["interval_s"] == interval
        else:
            assert health["enabled"] is False and health["reason"].startswith(reason)
    finally:
        await reclaimer.close()


async def test_the_background_sweep_runs_every_interval(
    freeing_child: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Our child alone, not every process of our user.
    monkeypatch.setattr(
        "computer_use.desktops.reclaim.live_pids_of_uids", lambda uids: [freeing_child]
    )
    reclaimer = MemoryReclaimer(0.05, lambda: [os.getuid()])
    reclaimer.start(session_users=True)
    try:
        await poll_until(lambda: reclaimer.sweeps >= 3, timeout=10, what="three sweeps")
    finally:
        await reclaimer.close()
    assert reclaimer.reclaimed >= 60 * MIB and rollup(freeing_child, "LazyFree") < MIB


def test_the_start_up_probe_pages_out_one_page_of_our_own() -> None:
    if os.geteuid() != 0:
        pytest.skip("process_madvise needs CAP_SYS_NICE")
    assert refusal() is None


async def test_a_kernel_that_refuses_turns_the_reclaim_off_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(pid: int) -> int:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr("computer_use.desktops.reclaim.host_has_swap", lambda: False)
    monkeypatch.setattr("computer_use.desktops.reclaim.page_out", refused)
    monkeypatch.setattr("computer_use.desktops.reclaim.refusal", lambda: None)
    monkeypatch.setattr(
        "computer_use.desktops.reclaim.live_pids_of_uids", lambda uids: [os.getpid()]
    )
    reclaimer = MemoryReclaimer(3600, lambda: [os.getuid()])
    reclaimer.start(session_users=True)
    try:
        assert await reclaimer.sweep() == 0
        assert reclaimer.health()["enabled"] is False
        assert "refused: Operation not permitted" in str(reclaimer.reason)
    finally:
        await reclaimer.close()
