"""The API on the package's Ray cluster: two API replicas (RAY_ADDRESS, one PostgreSQL
database, EVENT_BUS=postgres) own no desktops; sessions created through A land on both
desktop hosts, the agent runs in the session actor next to its desktop (the bash tool reports
the host slot's own user), a run started through A streams on B, and a screenshot, cancel and
delete through B reach the actor; the session's files (REST and MCP) work through either
replica. Then host B is killed: its session becomes `error` within 30 s with a valid history
while host A's session keeps working, and new sessions go to A.

Last in the package: it kills host B."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from playwright.async_api import async_playwright

from computer_use.loopback import LoopbackModelServer
from computer_use.loopback.script import RecordedRequest, Turn, bash, member, say
from tests import slots
from tests.cluster.conftest import HOSTS, ClusterSetup, host_instance
from tests.cluster.replicas import create, two_replicas
from tests.helpers import ServerProcess, wait_for, wait_for_async
from tests.mcp_server.conftest import mcp_client, png_size, text_of
from tests.sessions.test_exports import ffprobe_video
from tests.streaming.test_replicas import KEY, read_events
from tests.vnc.test_vnc_viewer import CHROMIUM, CHROMIUM_ARGS

ray = pytest.importorskip("ray", reason="the cluster extra: pip install -e '.[cluster]'")

from computer_use.cluster.session_actor import session_actor  # noqa: E402

HOLD = "sleep 60; echo never"
CANVAS_SIZED = """([width, height]) => {
  const canvas = document.querySelector("#screen canvas");
  return !!canvas && canvas.width === width && canvas.height === height;
}"""
UPLOAD_MB = 8
MIB = 1024 * 1024


@pytest.fixture(scope="module")
async def model(ray_setup: ClusterSetup) -> AsyncIterator[LoopbackModelServer]:
    async with LoopbackModelServer(
        [], chunk_size=64, host=ray_setup.model_host, port=ray_setup.model_port
    ) as server:
        yield server


@pytest.fixture(scope="module")
def replicas(
    ray_setup: ClusterSetup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with two_replicas(ray_setup, tmp_path_factory, MAX_UPLOAD_MB=str(UPLOAD_MB)) as both:
        yield both


async def _post(http: httpx.AsyncClient, session_id: str, content: str) -> None:
    posted = await http.post(
        f"/api/v1/sessions/{session_id}/messages",
        json={"content": content},
        headers={"X-Anthropic-API-Key": KEY},
    )
    assert posted.status_code == 202, posted.text


async def test_sessions_spread_over_the_hosts_and_any_replica_serves_them(
    replicas: tuple[ServerProcess, ServerProcess],
    model: LoopbackModelServer,
    ray_setup: ClusterSetup,
) -> None:
    a, b = replicas
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=60) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=60) as on_b,
    ):
        health = (await on_b.get("/api/v1/health")).json()["desktops"]
        assert health["backend"] == "ray" and health["capacity"] == 3, health
        assert len(health["hosts"]) == 2 and health["lost_hosts"] == 0
        # Host B in its own network namespace: the replicas reach it across the veth pair.
        addresses = {h["address"] for h in health["hosts"]}
        assert addresses == {ray_setup.cluster.node_ip, ray_setup.netns.inside}, health

        first, second = [await create(on_a, f"spread {n}") for n in (1, 2)]
        hosts = {first["host"], second["host"]}
        assert hosts == {host_instance("host-a"), host_instance("host-b")}, "spread over both"
        # The fields only the host knows, read through the other replica from the actor.
        seen = (await on_b.get(f"/api/v1/sessions/{first['id']}")).json()
        assert seen["host"] == first["host"]
        assert seen["display"] == first["display"] and seen["display"].startswith(":")
        assert seen["browser"] == "down" and seen["recording"] is False, seen
        listed = (await on_b.get("/api/v1/sessions")).json()["items"]
        assert {
            s["id"]: s["display"] for s in listed if s["id"] in (first["id"], second["id"])
        } == {
            first["id"]: first["display"],
            second["id"]: second["display"],
        }
        # Per host: A (2 slots) has one left, B (1 slot) none (Ray's view follows within
        # a resource report).
        want = {ray_setup.cluster.node_ip: (2, 1), ray_setup.netns.inside: (1, 0)}

        async def counted() -> bool:
            after = (await on_b.get("/api/v1/health")).json()["desktops"]
            slots_now = {h["address"]: (h["capacity"], h["free"]) for h in after["hosts"]}
            return bool(after["free"] == 1 and slots_now == want)

        await wait_for_async(counted, timeout=20, interval=0.2, what="the free slots per host")

        # A run started through A, in the actor: the bash tool runs as the host slot's user.
        model.add(say("Who am I?", bash("id -un; env")), say("Done."))
        sid = first["id"]
        started = asyncio.Event()
        watching = asyncio.create_task(
            read_events(on_b, sid, until="message_complete", started=started, timeout=120)
        )
        await asyncio.wait_for(started.wait(), 30)
        await _post(on_a, sid, "who are you")
        events = await watching
        ids = [i for i, _, _ in events]
        assert ids == list(range(ids[0], ids[0] + len(ids))), "in order, none missing"
        assert events[-1][2]["stop_reason"] == "end_turn"
        host_name = next(n for n in HOSTS if host_instance(n) == first["host"])
        user = f"{slots.prefix(HOSTS[host_name][0])}0-01"  # slot 0 of that host
        result = next(d for _, t, d in events if t == "tool_result")
        assert user in str(result), result
        # The host's environment (database URL, the cluster's token) stays out of the session.
        for secret in ("DATABASE_URL", "RAY_AUTH_TOKEN", "postgresql://"):
            assert secret not in str(result), result

        # Screenshot, cancel and delete through B reach the actor on its host.
        png = (await on_b.get(f"/api/v1/sessions/{sid}/screenshot")).content
        assert png.startswith(b"\x89PNG") and struct.unpack(">II", png[16:24]) == (1024, 768)
        model.add(say("Holding.", bash(HOLD)))  # the run never asks for more
        await _post(on_a, sid, "hold")
        held = await read_events(on_b, sid, until="tool_use", last_event_id=ids[-1])
        busy = await on_b.post(
            f"/api/v1/sessions/{sid}/messages",
            json={"content": "and this"},
            headers={"X-Anthropic-API-Key": KEY},
        )  # the host's refusal, as in one process
        assert busy.status_code == 409 and "still working" in busy.json()["error"]["message"]
        cancelled = await on_b.post(f"/api/v1/sessions/{sid}/cancel")
        assert cancelled.json() == {"session_id": sid, "cancelled": True}
        ended = await read_events(on_a, sid, until="message_complete", last_event_id=held[-1][0])
        assert ended[-1][2]["stop_reason"] == "cancelled"
        assert (await on_b.delete(f"/api/v1/sessions/{sid}")).status_code == 204
        with pytest.raises(ValueError):
            session_actor(sid)
        await wait_for_async(
            lambda: _free(on_a, 2), timeout=30, what="the deleted session's slot to be free"
        )
        assert (await on_a.delete(f"/api/v1/sessions/{second['id']}")).status_code == 204


def _has_processes(user: str) -> bool:
    return subprocess.run(["pgrep", "-u", user], capture_output=True).returncode == 0


async def _free(http: httpx.AsyncClient, n: int) -> bool:
    return bool((await http.get("/api/v1/health")).json()["desktops"]["free"] == n)


def test_a_client_without_the_clusters_token_is_refused(ray_setup: ClusterSetup) -> None:
    """Token authentication is on: a driver without RAY_AUTH_TOKEN is told its token is
    missing, and never joins (it would retry for a while: it is ended once refused)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    code = f"import ray; ray.init(address={ray_setup.cluster.address!r}); print('joined')"
    client = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen: list[str] = []
    try:

        def refused() -> bool:
            assert client.stdout is not None
            line = client.stdout.readline()
            seen.append(line)
            assert "joined" not in line and (line or client.poll() is None), "".join(seen)
            return "InvalidAuthToken" in line

        wait_for(refused, timeout=60, interval=0, what="the cluster refusing a client")
    finally:
        os.killpg(client.pid, signal.SIGKILL)
        client.wait()
    assert not any("joined" in line for line in seen)


