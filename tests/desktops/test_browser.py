"""Firefox starts on first use, not with the desktop: on request (the agent runner's), and
from the panel's Firefox button for a person; a closed browser comes back on the next use."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from computer_use.desktops import Desktop, DesktopManager
from computer_use.desktops.display import TRAY_HEIGHT
from computer_use.desktops.filesystem import (
    FIREFOX_PROFILE,
    PROFILE_TEMPLATE,
    SHARED_STARTUP_CACHE,
)
from computer_use.desktops.launcher import poll_until
from computer_use.desktops.overlay import IsolationMode
from computer_use.desktops.startup_cache import IDENTIFIER, NOT_TEMPLATED
from tests.desktop_fixtures import DESKTOP_SIZE
from tests.desktops.conftest import desktop_image
from tests.helpers import pids_named, wait_for, wait_for_async

CENTRE = (DESKTOP_SIZE[0] // 2, DESKTOP_SIZE[1] // 2 + 30)


def browser_on(png: bytes) -> bool:
    """Firefox's page area (near white, light grey until the page paints) covers the centre,
    where the bare desktop shows its dark blue-grey background."""
    pixel = desktop_image(png).getpixel(CENTRE)
    assert isinstance(pixel, tuple)
    return min(pixel) >= 240


def firefox_pids(desktop: Desktop) -> set[int]:
    return pids_named(desktop.user.uid, "firefox-esr")


def state(desktop: Desktop) -> str:
    """The browser's state now (a call: mypy must not narrow it across awaits)."""
    return desktop.browser_state


async def wait_for_state(desktop: Desktop, state: str, *, within: float = 45) -> None:
    await poll_until(lambda: desktop.browser_state == state, timeout=within, what=state)


