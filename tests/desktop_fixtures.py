"""Real session desktops for tests: a DesktopManager on a test-only display range and test-only
users, its forced clean-up, and a shell inside a session (tests/desktops and tests/agent).

Every manager here uses its own display range and user prefix (moved by `CU_TEST_SLOT`,
tests/slots.py), so it never touches a developer's X server, a running service's desktops or
another suite's. Everything a manager mounts under its data directory is force-cleaned
(unmounted, loop devices detached, deleted) even when a test fails halfway.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from computer_use.desktops import Desktop, DesktopManager
from computer_use.desktops.mounts import loop_devices, read_mounts
from computer_use.desktops.supervisor import EventCallback
from tests import slots

FS_QUOTA_MB = 20
DESKTOP_SIZE = (1024, 768)
DESKTOP_BASE = 400
DESKTOP_USER_PREFIX = "cu-dt"
SESSION_COMMAND_TIMEOUT = 15.0


def fs_kill_users(names: tuple[str, ...]) -> None:
    """Synchronous last resort: a user's processes pin their namespace's mounts."""
    for name in names:
        subprocess.run(
            ["setpriv", f"--reuid={name}", f"--regid={name}", "--clear-groups", "kill", "-9", "-1"],
            check=False,
            capture_output=True,
            timeout=10,
        )


def fs_force_cleanup(data_dir: Path, *, users: tuple[str, ...] = ()) -> None:
    """Unmount everything under `data_dir`, detach its loop devices, delete it; first kill
    the processes of `users` (only those: other suites may be using theirs right now)."""
    data_dir = data_dir.resolve()
    fs_kill_users(users)
    inside = [
        m.mount_point
        for m in read_mounts()
        if m.mount_point == data_dir or data_dir in m.mount_point.parents
    ]
    for mount_point in sorted(inside, key=lambda p: len(p.parts), reverse=True):
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False, timeout=10)
    for device, backing in loop_devices():
        if data_dir in backing.parents:
            subprocess.run(["losetup", "--detach", device], check=False, timeout=10)
    shutil.rmtree(data_dir, ignore_errors=True)


@dataclass
class EventLog:
    """Records DesktopManager on_event calls; tests wait on them with a deadline."""

    events: list[tuple[str, str, str, str]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, session_id: str, component: str, kind: str, detail: str) -> None:
        self.events.append((session_id, component, kind, detail))
        self._changed.set()

    async def wait_for(
        self, session_id: str, component: str, kind: str, *, since: int = 0, within: float = 10
    ) -> tuple[str, str, str, str]:
        async with asyncio.timeout(within):
            while True:
                for event in self.events[since:]:
                    if event[:3] == (session_id, component, kind):
                        return event
                self._changed.clear()
                await self._changed.wait()


def desktop_manager(
    data_dir: Path,
    events: EventCallback,
    *,
    size: tuple[int, int] = DESKTOP_SIZE,
    base: int = DESKTOP_BASE,
    max_displays: int = 4,
    user_prefix: str = DESKTOP_USER_PREFIX,
    restart_limit: int = 5,
    ksm: bool = False,
    ksm_start_host: bool = False,
    ksm_disable_aslr: bool = False,
    warm_pool_size: int = 0,
    warm_pool_browser: bool = False,
    memory_reclaim_interval: float = 60.0,
) -> DesktopManager:
    """A manager with isolation on, on display range `base` and users `user_prefix`NN, both
    moved to this run's CU_TEST_SLOT."""
    return DesktopManager(
        data_dir,
        width=size[0],
        height=size[1],
        max_displays=max_displays,
        isolation_enabled=True,
        disk_quota_mb=FS_QUOTA_MB,
        display_base=slots.display(base),
        user_prefix=slots.prefix(user_prefix),
        on_event=events,
        restart_limit=restart_limit,
        ksm=ksm,
        ksm_start_host=ksm_start_host,
        ksm_disable_aslr=ksm_disable_aslr,
        warm_pool_size=warm_pool_size,
        warm_pool_browser=warm_pool_browser,
        memory_reclaim_interval=memory_reclaim_interval,
    )


@contextlib.asynccontextmanager
async def running_desktop_manager(
    tmp_path_factory: pytest.TempPathFactory,
    events: EventCallback,
    **options: Any,
) -> AsyncIterator[DesktopManager]:
    """A started `desktop_manager(...)` in a fresh data dir; shut down and force-cleaned on
    exit. Skips the test when not root (it creates users and mounts homes)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates users, mounts homes")
    data_dir = tmp_path_factory.mktemp("desktop-data")
    manager = desktop_manager(data_dir, events, **options)
    try:
        await manager.start()
        yield manager
    finally:
        await manager.shutdown()
        fs_force_cleanup(data_dir)


async def desktop_reap(proc: asyncio.subprocess.Process) -> None:
    """Kills a process (group) the test started in a desktop, and reaps it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
    await proc.wait()


async def in_session(desktop: Desktop, script: str, *args: str, input: bytes = b"") -> bytes:
    """`sh -c script sh args...` as the session's user, inside its sandbox (mount namespace,
    cgroup, HOME): its stdout. Fails the test on a non-zero exit."""
    result = await desktop.run(
        ["sh", "-c", script, "sh", *args], timeout=SESSION_COMMAND_TIMEOUT, input=input
    )
    assert result.returncode == 0, (script, args, result)
    return result.stdout


async def session_write(desktop: Desktop, path: str, data: str | bytes) -> None:
    """Writes a file of the session (making its directory) as one of its programs would."""
    raw = data.encode() if isinstance(data, str) else data
    await in_session(desktop, 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"', path, input=raw)


async def session_read(desktop: Desktop, path: str) -> str:
    """A text file as the session sees it (its HOME and /tmp are its own)."""
    return (await in_session(desktop, 'cat -- "$1"', path)).decode()