async def test_a_run_outlives_the_replica_that_started_it_and_resumes_on_the_other(
    replicas: tuple[ServerProcess, ServerProcess], model: LoopbackModelServer
) -> None:
    """Replica A is killed mid-run (the model's next answer is held until then): the run goes
    on in its actor, and B's client resumes with Last-Event-ID, missing nothing."""
    a, b = replicas
    release = asyncio.Event()

    async def held(request: RecordedRequest) -> Turn:
        await release.wait()
        return say("Released, done.")

    model.add(say("Step one.", bash("echo one")), held)
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=60) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=60) as on_b,
    ):
        sid = (await create(on_a, "replica loss"))["id"]
        await _post(on_a, sid, "go on without A")
        before = await read_events(on_b, sid, until="tool_result")
        a.stop(signal.SIGKILL)
        release.set()
        after = await read_events(on_b, sid, until="message_complete", last_event_id=before[-1][0])
        a.start()  # back for the next test, on the same database and cluster
        everything = await read_events(on_a, sid, until="message_complete")
        assert (await on_a.delete(f"/api/v1/sessions/{sid}")).status_code == 204
    ids = [i for i, _, _ in before + after]
    assert ids == list(range(1, len(ids) + 1)), "every event exactly once, in order"
    assert before + after == everything
    assert after[-1][2]["stop_reason"] == "end_turn"
    assert any(t == "text" and d.get("text") == "Released, done." for _, t, d in after), after


