"""kill -9 of one session's desktop components and its bash shell: detected, recovered, and
the other session never notices."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from computer_use.loopback import LoopbackModelServer
from computer_use.loopback.script import bash, say
from tests.helpers import ServerProcess, pids_named, wait_for_async
from tests.reliability.conftest import (
    Event,
    SseReader,
    footprint,
    is_type,
    make_server,
    post_message,
    start,
    uid_of,
    vnc_viewer,
    wait_status,
)

# (process name, supervisor component): Firefox last, its restart is the slowest.
COMPONENTS = [("Xvfb", "xvfb"), ("x11vnc", "vnc"), ("jwm", "wm"), ("firefox-esr", "browser")]


@pytest.fixture(scope="module")
async def crash_server(
    model: LoopbackModelServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("components")
    server = make_server(
        data_dir,
        display_base=1020,
        letter="c",
        ANTHROPIC_BASE_URL=model.base_url,
        BROWSER_EAGER="true",  # every component up from the start, to be killed
        VNC_LINGER_SECONDS="5",  # x11vnc stops 5 s after its last viewer left
    )
    await start(server)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def _screenshots(http: httpx.AsyncClient, sid: str, failures: list[str]) -> int:
    """Screenshots of `sid` back to back until cancelled; records every failure."""
    taken = 0
    try:
        while True:
            response = await http.get(f"/api/v1/sessions/{sid}/screenshot")
            if response.status_code != 200 or not response.content.startswith(b"\x89PNG"):
                failures.append(f"{response.status_code}: {response.text[:200]}")
            taken += 1
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        return taken


async def test_killed_desktop_components_are_reported_within_5_s_and_come_back(
    crash_server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=crash_server.base_url, timeout=30) as http:
        victim = (await http.post("/api/v1/sessions", json={"title": "victim"})).json()["id"]
        other = (await http.post("/api/v1/sessions", json={"title": "bystander"})).json()["id"]
        user = footprint(crash_server, victim, "c").user
        uid = uid_of(user)
        await wait_for_async(_new_process(uid, "firefox-esr", set()), timeout=20, what="Firefox")
        stream = SseReader(http, victim).start()
        failures: list[str] = []
        watcher = asyncio.create_task(_screenshots(http, other, failures))
        try:
            for comm, component in COMPONENTS:
                # Someone watches, so x11vnc runs (it starts for a viewer); the kill may end
                # the viewer's connection.
                async with vnc_viewer(http, victim):
                    old = pids_named(uid, comm)
                    assert old, f"no {comm} of {user} running"
                    killed_at = time.monotonic()
                    for pid in old:
                        os.kill(pid, signal.SIGKILL)
                    start = len(stream.events)
                    await stream.until(_error_of(component), timeout=5, start=start)
                    assert time.monotonic() - killed_at < 5
                    back = _new_process(uid, comm, old)
                    await wait_for_async(back, timeout=30, what=f"{comm} back")
                    await wait_status(http, victim, "active", timeout=30)
            shot = await http.get(f"/api/v1/sessions/{victim}/screenshot")
            assert shot.status_code == 200 and shot.content.startswith(b"\x89PNG")
        finally:
            watcher.cancel()
            taken = await watcher
            await stream.close()
        assert taken > 0 and failures == [], failures
        errors = [d for _, t, d in stream.events if t == "error"]
        assert {d["component"] for d in errors} >= {c for _, c in COMPONENTS}
        assert not [d for d in errors if d.get("retryable") is False], errors
        other_status = await http.get(f"/api/v1/sessions/{other}")
        assert other_status.json()["status"] == "active"
        for sid in (victim, other):
            assert (await http.delete(f"/api/v1/sessions/{sid}")).status_code == 204


async def test_x11vnc_runs_while_a_viewer_is_connected_through_the_server(
    crash_server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=crash_server.base_url, timeout=30) as http:
        sid = (await http.post("/api/v1/sessions", json={"title": "watched"})).json()["id"]
        uid = uid_of(footprint(crash_server, sid, "c").user)
        assert pids_named(uid, "x11vnc") == set()  # nobody watches yet

        async with vnc_viewer(http, sid), vnc_viewer(http, sid):  # two people watch
            running = pids_named(uid, "x11vnc")
            vnc = (await http.get("/api/v1/health")).json()["desktops"]["vnc"]
            assert len(running) == 1 and vnc["viewers"] == 2 and vnc["servers_up"] >= 1

        async def stopped() -> bool:
            return not pids_named(uid, "x11vnc")

        await wait_for_async(stopped, timeout=30, what="x11vnc stopped after the viewers left")
        vnc = (await http.get("/api/v1/health")).json()["desktops"]["vnc"]
        assert vnc["viewers"] == 0
        async with vnc_viewer(http, sid):  # and it comes back for the next one
            assert pids_named(uid, "x11vnc") - running
        assert (await http.delete(f"/api/v1/sessions/{sid}")).status_code == 204


async def test_killed_bash_shell_is_replaced_on_the_next_command(
    crash_server: ServerProcess, model: LoopbackModelServer
) -> None:
    async with httpx.AsyncClient(base_url=crash_server.base_url, timeout=30) as http:
        sid = (await http.post("/api/v1/sessions", json={"title": "shell"})).json()["id"]
        stream = SseReader(http, sid).start()
        model.add(say("Which shell?", bash("echo $$")), say("Noted."))
        await post_message(http, sid, "print your shell's pid")
        await stream.until(is_type("message_complete"))
        shell_pid = int(model.requests[-1].last_tool_result_text().strip())
        os.kill(shell_pid, signal.SIGKILL)

        rejected = len(model.rejections)
        model.add(
            say("Again.", bash("echo one")), say("And again.", bash("echo two")), say("Done.")
        )
        await post_message(http, sid, "try again")
        complete = await stream.until(
            lambda e: (
                e[1] == "message_complete"
                and e[2]["stop_reason"] == "end_turn"
                and len([x for x in stream.events if x[1] == "message_complete"]) == 2
            ),
            timeout=30,
        )
        assert complete[2]["stop_reason"] == "end_turn"
        assert model.requests[-1].last_tool_result_text() == "two"
        assert model.rejections[rejected:] == []
        await stream.close()
        assert (await http.delete(f"/api/v1/sessions/{sid}")).status_code == 204


def _new_process(uid: int, comm: str, old: set[int]) -> Callable[[], Awaitable[set[int]]]:
    async def started() -> set[int]:
        return pids_named(uid, comm) - old

    return started


def _error_of(component: str) -> Callable[[Event], bool]:
    def matches(event: Event) -> bool:
        return event[1] == "error" and event[2].get("component") == component

    return matches