async def press_panel_firefox(desktop: Desktop) -> None:
    """The tray's first button, clicked the way a person does: jwm acts on a release only
    after it has drawn the button pressed, so the release waits for that."""
    top = DESKTOP_SIZE[1] - TRAY_HEIGHT
    await desktop.move_mouse(20, top + TRAY_HEIGHT // 2)
    before = await desktop.zoom(0, top, 60, DESKTOP_SIZE[1])
    await desktop.mouse_down()
    try:
        async with asyncio.timeout(10):
            while True:
                if await desktop.zoom(0, top, 60, DESKTOP_SIZE[1]) != before:
                    break
                await asyncio.sleep(0.01)
    finally:
        await desktop.mouse_up()


@pytest.fixture
async def lazy(
    desktop_manager_shared: DesktopManager, request: pytest.FixtureRequest
) -> AsyncIterator[Desktop]:
    name = request.node.name[-40:].replace("_", "-")
    desktop = await desktop_manager_shared.create(name)
    yield desktop
    await desktop_manager_shared.destroy(name)


async def test_a_new_desktop_runs_no_browser_until_it_is_requested(lazy: Desktop) -> None:
    assert not desktop_manager_is_eager(lazy)
    assert state(lazy) == "down" and lazy.component_status()["browser"] == "stopped"
    assert not browser_on(await lazy.screenshot())
    assert not firefox_pids(lazy)

    assert lazy.request_browser() is True
    assert lazy.request_browser() is False  # already on its way: one browser, not two
    # The screenshot right after the request waits for the window: it shows the browser.
    shot = await lazy.screenshot()

    assert browser_on(shot)
    assert state(lazy) == "up"
    assert len(firefox_pids(lazy)) >= 1


async def test_the_panels_firefox_button_starts_the_supervised_browser(lazy: Desktop) -> None:
    assert state(lazy) == "down"

    await press_panel_firefox(lazy)
    await wait_for_state(lazy, "up")

    supervised = lazy.supervisor.components["browser"].proc
    assert supervised is not None and supervised.pid in firefox_pids(lazy)
    # The button again (its command, as the session's user): still the one browser.
    button = await lazy.run(["sh", "-c", f"echo open > {lazy.spec.browser_request}"], timeout=10)
    assert button.returncode == 0
    await lazy.screenshot()
    assert lazy.supervisor.components["browser"].proc is supervised
    assert firefox_pids(lazy) and state(lazy) == "up"


async def quit_like_a_person(desktop: Desktop, *, within: float = 60) -> None:
    """Ctrl+Q, the way a person quits Firefox. A window that has just been mapped may not
    take keys yet (on a loaded host its UI is still starting), so the key is pressed again,
    as a person would, until the browser has exited."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        await desktop.key("ctrl+q")
        try:
            await poll_until(
                lambda: desktop.component_status()["browser"] == "exited",
                timeout=5,
                what="exit",
            )
            return
        except TimeoutError:
            if loop.time() >= deadline:
                raise


async def test_a_browser_the_user_closed_comes_back_on_the_next_use(lazy: Desktop) -> None:
    lazy.request_browser()
    await lazy.screenshot()
    first = lazy.supervisor.components["browser"].proc
    assert first is not None and state(lazy) == "up"

    await quit_like_a_person(lazy)
    # Closed, not crashed: it stays closed.
    assert state(lazy) == "down" and not firefox_pids(lazy)

    assert lazy.request_browser() is True
    assert browser_on(await lazy.screenshot())
    second = lazy.supervisor.components["browser"].proc
    assert second is not None and second is not first and state(lazy) == "up"


def mapped_files(pid: int) -> set[str]:
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()  # exited while we looked
    return {line.split()[-1] for line in maps.splitlines()}


def desktop_manager_is_eager(desktop: Desktop) -> bool:
    return desktop.supervisor.components["browser"].autostart


async def test_the_browser_starts_from_the_profile_template_the_desktop_does_not_copy(
    lazy: Desktop, desktop_manager_shared: DesktopManager
) -> None:
    manager = desktop_manager_shared
    # Recorded with the startup cache: a set-up profile, root's, without what must differ
    # between sessions (keys, identifiers, the recording's tabs and window).
    template = manager.homes.base_dir / PROFILE_TEMPLATE
    assert (template / "places.sqlite").stat().st_uid == 0
    assert (template / "extensions.json").exists()
    assert not {entry.name for entry in template.iterdir()} & NOT_TEMPLATED
    assert not IDENTIFIER.search((template / "prefs.js").read_text())
    paths = manager.homes.paths(lazy.session_id)
    profile = paths.home / FIREFOX_PROFILE
    assert not (profile / "prefs.js").exists()  # the profile never ran
    # Creating the desktop did not copy the template into the session's layer.
    upper = paths.upper_and_work(manager.homes.mode)[0]
    if manager.homes.mode is IsolationMode.OVERLAY:
        assert upper.is_dir() and not (upper / PROFILE_TEMPLATE).exists()

    lazy.request_browser()
    assert browser_on(await lazy.screenshot())

    # The profile is the session's own copy, its user's: Firefox kept the template's times
    # (read until whole: Firefox may be rewriting the file as its start goes on).
    created = json.loads((template / "times.json").read_text())["created"]

    def times() -> int:
        return int(json.loads((profile / "times.json").read_text())["created"])

    assert wait_for(times, timeout=10, what="the profile's times.json") == created
    assert (profile / "places.sqlite").stat().st_uid == lazy.user.uid
    assert (profile / "prefs.js").stat().st_uid == lazy.user.uid


async def test_the_browser_maps_the_base_homes_startup_cache_and_renders_pages(
    lazy: Desktop, desktop_manager_shared: DesktopManager
) -> None:
    lazy.request_browser()
    assert browser_on(await lazy.screenshot())

    # The recorded cache (desktops/startup_cache.py) is the base's file, not a session copy:
    # root's, and mapped by the session's Firefox instead of compiled onto its heap.
    home = desktop_manager_shared.homes.paths(lazy.session_id).home
    cache = home / SHARED_STARTUP_CACHE / "scriptCache-current.bin"
    assert cache.stat().st_uid == 0
    mapped = {f for pid in firefox_pids(lazy) for f in mapped_files(pid)}
    assert any(m.endswith("/startupCache/scriptCache-current.bin") for m in mapped), mapped

    # A page still renders (content process, no socket/RDD/fork-server processes).
    await lazy.key("ctrl+l")
    await lazy.type_text("data:text/html,<body style='background:rgb(200,30,30)'>\n")

    async def red() -> bool:
        pixel = desktop_image(await lazy.screenshot()).getpixel(CENTRE)
        return pixel == (200, 30, 30)

    await wait_for_async(red, timeout=30, interval=0.5, what="the data: page painted")