async def test_the_persons_controls_reach_the_run_from_any_replica(
    replicas: tuple[ServerProcess, ServerProcess], model: LoopbackModelServer
) -> None:
    """Pause, resume, the approval policy and an approval's answer, through either replica,
    act on the run in the actor, with the one-process rules."""
    a, b = replicas
    model.add(say("Running it.", bash("echo approved-run")), say("Done."))
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=60) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=60) as on_b,
    ):
        created = await on_a.post("/api/v1/sessions", json={"title": "person", "approval": "ask"})
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        url = f"/api/v1/sessions/{sid}"
        patched = await on_b.patch(url, json={"approval": ["bash"]})
        assert patched.status_code == 200 and patched.json()["approval"] == ["bash"]
        paused = await on_b.post(f"{url}/pause", json={"take_control": True})
        assert paused.status_code == 200 and paused.json()["held_by"] == "person", paused.text
        resumed = await on_a.post(f"{url}/resume")
        assert resumed.status_code == 200 and resumed.json()["paused"] is False, resumed.text

        await _post(on_a, sid, "run it")
        asked = await read_events(on_b, sid, until="approval_required")
        approval_id = asked[-1][2]["approval_id"]
        assert asked[-1][2]["action"] == "bash"
        waiting = (await on_a.get(url)).json()  # what waits is known in the actor
        assert waiting["pending_approval_id"] == approval_id, waiting
        answered = await on_b.post(f"{url}/approvals/{approval_id}", json={"decision": "approve"})
        assert answered.status_code == 200, answered.text
        done = await read_events(on_a, sid, until="message_complete", last_event_id=asked[-1][0])
        assert done[-1][2]["stop_reason"] == "end_turn"
        assert "approved-run" in str(next(d for _, t, d in done if t == "tool_result"))
        again = await on_a.post(f"{url}/approvals/{approval_id}", json={"decision": "decline"})
        assert again.status_code == 409 and "already approved" in again.text
        assert (await on_b.delete(url)).status_code == 204


class Alternating(httpx2.AsyncBaseTransport):
    """A load balancer without stickiness: each request goes to the next replica in turn."""

    def __init__(self, *servers: ServerProcess) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self._ports = itertools.cycle([int(s.base_url.rsplit(":", 1)[1]) for s in servers])
        self.served: Counter[int] = Counter()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = next(self._ports)
        request.url = request.url.copy_with(port=port)
        request.headers["host"] = f"{request.url.host}:{port}"
        self.served[port] += 1
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_mcp_requests_spread_over_the_replicas_drive_the_session_on_its_host(
    replicas: tuple[ServerProcess, ServerProcess], model: LoopbackModelServer, mode: str
) -> None:
    """An MCP client whose requests alternate between replicas A and B (a 2025-era client
    with its handshake, and a sessionless 2026 one): create_session lands on a desktop host
    and offers its viewer, execute_task runs there and returns the answer and a screenshot,
    take_screenshot, get_session_status and destroy_session work."""
    model.add(say("Looking.", member("screenshot")), say("An empty desktop."))
    balancer = Alternating(*replicas)
    async with mcp_client(replicas[0], key=KEY, mode=mode, transport=balancer) as client:
        made = await client.call_tool("create_session", {"title": f"mcp on ray ({mode})"})
        assert not made.is_error, text_of(made)
        session = made.structured_content
        assert session is not None
        sid = session["session_id"]
        assert f"/vnc/{sid}?token=" in session["vnc_url"]
        done = await client.call_tool("execute_task", {"session_id": sid, "task": "look"})
        assert not done.is_error, text_of(done)
        assert text_of(done) == "An empty desktop."
        assert png_size(done.content[1]) == (1024, 768)
        shot = await client.call_tool("take_screenshot", {"session_id": sid})
        assert not shot.is_error and png_size(shot.content[0]) == (1024, 768)
        status = await client.call_tool("get_session_status", {"session_id": sid})
        assert status.structured_content is not None
        assert status.structured_content["status"] == "active"
        assert f"/vnc/{sid}?token=" in status.structured_content["vnc_url"]
        gone = await client.call_tool("destroy_session", {"session_id": sid})
        assert not gone.is_error, text_of(gone)
    assert len(balancer.served) == 2 and min(balancer.served.values()) >= 3, balancer.served
    with pytest.raises(ValueError):
        session_actor(sid)


