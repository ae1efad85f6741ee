"""Fixtures for the filesystem-isolation and launcher tests: real users, mounts and processes.

Test users are `cu-fs01..03`, never the production `cu-s` pool, so these tests cannot kill a
running server's desktops. Every data directory is force-cleaned (unmounted, loop devices
detached, deleted) by its fixture even when a test fails halfway.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from computer_use.desktops.filesystem import HomeManager
from computer_use.desktops.launcher import SessionSandbox
from computer_use.desktops.mounts import loop_devices, read_mounts
from computer_use.desktops.overlay import IsolationMode
from computer_use.desktops.users import SessionUser, UserPool
from tests import slots

FS_USER_PREFIX = slots.prefix("cu-fs")
FS_USER_COUNT = 3
FS_QUOTA_MB = 20

MakeSandbox = Callable[[str, SessionUser | None, Path], Awaitable[SessionSandbox]]
MakeHomes = Callable[..., Awaitable[HomeManager]]


FS_TEST_USERS = tuple(f"{FS_USER_PREFIX}{slot:02d}" for slot in range(1, FS_USER_COUNT + 1))


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


@pytest.fixture(scope="session")
async def fs_user_pool() -> UserPool:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates users, mounts filesystems")
    pool = UserPool(FS_USER_COUNT, prefix=FS_USER_PREFIX)
    await pool.ensure()
    return pool


@pytest.fixture(scope="session")
def fs_users(fs_user_pool: UserPool) -> list[SessionUser]:
    return fs_user_pool.all_users()


@pytest.fixture(scope="module")
def fs_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data_dir = tmp_path_factory.mktemp("fs-data")
    try:
        yield data_dir
    finally:
        fs_force_cleanup(data_dir, users=FS_TEST_USERS)


@pytest.fixture(scope="module")
async def fs_homes(fs_data_dir: Path, fs_users: list[SessionUser]) -> HomeManager:
    """The production choice (kernel overlay here), shared by a module's tests."""
    homes = HomeManager(fs_data_dir, enabled=True, quota_mb=FS_QUOTA_MB)
    await homes.setup()
    return homes


@pytest.fixture
async def fs_make_homes(
    tmp_path_factory: pytest.TempPathFactory, fs_users: list[SessionUser]
) -> AsyncIterator[MakeHomes]:
    """HomeManagers in fresh data dirs, e.g. with a forced mode; all cleaned up afterwards."""
    made: list[Path] = []

    async def make(
        *,
        force_mode: IsolationMode | None = None,
        enabled: bool = True,
        data_dir: Path | None = None,
    ) -> HomeManager:
        if data_dir is None:
            data_dir = tmp_path_factory.mktemp("fs-homes")
            made.append(data_dir)
        homes = HomeManager(data_dir, enabled=enabled, quota_mb=FS_QUOTA_MB, force_mode=force_mode)
        await homes.setup()
        return homes

    try:
        yield make
    finally:
        for data_dir in made:
            fs_force_cleanup(data_dir, users=FS_TEST_USERS)


@pytest.fixture
async def fs_sandboxes() -> AsyncIterator[MakeSandbox]:
    """Creates sandboxes and closes every one of them after the test."""
    created: list[SessionSandbox] = []

    async def make(session_id: str, user: SessionUser | None, home: Path) -> SessionSandbox:
        sandbox = await SessionSandbox.create(session_id=session_id, user=user, home=home)
        created.append(sandbox)
        return sandbox

    try:
        yield make
    finally:
        for sandbox in created:
            await sandbox.close()


# -- desktops (display side): DesktopManager fixtures ---------------------------------------
# Desktop tests use their own display range (400+) and users (cu-dt, cu-dr, cu-dc), so they can
# never touch a developer's X server or a running service's desktops.

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from PIL import Image  # noqa: E402

from computer_use.desktops import Desktop, DesktopManager  # noqa: E402

DESKTOP_SIZE = (1024, 768)
DESKTOP_BASE = 400
DESKTOP_USER_PREFIX = "cu-dt"


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
    events: EventLog,
    *,
    base: int = DESKTOP_BASE,
    max_displays: int = 4,
    user_prefix: str = DESKTOP_USER_PREFIX,
    restart_limit: int = 5,
    ksm: bool = False,
    ksm_start_host: bool = False,
    warm_pool_size: int = 0,
    warm_pool_browser: bool = False,
) -> DesktopManager:
    return DesktopManager(
        data_dir,
        width=DESKTOP_SIZE[0],
        height=DESKTOP_SIZE[1],
        max_displays=max_displays,
        isolation_enabled=True,
        disk_quota_mb=FS_QUOTA_MB,
        display_base=slots.display(base),
        user_prefix=slots.prefix(user_prefix),
        on_event=events,
        restart_limit=restart_limit,
        ksm=ksm,
        ksm_start_host=ksm_start_host,
        warm_pool_size=warm_pool_size,
        warm_pool_browser=warm_pool_browser,
    )


@pytest.fixture(scope="module")
def desktop_events() -> EventLog:
    return EventLog()


@pytest.fixture(scope="module")
async def desktop_manager_shared(
    tmp_path_factory: pytest.TempPathFactory, desktop_events: EventLog
) -> AsyncIterator[DesktopManager]:
    """One manager per test module; its desktops are shared by the module's tests."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates users, mounts homes")
    data_dir = tmp_path_factory.mktemp("desktop-data")
    manager = desktop_manager(data_dir, desktop_events)
    try:
        await manager.start()
        yield manager
    finally:
        await manager.shutdown()
        fs_force_cleanup(data_dir)


@pytest.fixture(scope="module")
async def desktop_plain(desktop_manager_shared: DesktopManager) -> Desktop:
    """A desktop without a browser: a static screen (jwm's background and tray)."""
    return await desktop_manager_shared.create("plain", browser=False)


def desktop_image(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image.convert("RGB")


async def desktop_wait_for_pixel(
    desktop: Desktop,
    xy: tuple[int, int],
    colour: Sequence[int],
    *,
    within: float = 15,
) -> None:
    """Until the screen pixel at `xy` has `colour` (e.g. a window we started is mapped)."""
    x, y = xy
    async with asyncio.timeout(within):
        while True:
            pixel = desktop_image(await desktop.zoom(x, y, x + 1, y + 1)).getpixel((0, 0))
            if pixel == tuple(colour):
                return
            await asyncio.sleep(0.05)


async def desktop_reap(proc: asyncio.subprocess.Process) -> None:
    """Kills a process (group) the test started in a desktop, and reaps it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
    await proc.wait()
