"""DesktopManager with real Xvfb, jwm, x11vnc and Firefox: allocation, supervision, teardown."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from computer_use.desktop_port import DesktopPort
from computer_use.desktops import (
    Desktop,
    DesktopCapacityError,
    DesktopExists,
    DesktopManager,
    DesktopNotFound,
    xalias,
)
from computer_use.desktops.launcher import live_pids_of_uid
from computer_use.desktops.mounts import read_mounts
from computer_use.desktops.shm import segments
from computer_use.desktops.slots import SlotAllocator, display_in_use, lock_file, socket_file
from computer_use.desktops.sockets import accepts_connections
from tests.desktop_fixtures import (
    DESKTOP_SIZE,
    EventLog,
    desktop_manager,
    desktop_reap,
    fs_force_cleanup,
)
from tests.desktops.conftest import desktop_image, desktop_viewed, desktop_wait_for_pixel

MAGENTA = (255, 0, 255)


async def test_readiness_is_ok_once_started_and_not_before(
    desktop_manager_shared: DesktopManager, tmp_path: Path, desktop_events: EventLog
) -> None:
    assert desktop_manager_shared.readiness() == "ok"
    never_started = desktop_manager(tmp_path, desktop_events, base=900, user_prefix="cu-rd")
    assert never_started.readiness() == "unavailable: not started"


def test_slots_map_to_displays_and_ports_and_prefer_the_remembered_one() -> None:
    taken_elsewhere = {3}
    slots = SlotAllocator(4, display_base=100, in_use=lambda s: s.index in taken_elsewhere)

    first = slots.allocate("a")
    preferred = slots.allocate("b", prefer=4)
    skipped = slots.allocate("c", prefer=3)  # held by something else: next free instead

    assert (first.index, first.display) == (1, ":101")
    assert preferred.index == 4 and skipped.index == 2
    with pytest.raises(DesktopCapacityError) as caught:
        slots.allocate("d")
    assert caught.value.retry_after > 0
    slots.release(first)
    assert slots.allocate("d").index == 1


@pytest.fixture(scope="module")
async def pair(desktop_manager_shared: DesktopManager) -> tuple[Desktop, Desktop]:
    """Two desktops created at the same time; the second one runs Firefox."""
    a, b = await asyncio.gather(
        desktop_manager_shared.create("pair-a", browser=False),
        desktop_manager_shared.create("pair-b", browser=True),
    )
    return a, b


def _pid(desktop: Desktop, component: str) -> int:
    proc = desktop.supervisor.components[component].proc
    assert proc is not None
    return proc.pid


async def test_concurrent_creates_get_distinct_displays_and_ports(
    pair: tuple[Desktop, Desktop],
) -> None:
    a, b = pair
    port: DesktopPort = a  # Desktop satisfies the agent's interface (checked by mypy)

    assert (port.width, port.height) == DESKTOP_SIZE
    assert a.display != b.display and a.vnc_socket != b.vnc_socket and a.slot != b.slot
    for desktop in pair:
        assert desktop.component_status()["xvfb"] == "running"
        assert desktop_image(await desktop.screenshot()).size == DESKTOP_SIZE
        # x11vnc runs while someone watches (viewing.py)
        assert desktop.component_status()["vnc"] == "stopped"
        async with desktop_viewed(desktop) as socket:
            assert socket == desktop.vnc_socket and accepts_connections(str(socket))
    assert a.component_status()["browser"] == "stopped"  # starts on first use
    assert b.component_status()["browser"] in ("starting", "running")


async def test_each_desktop_shows_only_its_own_windows(pair: tuple[Desktop, Desktop]) -> None:
    a, b = pair
    term = await a.spawn(["xterm", "-geometry", "30x8+300+300", "-bg", "#ff00ff"])
    try:
        await desktop_wait_for_pixel(a, (400, 380), MAGENTA)

        assert desktop_image(await b.screenshot()).getpixel((400, 380)) != MAGENTA
    finally:
        await desktop_reap(term)


async def test_run_executes_as_the_session_user_on_its_display(
    pair: tuple[Desktop, Desktop],
) -> None:
    a, _ = pair

    result = await a.run(
        ["sh", "-c", 'id -un; echo "$HOME $DISPLAY"; xdpyinfo | head -1'], timeout=10
    )

    lines = result.stdout.decode().splitlines()
    assert result.returncode == 0, result
    assert lines[0] == a.user.name
    # Its programs reach the display through the alias that keeps them off the host-wide
    # abstract name (xalias.py); the service itself uses the display's own number.
    assert lines[1] == f"/home/user {a.spec.client_display}"
    assert a.spec.client_display == f":{xalias.alias_number(a.slot_info.display_number)}"
    assert lines[2].startswith("name of display")


async def test_killed_xvfb_is_restarted_with_its_clients_and_the_other_desktop_keeps_working(
    pair: tuple[Desktop, Desktop], desktop_events: EventLog
) -> None:
    a, b = pair
    watched = await a.open_vnc()  # a viewer: x11vnc is among the clients to bring back
    since = len(desktop_events.events)
    killed_at = time.monotonic()
    os.kill(_pid(a, "xvfb"), signal.SIGKILL)

    restarted = asyncio.create_task(
        desktop_events.wait_for(a.session_id, "xvfb", "restarted", since=since)
    )
    other_shots = 0
    while not restarted.done():  # the neighbour's screenshots never fail meanwhile
        desktop_image(await b.screenshot())
        other_shots += 1
    await restarted

    assert time.monotonic() - killed_at < 5
    assert other_shots > 0
    exited = await desktop_events.wait_for(a.session_id, "xvfb", "exited", since=since)
    assert "SIGKILL" in exited[3]
    # Its clients are back; the browser, never used, is still not started.
    assert a.component_status() == {
        "xvfb": "running", "wm": "running", "vnc": "running", "browser": "stopped"
    }  # fmt: skip
    assert desktop_image(await a.screenshot()).size == DESKTOP_SIZE
    assert await a.cursor_position() is not None
    assert accepts_connections(str(watched))
    a.close_vnc()


@pytest.mark.parametrize("component", ["vnc", "wm", "browser"])
async def test_killed_component_is_detected_and_restarted(
    pair: tuple[Desktop, Desktop], desktop_events: EventLog, component: str
) -> None:
    desktop = pair[1] if component == "browser" else pair[0]
    async with desktop_viewed(desktop):  # x11vnc runs while watched
        old_pid = _pid(desktop, component)
        since = len(desktop_events.events)
        killed_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)

        await desktop_events.wait_for(desktop.session_id, component, "restarted", since=since)

        assert time.monotonic() - killed_at < 5
        assert _pid(desktop, component) != old_pid
        assert desktop.component_status()[component] == "running"
        if component == "vnc":
            assert accepts_connections(str(desktop.vnc_socket))


async def test_firefox_window_comes_up_without_glx(pair: tuple[Desktop, Desktop]) -> None:
    _, b = pair

    await desktop_wait_for_pixel(b, (512, 400), (255, 255, 255), within=45)  # about:blank

    assert b.component_status()["browser"] == "running"


async def test_destroy_leaves_no_process_lock_socket_port_or_file(
    desktop_manager_shared: DesktopManager,
) -> None:
    desktop = await desktop_manager_shared.create("doomed", browser=False)
    number, vnc, uid = int(desktop.display[1:]), desktop.vnc_socket, desktop.user.uid
    runtime_dir = desktop.spec.runtime_dir
    await desktop.open_vnc()  # a viewer still watching when the session ends
    assert live_pids_of_uid(uid) and display_in_use(number) and accepts_connections(str(vnc))
    os.kill(_pid(desktop, "vnc"), signal.SIGKILL)  # leaks x11vnc's SysV shm, unless swept

    await desktop_manager_shared.destroy("doomed")

    assert live_pids_of_uid(uid) == []
    assert [s for s in segments() if s.uid == uid] == []  # no SysV shm left behind
    assert not lock_file(number).exists() and not socket_file(number).exists()
    assert not display_in_use(number) and not vnc.exists()
    assert not runtime_dir.exists()
    assert not desktop_manager_shared.homes.has_files("doomed")
    assert desktop_manager_shared.get("doomed") is None
    with pytest.raises(DesktopNotFound):
        await desktop_manager_shared.destroy("doomed")


async def test_a_session_cannot_have_two_desktops(
    desktop_manager_shared: DesktopManager, pair: tuple[Desktop, Desktop]
) -> None:
    with pytest.raises(DesktopExists):
        await desktop_manager_shared.create(pair[0].session_id)


async def test_health_reports_isolation_launcher_and_capacity(
    desktop_manager_shared: DesktopManager, pair: tuple[Desktop, Desktop]
) -> None:
    health = desktop_manager_shared.health()

    assert health["isolation"] == "overlay" and health["quota_enforced"] is True
    assert health["launcher"] == "namespace"
    assert health["desktops_running"] >= 2
    assert health["capacity"] == 4
    assert health["free_slots"] == 4 - health["desktops_running"]


# -- managers of their own: restart after shutdown, capacity, restart budget ---------------


@pytest.fixture
async def data_dir(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Path]:
    path = tmp_path_factory.mktemp("desktop-own")
    try:
        yield path
    finally:
        fs_force_cleanup(path)


async def test_shutdown_then_restore_brings_the_desktop_back_with_its_files_and_slot(
    data_dir: Path,
) -> None:
    events = EventLog()
    first = desktop_manager(data_dir, events, base=420, max_displays=2, user_prefix="cu-dr")
    await first.start()
    second: DesktopManager | None = None
    try:
        await first.create("dropped", browser=False)
        keeper = await first.create("keeper", browser=False)
        written = await keeper.run(["sh", "-c", "echo kept > ~/Desktop/note.txt"], timeout=10)
        assert written.returncode == 0, written
        old_slot, uids = keeper.slot, [d.user.uid for d in (keeper, first.get("dropped")) if d]

        await first.shutdown()
        assert all(live_pids_of_uid(uid) == [] for uid in uids)
        assert not keeper.vnc_socket.exists()
        sessions = first.homes.sessions_dir
        assert [m for m in read_mounts() if sessions in m.mount_point.parents] == []

        second = desktop_manager(data_dir, events, base=420, max_displays=2, user_prefix="cu-dr")
        await second.start(keep={"keeper"})
        assert not second.homes.has_files("dropped")
        restored = await second.restore("keeper", browser=False)

        assert restored.slot == old_slot == 2  # slot 1 is free, but the old one is preferred
        read = await restored.run(["cat", "/home/user/Desktop/note.txt"], timeout=10)
        assert read.stdout == b"kept\n"
        assert desktop_image(await restored.screenshot()).size == DESKTOP_SIZE
    finally:
        await (second if second is not None else first).shutdown()


async def test_capacity_error_at_max_displays_carries_retry_after(data_dir: Path) -> None:
    manager = desktop_manager(data_dir, EventLog(), base=440, max_displays=1, user_prefix="cu-dc")
    await manager.start()
    try:
        await manager.create("only", browser=False)

        with pytest.raises(DesktopCapacityError) as caught:
            await manager.create("one-too-many", browser=False)

        assert caught.value.retry_after > 0
        assert manager.get("one-too-many") is None
        await manager.destroy("only")
        await manager.create("one-too-many", browser=False)  # the slot is free again
    finally:
        await manager.shutdown()


async def test_component_dying_past_its_restart_budget_fails_the_desktop(data_dir: Path) -> None:
    events = EventLog()
    manager = desktop_manager(
        data_dir, events, base=440, max_displays=1, user_prefix="cu-dc", restart_limit=1
    )
    await manager.start()
    try:
        desktop = await manager.create("flaky", browser=False)
        os.kill(_pid(desktop, "wm"), signal.SIGKILL)
        await events.wait_for("flaky", "wm", "restarted")

        os.kill(_pid(desktop, "wm"), signal.SIGKILL)
        failed = await events.wait_for("flaky", "wm", "failed")

        assert "restarted 1 times" in failed[3]
        assert desktop.failed and desktop.component_status()["wm"] == "failed"
        assert manager.health()["desktops_failed"] == ["flaky"]
        assert desktop_image(await desktop.screenshot()).size == DESKTOP_SIZE  # still usable
    finally:
        await manager.shutdown()