async def test_the_desktop_is_watched_through_another_replica_in_chromium(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    """The session's vnc_url from replica B: noVNC in Chromium gets the host's desktop
    (1024x768) through B's proxy and the actor's relay; the relay lets nobody in without its
    secret."""
    a, b = replicas
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=60) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=60) as on_b,
    ):
        sid = (await create(on_a, "watched"))["id"]
        vnc_url = (await on_b.get(f"/api/v1/sessions/{sid}")).json()["vnc_url"]
        assert vnc_url, "a session on a host has a viewer URL on every replica"
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(b.base_url + vnc_url)
                await page.wait_for_function(CANVAS_SIZED, arg=[1024, 768], timeout=30000)
            finally:
                await browser.close()

        address, port, secret = ray.get(session_actor(sid).vnc_endpoint.remote(), timeout=30)
        reader, writer = await asyncio.open_connection(address, port)
        writer.write(bytes(len(secret)))  # a wrong secret: closed without a byte of RFB
        assert await asyncio.wait_for(reader.read(100), 10) == b""
        writer.close()
        reader, writer = await asyncio.open_connection(address, port)
        writer.write(secret)
        assert await asyncio.wait_for(reader.readexactly(12), 10) == b"RFB 003.008\n"
        writer.close()
        assert (await on_b.delete(f"/api/v1/sessions/{sid}")).status_code == 204


async def _aiter(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def _open_transfers(session_id: str) -> int:
    return int(await session_actor(session_id).open_transfers.remote())


async def test_a_sessions_files_work_through_any_replica(
    replicas: tuple[ServerProcess, ServerProcess], model: LoopbackModelServer
) -> None:
    """Uploaded through A (in chunks: bigger than one), listed, downloaded and deleted
    through B, seen by the agent on the host; the host's refusals are the same 4xx as in one
    process; a client that drops a download ends its transfer on the host."""
    a, b = replicas
    payload = os.urandom(3 * MIB + 12345)
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=60) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=60) as on_b,
    ):
        sid = (await create(on_a, "files"))["id"]
        base = f"/api/v1/sessions/{sid}/files"
        put = await on_a.put(f"{base}/Uploads/data.bin", content=_aiter([payload]))
        assert put.status_code == 201, put.text
        assert put.json() == {"path": "Uploads/data.bin", "size": len(payload)}

        listed = (await on_b.get(f"{base}/Uploads")).json()
        assert [(e["name"], e["size"]) for e in listed["entries"]] == [("data.bin", len(payload))]
        got = await on_b.get(f"{base}/Uploads/data.bin")
        assert got.status_code == 200 and got.content == payload
        assert got.headers["content-length"] == str(len(payload))

        async def transfers_ended() -> bool:
            return await _open_transfers(sid) == 0

        # Each transfer ends on the host with its last chunk (the last read may still be on
        # its way when the client has every byte).
        await wait_for_async(transfers_ended, timeout=30, what="the transfers' end")

        # The agent on the host sees the file; it writes one too big for the sockets' buffers.
        digest = hashlib.sha256(payload).hexdigest()
        model.add(
            say("Checking.", bash("sha256sum ~/Uploads/data.bin; head -c 64M /dev/zero >~/z")),
            say("Done."),
        )
        await _post(on_a, sid, "check the upload")
        events = await read_events(on_b, sid, until="message_complete", timeout=120)
        assert digest in str(next(d for _, t, d in events if t == "tool_result"))

        # Refusals raised on the host: the same status and code as in one process.
        cases = [
            ("GET", f"{base}/%2E%2E/%2E%2E/etc/passwd", 400, "invalid_path"),
            ("GET", f"{base}/no/such/file", 404, "not_found"),
            ("PUT", f"{base}/Downloads", 409, "is_a_directory"),
            ("DELETE", f"{base}/%2E%2E", 400, "invalid_path"),
        ]
        for method, url, status, code in cases:
            response = await on_b.request(method, url, content=b"x" if method == "PUT" else None)
            assert response.status_code == status, (method, url, response.text)
            assert response.json()["error"]["code"] == code, (url, response.text)
        # Over MAX_UPLOAD_MB with no Content-Length: refused mid-stream on the host, nothing kept.
        streamed = await on_a.put(
            f"{base}/Uploads/big.bin", content=_aiter([b"\1" * MIB] * (UPLOAD_MB + 1))
        )
        assert streamed.status_code == 413, streamed.text
        assert streamed.json()["error"]["code"] == "too_large"
        names = [e["name"] for e in (await on_b.get(f"{base}/Uploads")).json()["entries"]]
        assert names == ["data.bin"]

        # A download dropped after its first chunk: its transfer ends on the host.
        async with on_b.stream("GET", f"{base}/z") as download:
            assert download.status_code == 200
            first = await anext(download.aiter_raw())
            assert first and await _open_transfers(sid) == 1, "still being sent"
        await wait_for_async(transfers_ended, timeout=30, what="the dropped download's end")

        # MCP on B lists the same folder; its errors are the same tool errors.
        async with mcp_client(b) as client:
            mcp_listed = await client.call_tool(
                "list_files", {"session_id": sid, "path": "Uploads"}
            )
            assert not mcp_listed.is_error, text_of(mcp_listed)
            assert mcp_listed.structured_content is not None
            entries = mcp_listed.structured_content["entries"]
            assert [(e["name"], e["size"]) for e in entries] == [("data.bin", len(payload))]
            missing = await client.call_tool("list_files", {"session_id": sid, "path": "nope"})
            assert missing.is_error and "does not exist" in text_of(missing)

        assert (await on_b.delete(f"{base}/Uploads/data.bin")).status_code == 204
        assert (await on_a.get(f"{base}/Uploads/data.bin")).status_code == 404
        assert (await on_a.delete(f"/api/v1/sessions/{sid}")).status_code == 204


