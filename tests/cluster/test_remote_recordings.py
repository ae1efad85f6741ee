"""A recording's download across the cluster without Ray's transport: the replica's
open_download against the host's RecordingExports (an actor stand-in that calls it directly),
sent by the route's DownloadResponse, streams the host's MP4 byte for byte in reads of at most
1 MiB, as the client takes them, with FileResponse's Content-Length, Range and HEAD, and
removes the host's export file at its end; the host's refusals pass through; a session whose
desktop never started (no actor, no host) is the one-process 404."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from computer_use import errors
from computer_use.desktops.files import BATCH
from computer_use.sessions.download_response import DownloadResponse
from tests.helpers import wait_for_async

pytest.importorskip("ray", reason="the cluster extra: pip install -e '.[cluster]'")

from computer_use.cluster import naming, remote_recordings
from computer_use.cluster.remote_recordings import RecordingExports, RecordingSource


class Sessions:
    """SessionService's export_recording: a file of `size` bytes, or its refusal."""

    def __init__(self, directory: Path, size: int, refusal: errors.DomainError | None) -> None:
        self.directory, self.size, self.refusal = directory, size, refusal

    async def export_recording(self, session_id: str) -> Path:
        if self.refusal is not None:
            raise self.refusal
        path = self.directory / f"export-{session_id}.mp4"
        path.write_bytes(os.urandom(self.size))
        return path


class Method:
    """An actor method's `.remote`: submits the call at once (as Ray does, awaited or not),
    recording what crossed."""

    def __init__(self, exports: RecordingExports, crossed: list[Any]) -> None:
        self.exports, self.crossed = exports, crossed

    def remote(self, verb: str, *args: Any) -> asyncio.Task[Any]:
        async def run() -> Any:
            result = await self.exports.call(verb, *args)
            self.crossed.append((verb, args, result))
            return result

        return asyncio.ensure_future(run())


class Actor:
    def __init__(self, exports: RecordingExports) -> None:
        self.crossed: list[Any] = []
        self.recording = Method(exports, self.crossed)


@pytest.fixture
def host(tmp_path: Path) -> Path:
    directory = tmp_path / "host"
    directory.mkdir()
    return directory


def _on(monkeypatch: pytest.MonkeyPatch, sessions: Sessions) -> Actor:
    exports = RecordingExports(lambda: cast(RecordingSource, sessions), "s1")
    actor = Actor(exports)
    monkeypatch.setattr(naming, "session_actor", lambda session_id: actor)
    return actor


async def _route(request: Request) -> DownloadResponse:
    """The recording route's response, on the replica's download."""
    return DownloadResponse(
        await remote_recordings.open_download("s1", "host-a"),
        media_type="video/mp4",
        filename="recording-s1.mp4",
        headers={"Cache-Control": "no-store"},
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=[Route("/recording", _route, methods=["GET", "HEAD"])])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
        yield client


def _reads(actor: Actor) -> list[int]:
    return [len(result) for verb, _, result in actor.crossed if verb == "read"]


async def test_a_download_streams_in_bounded_reads_and_leaves_nothing_on_the_host(
    host: Path, monkeypatch: pytest.MonkeyPatch, client: httpx.AsyncClient
) -> None:
    sessions = Sessions(host, 2 * BATCH + 12345, None)
    actor = _on(monkeypatch, sessions)
    got = await client.get("/recording")
    assert got.status_code == 200
    assert got.headers["content-length"] == str(sessions.size) == str(len(got.content))
    assert got.headers["accept-ranges"] == "bytes"
    assert got.headers["content-disposition"] == 'attachment; filename="recording-s1.mp4"'
    assert _reads(actor) == [BATCH, BATCH, 12345]
    await wait_for_async(lambda: _empty(host), what="the host's export file removed")
    # The close is recorded once its call returns, a moment after the file went.
    await wait_for_async(lambda: _closed(actor), what="the close recorded")
    assert [verb for verb, _, _ in actor.crossed].count("close") == 1


async def test_a_range_and_head_are_answered_as_for_a_local_file(
    host: Path, monkeypatch: pytest.MonkeyPatch, client: httpx.AsyncClient
) -> None:
    sessions = Sessions(host, 3 * BATCH, None)
    actor = _on(monkeypatch, sessions)
    start = BATCH + 10
    got = await client.get("/recording", headers={"Range": f"bytes={start}-{start + 99}"})
    assert got.status_code == 206
    assert got.headers["content-range"] == f"bytes {start}-{start + 99}/{sessions.size}"
    assert len(got.content) == 100
    assert [args[1] for verb, args, _ in actor.crossed if verb == "read"] == [start]
    await wait_for_async(lambda: _empty(host), what="the range's export removed")

    head = await client.head("/recording")
    assert head.status_code == 200 and head.headers["content-length"] == str(sessions.size)
    assert head.content == b""
    beyond = await client.get("/recording", headers={"Range": f"bytes={4 * BATCH}-"})
    assert beyond.status_code == 416
    await wait_for_async(lambda: _empty(host), what="every export removed")


async def _closed(actor: Actor) -> bool:
    return bool(actor.crossed) and actor.crossed[-1][0] == "close"


async def _empty(directory: Path) -> bool:
    return not await asyncio.to_thread(os.listdir, directory)


async def test_the_hosts_refusals_and_a_session_never_started_are_the_one_process_errors(
    host: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _on(monkeypatch, Sessions(host, 0, errors.Conflict("Nothing is recorded yet")))
    with pytest.raises(errors.Conflict, match="Nothing is recorded yet"):
        await remote_recordings.open_download("s1", "host-a")

    def no_actor(session_id: str) -> Any:
        raise ValueError("Failed to look up actor")  # what ray.get_actor raises

    monkeypatch.setattr(naming, "session_actor", no_actor)
    # A session whose desktop never started (no host) has no recording: one process's 404.
    with pytest.raises(errors.NotFound, match='"record": true'):
        await remote_recordings.open_download("s1", None)
    with pytest.raises(errors.NotFound, match='"record": true'):
        await remote_recordings.recording_state("s1", None)


async def test_an_export_nobody_reads_is_removed_after_its_idle_time(host: Path) -> None:
    """Its replica died mid-download: the host's export goes after `idle` seconds unread."""
    sessions = Sessions(host, BATCH, None)
    exports = RecordingExports(lambda: cast(RecordingSource, sessions), "s1", idle=0.4)
    opened = await exports.call("export")
    read = await exports.call("read", opened["transfer"], 0, 10)
    assert len(read) == 10 and len(exports) == 1
    await wait_for_async(lambda: _empty(host), timeout=10, what="the unread export removed")
    assert len(exports) == 0
    with pytest.raises(errors.Conflict, match="has ended"):
        await exports.call("read", opened["transfer"], 10, 10)
    await exports.close_all()
