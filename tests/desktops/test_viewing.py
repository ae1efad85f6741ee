"""A session's x11vnc runs while someone watches (desktops/viewing.py): started for the first
viewer, shared by the next, stopped after the last has been gone for the linger; a failed
start refuses the viewer, never the desktop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from computer_use.desktops import Desktop, DesktopManager
from computer_use.desktops.errors import DesktopError
from computer_use.desktops.shm import segments
from computer_use.desktops.sockets import accepts_connections, listening_inodes, socket_inodes_of
from tests.desktop_fixtures import EventLog, desktop_reap
from tests.helpers import pids_named, wait_for_async


def x11vnc_pids(desktop: Desktop) -> set[int]:
    return pids_named(desktop.user.uid, "x11vnc")


def greeting(path: Path) -> bytes:
    with socket.socket(socket.AF_UNIX) as viewer:
        viewer.settimeout(10)
        viewer.connect(str(path))
        return viewer.recv(12)


@pytest.fixture
async def desktop(desktop_manager_shared: DesktopManager) -> AsyncIterator[Desktop]:
    created = await desktop_manager_shared.create("viewing", browser=False)
    try:
        yield created
    finally:
        await desktop_manager_shared.destroy("viewing")


async def test_x11vnc_starts_for_the_first_viewer_and_stops_after_the_last(
    desktop: Desktop, desktop_manager_shared: DesktopManager
) -> None:
    desktop.vnc.linger = 0.5
    assert x11vnc_pids(desktop) == set() and desktop.vnc.state == "down"
    assert not accepts_connections(str(desktop.vnc_socket))

    path = await desktop.open_vnc()
    first = x11vnc_pids(desktop)
    second_path = await desktop.open_vnc()  # a second viewer shares it

    assert path == second_path == desktop.vnc_socket
    assert len(first) == 1 and x11vnc_pids(desktop) == first
    assert greeting(path) == b"RFB 003.008\n"
    health = desktop_manager_shared.health()["vnc"]
    assert health["servers_up"] >= 1 and health["viewers"] >= 2
    desktop.close_vnc()
    assert desktop.vnc.viewers == 1 and desktop.component_status()["vnc"] == "running"

    desktop.close_vnc()  # the last viewer: stopped once the linger has passed
    await wait_for_async(
        lambda: asyncio.to_thread(lambda: not x11vnc_pids(desktop)), timeout=15, what="x11vnc gone"
    )
    assert desktop.vnc.state == "down" and desktop.component_status()["vnc"] == "stopped"
    assert [s for s in segments() if s.uid == desktop.user.uid] == []  # its SysV shm too
    assert not desktop.failed

    await desktop.open_vnc()  # and comes back for the next viewer
    assert greeting(desktop.vnc_socket) == b"RFB 003.008\n"
    assert x11vnc_pids(desktop) and x11vnc_pids(desktop) != first
    desktop.close_vnc()


async def test_a_viewer_back_within_the_linger_finds_the_same_x11vnc(desktop: Desktop) -> None:
    desktop.vnc.linger = 60
    await desktop.open_vnc()
    running = x11vnc_pids(desktop)
    desktop.close_vnc()  # a page reload: the viewer goes and comes back

    await desktop.open_vnc()

    assert x11vnc_pids(desktop) == running and len(running) == 1
    desktop.close_vnc()


async def test_a_failed_x11vnc_start_refuses_the_viewer_not_the_desktop(
    desktop: Desktop, desktop_events: EventLog
) -> None:
    since = len(desktop_events.events)
    component = desktop.supervisor.components["vnc"]
    argv = component.argv
    component.argv = ["/bin/false"]  # x11vnc that exits at once
    try:
        with pytest.raises(DesktopError, match="vnc"):
            await desktop.open_vnc()
    finally:
        component.argv = argv

    assert desktop.vnc.viewers == 0 and not desktop.failed
    # The failed start is the viewer's error only: not a crash the supervisor restarts too.
    assert [e for e in desktop_events.events[since:] if e[0] == desktop.session_id] == []
    assert desktop.component_status()["vnc"] == "failed"
    assert await desktop.screenshot()  # the agent's desktop is untouched
    await desktop.open_vnc()  # the next viewer tries again
    assert greeting(desktop.vnc_socket) == b"RFB 003.008\n"
    desktop.close_vnc()


async def test_a_display_server_restart_does_not_start_an_unwatched_x11vnc(
    desktop: Desktop, desktop_events: EventLog
) -> None:
    since = len(desktop_events.events)
    xvfb = desktop.supervisor.components["xvfb"].proc
    assert xvfb is not None
    os.kill(xvfb.pid, signal.SIGKILL)

    await desktop_events.wait_for(desktop.session_id, "xvfb", "restarted", since=since)

    assert desktop.component_status()["wm"] == "running"
    assert desktop.component_status()["vnc"] == "stopped" and x11vnc_pids(desktop) == set()


PLANT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"RFB 000.000\\n")  # a fake desktop, to read the viewer's keys
"""


async def test_a_listener_the_session_plants_on_its_vnc_socket_never_gets_the_viewer(
    desktop: Desktop,
) -> None:
    # Before anyone watches, the agent's bash binds the socket path x11vnc will listen on
    # (the session's runtime directory is its own).
    planted = await desktop.spawn(["/usr/bin/python3", "-c", PLANT, str(desktop.vnc_socket)])
    try:
        assert planted.stdout is not None
        async with asyncio.timeout(10):
            assert (await planted.stdout.readline()).strip() == b"ready"

        await desktop.open_vnc()  # the squatter is killed, x11vnc listens there itself
        try:
            assert planted.returncode is not None or await planted.wait() == -9
            vnc = desktop.supervisor.components["vnc"].proc
            assert vnc is not None
            assert listening_inodes(str(desktop.vnc_socket)) <= socket_inodes_of(vnc.pid)
            assert greeting(desktop.vnc_socket) == b"RFB 003.008\n"
        finally:
            desktop.close_vnc()
    finally:
        await desktop_reap(planted)
