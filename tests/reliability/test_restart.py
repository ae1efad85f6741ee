"""The server dies (SIGKILL) or is stopped (SIGTERM) in the middle of an agent run."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx

from computer_use.desktops.process import live_pids_of_uid
from computer_use.desktops.sockets import accepts_connections
from computer_use.loopback import LoopbackModelServer
from computer_use.loopback.script import bash, say
from tests.reliability.conftest import (
    SseReader,
    assert_every_tool_use_answered,
    footprint,
    is_type,
    make_server,
    mounts_under,
    post_message,
    start,
    uid_of,
    vnc_viewer,
    wait_status,
    x_server_pids,
)


async def test_sigkill_mid_run_then_restart_interrupts_the_run_and_leaves_nothing_behind(
    model: LoopbackModelServer, tmp_path: Path
) -> None:
    server = make_server(tmp_path, display_base=1000, letter="a", ANTHROPIC_BASE_URL=model.base_url)
    await start(server)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            created = await http.post("/api/v1/sessions", json={"title": "crash"})
            assert created.status_code == 201, created.text
            sid: str = created.json()["id"]
            model.add(
                say("Writing a note.", bash("echo persisted-42 > ~/note.txt")),
                say("Waiting.", bash("sleep 60")),
            )
            live = SseReader(http, sid).start()
            await post_message(http, sid, "write a note, then wait")
            await live.until(lambda e: e[1] == "tool_use" and "sleep" in str(e[2]))
            before = footprint(server, sid, "a")
            assert before.pids and before.mounts

            server.stop(signal.SIGKILL)  # the server alone: its desktop is orphaned
            await asyncio.wait_for(live.ended.wait(), 10)
            seen_before_crash = list(live.events)

            await start(server)
            resumed = SseReader(http, sid, last_event_id=seen_before_crash[-1][0]).start()
            await resumed.until(is_type("message_complete"))
            detail = await wait_status(http, sid, "active")

            # every event exactly once across the crash: contiguous ids, same as a full replay
            ids = [i for i, _, _ in seen_before_crash + resumed.events]
            assert ids == list(range(1, len(ids) + 1)), ids
            replay = SseReader(http, sid, last_event_id=0).start()
            await replay.until(lambda e: e[0] == ids[-1])
            assert [e[0] for e in replay.events] == ids
            assert replay.events == seen_before_crash + resumed.events
            await asyncio.gather(resumed.close(), replay.close(), live.close())

            # the run is marked interrupted and its stored history is valid
            after_crash = [e for e in replay.events if e[0] > seen_before_crash[-1][0]]
            error = next(d for _, t, d in after_crash if t == "error")
            assert error["code"] == "interrupted"
            assert (
                next(d for _, t, d in after_crash if t == "message_complete")["stop_reason"]
                == "error"
            )
            assert_every_tool_use_answered(detail["messages"])

            # nothing of the old desktop is left: processes, X server, VNC port, mounts
            after = footprint(server, sid, "a")
            assert after.user == before.user and after.display == before.display
            assert not (after.pids & before.pids), "processes of the killed server survived"
            assert x_server_pids(after.display) and x_server_pids(after.display) <= after.pids
            assert after.mounts == before.mounts, "mounts doubled or went missing"
            async with vnc_viewer(http, sid):  # a person can watch it again
                assert accepts_connections(str(after.vnc_socket))

            # the session works again, on its own files, and the model accepts its history
            rejected = len(model.rejections)
            model.add(say("Reading.", bash("cat ~/note.txt")), say("Done."))
            await post_message(http, sid, "what did you write?")
            done = SseReader(http, sid, last_event_id=ids[-1]).start()
            complete = await done.until(is_type("message_complete"))
            await done.close()
            assert complete[2]["stop_reason"] == "end_turn"
            assert "persisted-42" in model.requests[-1].last_tool_result_text()
            assert model.rejections[rejected:] == []
    finally:
        await asyncio.to_thread(server.stop)
    assert not mounts_under(tmp_path), "the stopped server left mounts"


async def test_sigterm_ends_streams_records_the_run_and_releases_everything_within_10_s(
    model: LoopbackModelServer, tmp_path: Path
) -> None:
    server = make_server(tmp_path, display_base=1010, letter="b", ANTHROPIC_BASE_URL=model.base_url)
    await start(server)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            created = await http.post("/api/v1/sessions", json={"title": "stop"})
            sid: str = created.json()["id"]
            model.add(say("Waiting.", bash("sleep 60")))
            stream = SseReader(http, sid).start()
            await post_message(http, sid, "wait a minute")
            await stream.until(is_type("tool_use"))
            held = footprint(server, sid, "b")
            assert held.pids

            assert server.proc is not None
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(stream.ended.wait(), 10)
            await asyncio.wait_for(asyncio.to_thread(server.proc.wait), 10)
            took = time.monotonic() - started
            assert took < 10, f"shutdown took {took:.1f} s"
            # uvicorn re-raises the signal it handled once it is done: -SIGTERM is a clean exit
            assert server.proc.returncode in (0, -signal.SIGTERM), server.log_path.read_text()

            assert not live_pids_of_uid(uid_of(held.user)), "session processes outlived the server"
            assert not mounts_under(tmp_path)
            assert not held.vnc_socket.exists()
            assert not x_server_pids(held.display)
            assert not [p for p in _children(server.proc.pid)], "the server left children behind"
            assert "tool_use" in stream.types()
    finally:
        await asyncio.to_thread(server.stop)

    # the run is recorded: started again, its history is complete and says how it ended
    await start(server)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            detail = await wait_status(http, sid, "active")
            assert_every_tool_use_answered(detail["messages"])
            replay = SseReader(http, sid, last_event_id=0).start()
            await replay.until(is_type("message_complete"))
            await replay.close()
            ids = [e[0] for e in replay.events]
            assert ids == list(range(1, len(ids) + 1))
    finally:
        await asyncio.to_thread(server.stop)


def _children(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (none once it has exited and been reaped)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found
