"""WARM_POOL_SIZE: desktops prepared ahead; a create takes one over without starting any
process, under the new session's id and files, and the pool refills in the background. With
WARM_POOL_BROWSER the pooled desktop's Firefox is up before the session exists."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from computer_use.desktops import Desktop, DesktopManager
from computer_use.desktops.launcher import live_pids_of_uid, poll_until
from tests.desktop_fixtures import EventLog, running_desktop_manager


def ready(manager: DesktopManager) -> int:
    count: int = manager.health()["warm_pool"]["ready"]
    return count


@pytest.fixture(params=[False, True], ids=["no-browser", "browser"])
async def pooled(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> AsyncIterator[DesktopManager]:
    async with running_desktop_manager(
        tmp_path_factory,
        EventLog(),
        base=450,
        max_displays=3,
        user_prefix="cu-dw",
        warm_pool_size=1,
        warm_pool_browser=request.param,
    ) as manager:
        yield manager


def supervised_pids(desktop: Desktop) -> dict[str, int | None]:
    return {
        name: component.proc.pid if component.proc else None
        for name, component in desktop.supervisor.components.items()
    }


async def test_a_pooled_create_starts_nothing_and_the_pool_refills(
    pooled: DesktopManager,
) -> None:
    await poll_until(lambda: ready(pooled) == 1, timeout=60, what="the pool to fill")
    [placeholder] = [s for s in pooled._desktops if s.startswith("warm-")]
    warm = pooled.get(placeholder)
    assert warm is not None
    browser = pooled.pool.browser
    if browser:  # WARM_POOL_BROWSER: the pooled desktop's Firefox is up before any session
        await poll_until(lambda: warm.browser_state == "up", timeout=90, what="its browser")
    before = set(live_pids_of_uid(warm.user.uid))
    supervised = supervised_pids(warm)
    assert pooled.health()["desktops_running"] == 0  # the pooled desktop is no session

    desktop = await pooled.create("pooled-session")

    assert desktop is warm and desktop.session_id == "pooled-session"
    # No process started: the same supervised programs, and (without a browser, whose own
    # helper processes come and go) the very same set of processes.
    assert supervised_pids(desktop) == supervised
    if not browser:
        assert set(live_pids_of_uid(desktop.user.uid)) == before
    assert pooled.get(placeholder) is None and pooled.get("pooled-session") is desktop
    assert pooled.health()["warm_pool"]["claimed"] == 1
    # Its files are the session's now: written from inside, found under the session's id.
    wrote = await desktop.run(["sh", "-c", "echo mine > ~/Desktop/note"], timeout=10)
    assert wrote.returncode == 0, wrote.stderr
    home = pooled.homes.paths("pooled-session").home
    assert (home / "Desktop" / "note").read_text() == "mine\n"
    assert not pooled.homes.paths(placeholder).root.exists()
    assert desktop.supervisor.session_id == "pooled-session"
    assert desktop.browser_state == ("up" if browser else "down")

    await poll_until(lambda: ready(pooled) == 1, timeout=60, what="the pool to refill")
    assert pooled.slots.used == 2  # the refill holds a slot of MAX_DISPLAYS
    await pooled.destroy("pooled-session")
    assert not pooled.homes.has_files("pooled-session")
