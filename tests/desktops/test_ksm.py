"""KSM: with KSM_MERGE on and the host's KSM running, the sessions' processes are mergeable and
the kernel merges their identical pages (counted in /sys/kernel/mm/ksm); off, they are not.
KSM_DISABLE_ASLR: the merged programs run without address-space randomisation, only then."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from computer_use.desktops import Desktop, DesktopManager
from computer_use.desktops.ksm import (
    ADDR_NO_RANDOMIZE,
    KSM_DIR,
    SessionKsm,
    counters,
    kernel_supports_merge,
    merging_pages,
)
from computer_use.desktops.launcher import live_pids_of_uid, poll_until
from tests.desktop_fixtures import EventLog, running_desktop_manager


def merge_any(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/ksm_stat").read_text()
    return "ksm_merge_any: yes" in stat


def randomised(pid: int) -> bool:
    return not int(Path(f"/proc/{pid}/personality").read_text(), 16) & ADDR_NO_RANDOMIZE


@pytest.fixture(scope="module")
def host_ksm() -> Iterator[None]:
    """The host's KSM as it was before the module, put back afterwards (switching it on is
    what KSM_START_HOST does; scanning faster only shortens the test)."""
    if os.geteuid() != 0 or not (KSM_DIR / "run").exists() or not kernel_supports_merge():
        pytest.skip("needs root and a kernel with KSM and PR_SET_MEMORY_MERGE (6.4+)")
    saved = {n: (KSM_DIR / n).read_text() for n in ("run", "pages_to_scan", "sleep_millisecs")}
    (KSM_DIR / "pages_to_scan").write_text("5000")
    (KSM_DIR / "sleep_millisecs").write_text("10")
    try:
        yield
    finally:
        for name, value in saved.items():
            (KSM_DIR / name).write_text(value)


@pytest.fixture(scope="module")
async def ksm_manager(
    host_ksm: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DesktopManager]:
    async with running_desktop_manager(
        tmp_path_factory,
        EventLog(),
        base=440,
        user_prefix="cu-dk",
        ksm=True,
        ksm_start_host=True,
        ksm_disable_aslr=True,
    ) as manager:
        yield manager


async def test_with_ksm_on_the_sessions_identical_pages_are_merged(
    ksm_manager: DesktopManager,
) -> None:
    assert (KSM_DIR / "run").read_text().strip() == "1"  # KSM_START_HOST switched it on
    assert ksm_manager.health()["ksm"]["enabled"] is True
    desktops: list[Desktop] = list(
        await asyncio.gather(*(ksm_manager.create(f"ksm-{i}") for i in range(2)))
    )
    pids = [pid for d in desktops for pid in live_pids_of_uid(d.user.uid)]
    assert pids and all(merge_any(pid) for pid in pids)  # every session program opted in
    assert not any(map(randomised, pids))  # KSM_DISABLE_ASLR
    assert ksm_manager.health()["ksm"]["aslr_disabled"] is True

    # Two desktops showing the same background: their framebuffers alone are identical.
    await poll_until(
        lambda: sum(map(merging_pages, pids)) > 0 and counters()["pages_sharing"] > 0,
        timeout=120,
        what="the kernel to merge pages",
    )
    health = ksm_manager.health()["ksm"]
    assert health["pages_sharing"] > 0 and health["saved_mib"] > 0
    assert health["pages_to_scan"] == 5000  # ksmd's pace as the host_ksm fixture set it
    await asyncio.gather(*(ksm_manager.destroy(d.session_id) for d in desktops))


async def test_with_ksm_off_no_session_process_is_offered(
    host_ksm: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with running_desktop_manager(
        tmp_path_factory,
        EventLog(),
        base=445,
        user_prefix="cu-dn",
        ksm=False,
        ksm_disable_aslr=True,
    ) as manager:
        desktop = await manager.create("no-ksm")
        pids = live_pids_of_uid(desktop.user.uid)
        assert pids and not any(merge_any(pid) for pid in pids)
        assert all(map(randomised, pids))  # KSM_DISABLE_ASLR applies to merged programs only
        health = manager.health()["ksm"]
        assert health["enabled"] is False and health["aslr_disabled"] is False


@pytest.mark.parametrize("fixed_layout", [False, True])
def test_merged_programs_keep_aslr_unless_told(host_ksm: None, fixed_layout: bool) -> None:
    ksm = SessionKsm(enabled=True, start_host=True, fixed_layout=fixed_layout)
    ksm.setup()
    proc = subprocess.Popen(["sleep", "30"], preexec_fn=ksm.preexec())
    try:
        assert merge_any(proc.pid)
        assert randomised(proc.pid) is not fixed_layout
    finally:
        proc.kill()
        proc.wait()
