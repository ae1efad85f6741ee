"""Fixtures for the agent's tool tests: real session desktops, as the service runs them.

The tools drive a `computer_use.desktops.Desktop` made by a DesktopManager: the session's own
user, its mount namespace (HOME is the session's /home/user overlay, /tmp is private), its
cgroup and network rules, a supervised Xvfb with jwm. A manager's desktops all have its screen
size, so there is one manager per size (1280x800 and 1920x1080), each started once for the
whole run with one desktop. The `desktop` fixtures hand that desktop to each test and then
delete whatever the test left in HOME and /tmp, so no test sees another's files.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from computer_use.agent.tools import SessionTools
from computer_use.desktops import Desktop
from tests.desktop_fixtures import EventLog, in_session, running_desktop_manager

# (screen size, display base, user prefix): ranges no other test uses (these desktops live for
# the whole run, next to every other module's servers and managers)
SCREEN_800 = ((1280, 800), 1100, "cu-an")
SCREEN_1080 = ((1920, 1080), 1110, "cu-af")

# Every entry directly in HOME and /tmp, NUL-separated.
LIST_ENTRIES = 'find "$HOME" /tmp -mindepth 1 -maxdepth 1 -print0'


class SharedDesktop:
    """A session desktop shared by many tests, and the entries its HOME and /tmp started with."""

    def __init__(self, desktop: Desktop, entries: set[bytes]) -> None:
        self.desktop = desktop
        self.entries = entries

    @classmethod
    async def of(cls, desktop: Desktop) -> SharedDesktop:
        return cls(desktop, set((await in_session(desktop, LIST_ENTRIES)).split(b"\0")))

    async def reset(self) -> None:
        """Remove what a test added to HOME and /tmp (as the session's user, in its sandbox)."""
        now = set((await in_session(self.desktop, LIST_ENTRIES)).split(b"\0"))
        added = sorted(p.decode() for p in now - self.entries)
        if added:
            await in_session(self.desktop, 'rm -rf -- "$@"', *added)


@contextlib.asynccontextmanager
async def _shared_desktop(
    tmp_path_factory: pytest.TempPathFactory, screen: tuple[tuple[int, int], int, str]
) -> AsyncIterator[SharedDesktop]:
    size, base, prefix = screen
    async with running_desktop_manager(
        tmp_path_factory, EventLog(), size=size, base=base, max_displays=1, user_prefix=prefix
    ) as manager:
        yield await SharedDesktop.of(await manager.create("agent", browser=False))


@pytest.fixture(scope="session")
async def shared_desktop(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SharedDesktop]:
    async with _shared_desktop(tmp_path_factory, SCREEN_800) as shared:
        yield shared


@pytest.fixture(scope="session")
async def shared_desktop_1080(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SharedDesktop]:
    async with _shared_desktop(tmp_path_factory, SCREEN_1080) as shared:
        yield shared


@pytest.fixture
async def desktop(shared_desktop: SharedDesktop) -> AsyncIterator[Desktop]:
    """The 1280x800 session desktop; HOME and /tmp are as it started after the test."""
    yield shared_desktop.desktop
    await shared_desktop.reset()


@pytest.fixture
async def desktop_1080(shared_desktop_1080: SharedDesktop) -> AsyncIterator[Desktop]:
    """The 1920x1080 session desktop (shown to the model at 1429x804), reset like `desktop`."""
    yield shared_desktop_1080.desktop
    await shared_desktop_1080.reset()


@pytest.fixture
async def tools(desktop: Desktop) -> AsyncIterator[SessionTools]:
    """The session's tools as the service makes them (HOME /home/user), with short timeouts."""
    session_tools = SessionTools(desktop, bash_timeout=5.0, settle_timeout=0.3)
    yield session_tools
    await session_tools.aclose()
