"""A recording's export across the cluster without Ray's transport: the replica's
export_recording against the host's RecordingExports (an actor stand-in that calls it
directly) copies the host's MP4 byte for byte in chunks of at most 1 MiB, removes the host's
export file, and passes on the host's refusals; a session whose desktop never
started (no actor, no host) is the one-process 404."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import pytest

from computer_use import errors
from computer_use.desktops.files import BATCH

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
    """An actor method's `.remote`: runs the call at once, recording what crossed."""

    def __init__(self, exports: RecordingExports, crossed: list[Any]) -> None:
        self.exports, self.crossed = exports, crossed

    async def remote(self, verb: str, *args: Any) -> Any:
        result = await self.exports.call(verb, *args)
        self.crossed.append((verb, result))
        return result


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


async def test_an_export_crosses_in_bounded_chunks_and_leaves_nothing_on_the_host(
    host: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = Sessions(host, 2 * BATCH + 12345, None)
    actor = _on(monkeypatch, sessions)
    path = await remote_recordings.export_recording("s1", "host-a")
    try:
        reads = [len(result) for verb, result in actor.crossed if verb == "read"]
        assert reads == [BATCH, BATCH, 12345, 0]
        assert path.stat().st_size == sessions.size
        assert not os.listdir(host), "the host's export file is removed"
        assert [verb for verb, _ in actor.crossed][-1] == "close"
    finally:
        path.unlink()


async def test_the_hosts_refusals_and_a_gone_actor_are_the_one_process_errors(
    host: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _on(monkeypatch, Sessions(host, 0, errors.Conflict("Nothing is recorded yet")))
    with pytest.raises(errors.Conflict, match="Nothing is recorded yet"):
        await remote_recordings.export_recording("s1", "host-a")

    def no_actor(session_id: str) -> Any:
        raise ValueError("Failed to look up actor")  # what ray.get_actor raises

    monkeypatch.setattr(naming, "session_actor", no_actor)
    # A session whose desktop never started (no host) has no recording: one process's 404.
    with pytest.raises(errors.NotFound, match='"record": true'):
        await remote_recordings.export_recording("s1", None)
    with pytest.raises(errors.NotFound, match='"record": true'):
        await remote_recordings.recording_state("s1", None)
