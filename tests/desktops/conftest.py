"""Fixtures for the filesystem-isolation and launcher tests: real users, mounts and processes.

Test users are `cu-fs01..03`, never the production `cu-s` pool, so these tests cannot kill a
running server's desktops. Every data directory is force-cleaned (unmounted, loop devices
detached, deleted) by its fixture even when a test fails halfway. The DesktopManager helpers
shared with the agent's tests live in tests/desktop_fixtures.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import pytest
from PIL import Image

from computer_use.desktops import Desktop, DesktopManager
from computer_use.desktops.filesystem import HomeManager
from computer_use.desktops.launcher import SessionSandbox
from computer_use.desktops.overlay import IsolationMode
from computer_use.desktops.users import SessionUser, UserPool
from tests import slots
from tests.desktop_fixtures import FS_QUOTA_MB, EventLog, fs_force_cleanup, running_desktop_manager

FS_USER_PREFIX = slots.prefix("cu-fs")
FS_USER_COUNT = 3

MakeSandbox = Callable[[str, SessionUser | None, Path], Awaitable[SessionSandbox]]
MakeHomes = Callable[..., Awaitable[HomeManager]]


FS_TEST_USERS = tuple(f"{FS_USER_PREFIX}{slot:02d}" for slot in range(1, FS_USER_COUNT + 1))


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


@pytest.fixture(scope="module")
def desktop_events() -> EventLog:
    return EventLog()


@pytest.fixture(scope="module")
async def desktop_manager_shared(
    tmp_path_factory: pytest.TempPathFactory, desktop_events: EventLog
) -> AsyncIterator[DesktopManager]:
    """One manager per test module; its desktops are shared by the module's tests."""
    async with running_desktop_manager(tmp_path_factory, desktop_events) as manager:
        yield manager


@pytest.fixture(scope="module")
async def desktop_plain(desktop_manager_shared: DesktopManager) -> Desktop:
    """A desktop without a browser: a static screen (jwm's background and tray)."""
    return await desktop_manager_shared.create("plain", browser=False)


@contextlib.asynccontextmanager
async def desktop_viewed(desktop: Desktop) -> AsyncIterator[Path]:
    """A viewer on the desktop while the block runs, as the VNC proxy holds one: x11vnc
    runs (viewing.py); its socket is yielded."""
    socket = await desktop.open_vnc()
    try:
        yield socket
    finally:
        desktop.close_vnc()


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
