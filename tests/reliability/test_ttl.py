"""SESSION_TTL_SECONDS: an idle session expires with everything it held released; a session
whose agent is working does not."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from computer_use.desktops.process import live_pids_of_uid
from computer_use.loopback import LoopbackModelServer
from computer_use.loopback.script import bash, say
from tests.helpers import wait_for_async
from tests.reliability.conftest import (
    SseReader,
    footprint,
    is_type,
    make_server,
    mounts_under,
    post_message,
    session_detail,
    start,
    uid_of,
    wait_status,
    x_server_pids,
)

TTL = 3


async def test_idle_session_expires_releasing_everything_and_a_working_one_does_not(
    model: LoopbackModelServer, tmp_path: Path
) -> None:
    server = make_server(
        tmp_path,
        display_base=1030,
        letter="d",
        ANTHROPIC_BASE_URL=model.base_url,
        SESSION_TTL_SECONDS=str(TTL),
        CLEANUP_INTERVAL_SECONDS="1",
    )
    await start(server)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            idle = (await http.post("/api/v1/sessions", json={"title": "idle"})).json()["id"]
            busy = (await http.post("/api/v1/sessions", json={"title": "busy"})).json()["id"]
            held = footprint(server, idle, "d")
            model.add(say("Working.", bash("sleep 60")))
            busy_stream = SseReader(http, busy).start()
            await post_message(http, busy, "work for a minute")
            busy_since = time.monotonic()
            await busy_stream.until(is_type("tool_use"))

            await wait_status(http, idle, "expired", timeout=TTL + 10)
            uid = uid_of(held.user)
            session_dir = Path(server.env["DATA_DIR"]) / "sessions" / idle

            async def released() -> bool:  # the status flips first, then the desktop goes
                return not live_pids_of_uid(uid) and not mounts_under(session_dir)

            await wait_for_async(released, timeout=10, what="the expired session's desktop gone")
            assert not held.vnc_socket.exists()
            assert not x_server_pids(held.display)
            shot = await http.get(f"/api/v1/sessions/{idle}/screenshot")
            assert 400 <= shot.status_code < 500
            again = await http.post(f"/api/v1/sessions/{idle}/messages", json={"content": "hello?"})
            assert again.status_code == 409, again.text

            # the working session outlives its TTL and two cleanup passes, and is still working
            # (what is tested here is time passing, so the wait is a plain sleep)
            await asyncio.sleep(max(0.0, busy_since + TTL + 2 - time.monotonic()))
            assert (await session_detail(http, busy))["status"] == "processing"
            assert not [e for e in busy_stream.events if e[2].get("status") == "expired"]
            assert (await http.post(f"/api/v1/sessions/{busy}/cancel")).status_code == 200
            await busy_stream.until(is_type("message_complete"))
            await busy_stream.close()
            await wait_status(http, busy, "active")
    finally:
        await asyncio.to_thread(server.stop)
