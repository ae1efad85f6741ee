"""Fixtures for the agent: real Xvfb desktops (one per screen size, for the whole run)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from computer_use.agent.tools import SessionTools
from tests.agent.xvfb_desktop import Xvfb, XvfbDesktop


@pytest.fixture(scope="session")
def xvfb() -> Iterator[Xvfb]:
    server = Xvfb(1280, 800)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def xvfb_1080() -> Iterator[Xvfb]:
    server = Xvfb(1920, 1080)
    yield server
    server.stop()


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def desktop(xvfb: Xvfb, tmp_path: Path) -> XvfbDesktop:
    return XvfbDesktop(xvfb, _home(tmp_path))


@pytest.fixture
def desktop_1080(xvfb_1080: Xvfb, tmp_path: Path) -> XvfbDesktop:
    return XvfbDesktop(xvfb_1080, _home(tmp_path))


@pytest.fixture
async def tools(desktop: XvfbDesktop) -> AsyncIterator[SessionTools]:
    session_tools = SessionTools(
        desktop, home=str(desktop.home), bash_timeout=5.0, settle_timeout=0.3
    )
    yield session_tools
    await session_tools.aclose()