async def test_a_recording_on_its_host_is_exported_through_any_replica(
    replicas: tuple[ServerProcess, ServerProcess], ray_setup: ClusterSetup, tmp_path: Path
) -> None:
    """Recorded on the host from the desktop's start; exported through B (copied from the
    host in chunks: test_remote_recordings.py), the host's export file removed; a session without a
    recording, and one whose actor has ended without keeping it, are one process's 404."""
    a, b = replicas
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=60) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=60) as on_b,
    ):
        created = await on_a.post("/api/v1/sessions", json={"title": "rec", "record": True})
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        plain = (await create(on_a, "not recorded"))["id"]
        try:
            missing = await on_b.get(f"/api/v1/sessions/{plain}/recording")
            assert missing.status_code == 404, missing.text
            assert '"record": true' in missing.json()["error"]["message"]
            # The recording's directory on its host's slot (the hosts' DATA_DIRs share this disk).
            (directory,) = ray_setup.cluster.workdir.glob(f"host-*/slots/*/recordings/{sid}")

            async def timeline() -> dict[str, Any] | None:
                got = await on_b.get(f"/api/v1/sessions/{sid}/recording/timeline")
                assert got.status_code == 200, got.text
                body: dict[str, Any] = got.json()
                return body if body["recording"] and body["parts"] else None

            started = (await wait_for_async(timeline, timeout=30, what="the recording"))["parts"]
            assert len(started) == 1 and started[0]["ended_at"] is None

            # At 5 fps a bare desktop is a few KiB a second: enough segments for several chunks.
            # (The host's segments are cut every 10 s; the export joins them with the live one.)
            async def long_enough() -> httpx.Response | None:
                got = await on_b.get(f"/api/v1/sessions/{sid}/recording")
                assert got.status_code == 200, got.text
                return got if time.time() - started[0]["started_at"] > 3 else None

            video = await wait_for_async(long_enough, timeout=60, interval=1, what="3 s recorded")
            assert video.headers["content-type"] == "video/mp4"
            path = tmp_path / "recording.mp4"
            await asyncio.to_thread(path.write_bytes, video.content)
            duration, width, height = await asyncio.to_thread(ffprobe_video, path)
            assert (width, height) == (1024, 768) and duration > 2, duration
            assert not list(directory.glob("export-*")), "the host's export file is removed"
            assert list(directory.glob("part-0001-*.ts"))

            # The session's end without keeping its recording (delete; expiry with
            # RECORDINGS_ON_EXPIRY=delete): it goes with its actor, and asking for it is one
            # process's 404, not a 500 (a kept one: test_kept_recordings.py).
            actor = session_actor(sid)
            await asyncio.wait_for(actor.stop.remote(), 60)
            ray.kill(actor)
            assert not directory.exists()

            def actor_gone() -> bool:  # ray.kill returns before the name is released
                try:
                    session_actor(sid)
                except ValueError:
                    return True
                return False

            await asyncio.to_thread(wait_for, actor_gone, timeout=30, what="the actor's end")
            gone = await on_b.get(f"/api/v1/sessions/{sid}/recording")
            assert gone.status_code == 404, gone.text
            assert '"record": true' in gone.json()["error"]["message"]
        finally:  # the next test needs the slots, whatever happened here
            for session_id in (sid, plain):
                deleted = await on_a.delete(f"/api/v1/sessions/{session_id}")
                assert deleted.status_code == 204, deleted.text


async def test_a_lost_host_ends_its_sessions_as_error_and_new_ones_go_to_the_survivor(
    replicas: tuple[ServerProcess, ServerProcess],
    model: LoopbackModelServer,
    ray_setup: ClusterSetup,
) -> None:
    a, b = replicas
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=60) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=60) as on_b,
    ):
        made = [await create(on_a, f"loss {n}") for n in (1, 2)]
        by_host = {s["host"]: s["id"] for s in made}
        doomed, survivor = by_host[host_instance("host-b")], by_host[host_instance("host-a")]
        model.add(say("Holding.", bash(HOLD)))  # the run never asks for more
        await _post(on_a, doomed, "hold")
        held = await read_events(on_b, doomed, until="tool_use")

        ray_setup.cluster.kill_host("host-b")
        killed = time.monotonic()

        async def is_error() -> bool:
            got = (await on_b.get(f"/api/v1/sessions/{doomed}")).json()
            return bool(got["status"] == "error")

        await wait_for_async(is_error, timeout=30, interval=0.5, what="the lost session's error")
        assert time.monotonic() - killed < 30
        lost = (await on_a.get(f"/api/v1/sessions/{doomed}")).json()
        assert "was lost" in lost["status_detail"], lost
        # Its history stays valid: the tool_use in flight has its (interrupted) result.
        last_two = lost["messages"][-2:]
        assert last_two[0]["role"] == "assistant" and last_two[1]["role"] == "user"
        assert "interrupted" in str(last_two[1]["content"])
        ending = await read_events(
            on_b, doomed, until="message_complete", last_event_id=held[-1][0]
        )
        assert ending[-1][2]["stop_reason"] == "error"
        assert any(t == "error" for _, t, _ in ending)

        # What the dead actor left (its desktop's processes) is ended by its watcher
        # (cluster/reaper.py): Ray ends the worker, not what it started. (Host B's mounts are
        # in the mount namespace `ip netns exec` gave it: not visible from here.)
        b_users = [f"{slots.prefix(HOSTS['host-b'][0])}{k}-01" for k in range(HOSTS["host-b"][2])]

        def reclaimed() -> bool:
            return not [u for u in b_users if _has_processes(u)]

        await asyncio.to_thread(
            wait_for, reclaimed, timeout=60, interval=0.5, what="host B's leftovers gone"
        )

        # Host A's session is untouched; new sessions go to A, the only live host.
        assert (await on_b.get(f"/api/v1/sessions/{survivor}")).json()["status"] == "active"
        png = (await on_b.get(f"/api/v1/sessions/{survivor}/screenshot")).content
        assert png.startswith(b"\x89PNG")

        async def host_lost() -> bool:  # Ray declares the node dead after its actors
            health = (await on_a.get("/api/v1/health")).json()["desktops"]
            return bool(health["lost_hosts"] == 1 and health["capacity"] == 2)

        await wait_for_async(host_lost, timeout=60, interval=0.5, what="host B reported lost")
        fresh = await create(on_b, "after the loss")
        assert fresh["host"] == host_instance("host-a")
        full = await on_a.post("/api/v1/sessions", json={"title": "one too many"})
        assert full.status_code == 429, full.text
        for sid in (survivor, fresh["id"], doomed):
            assert (await on_a.delete(f"/api/v1/sessions/{sid}")).status_code == 204
