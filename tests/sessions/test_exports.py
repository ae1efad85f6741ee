"""A recorded session with a short scripted run: the video is valid and as long as the
recording ran, every action marker falls inside it, the trajectory zip holds every step with
its screenshot, and deleting the session mid-recording leaves no process and no file."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from computer_use.loopback import LoopbackModelServer
from tests.helpers import ServerProcess, wait_for_async
from tests.sessions.conftest import MODEL_KEY, run_to_completion, start_server


@pytest.fixture(scope="module")
async def server(
    shell_model_server: LoopbackModelServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("exports")
    proc = await start_server(
        data_dir,
        MAX_DISPLAYS="2",
        DESKTOP_DISPLAY_BASE="1440",
        DESKTOP_USER_PREFIX="cu-te",
        ANTHROPIC_API_KEY=MODEL_KEY,
        ANTHROPIC_BASE_URL=shell_model_server.base_url,
    )
    yield proc
    proc.stop()


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        yield client


def ffprobe_video(path: Path) -> tuple[float, int, int]:
    """An MP4's duration, width and height; ffprobe fails on anything else."""
    out = subprocess.run(
        [
            "ffprobe", "-v", "error", "-select_streams", "v:0",
            "-show_entries", "format=duration,format_name:stream=width,height",
            "-of", "json", str(path),
        ],
        capture_output=True,
        check=True,
        timeout=30,
    )  # fmt: skip
    probed = json.loads(out.stdout)
    assert "mp4" in probed["format"]["format_name"], probed
    (stream,) = probed["streams"]
    return float(probed["format"]["duration"]), stream["width"], stream["height"]


def ffmpeg_pids_writing(directory: Path) -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "ffmpeg" in cmdline and str(directory) in cmdline:
            pids.add(int(entry.name))
    return pids


async def test_a_recorded_run_plays_with_its_markers_and_exports_its_trajectory(
    http: httpx.AsyncClient, server: ServerProcess, tmp_path: Path
) -> None:
    # On the beta computer tool every action answers with a screenshot: each step has one.
    body = {"title": "recorded", "record": True, "model": "claude-sonnet-4-6"}
    created = await http.post("/api/v1/sessions", json=body)
    assert created.status_code == 201 and created.json()["recording"] is True
    sid = created.json()["id"]
    detail = await run_to_completion(http, sid, "click 120 240")

    timeline = (await http.get(f"/api/v1/sessions/{sid}/recording/timeline")).json()
    assert timeline["recording"] is True and len(timeline["parts"]) == 1
    started = timeline["parts"][0]["started_at"]
    asked_at = time.time()
    video = await http.get(f"/api/v1/sessions/{sid}/recording")
    answered_at = time.time()
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    path = tmp_path / "recording.mp4"
    await asyncio.to_thread(path.write_bytes, video.content)
    duration, width, height = await asyncio.to_thread(ffprobe_video, path)
    assert (width, height) == (1024, 768)
    recording_dir = Path(server.env["DATA_DIR"]) / "recordings" / sid

    async def export_removed() -> bool:  # once the response has ended
        return not await asyncio.to_thread(lambda: list(recording_dir.glob("export-*")))

    await wait_for_async(export_removed, timeout=10, what="the export file removed")
    # Everything recorded so far: from the desktop's start to a moment while the request was
    # served (a loaded host may take a while to close the part), give or take a second.
    window = (asked_at - started, answered_at - started)
    assert window[0] - 1.0 < duration < window[1] + 1.0, (duration, window)

    markers = timeline["markers"]
    assert [m["tool"] for m in markers] == ["computer", "computer"]
    assert markers[0]["input"] == {"action": "left_click", "coordinate": [120, 240]}
    for marker in markers:
        assert 0 <= marker["video_seconds"] <= duration, (marker, duration)
        assert marker["screenshot_url"] and marker["text"]
    assert markers[0]["video_seconds"] <= markers[1]["video_seconds"]

    # The trajectory round-trips: every step of the history, each with its screenshot.
    archive = await http.get(f"/api/v1/sessions/{sid}/trajectory")
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        meta = json.loads(zf.read("trajectory.json"))
        lines = [json.loads(line) for line in zf.read("steps.jsonl").splitlines()]
        shots = {name: zf.read(name) for name in zf.namelist() if name.startswith("screenshots/")}
    assistant = [m for m in detail["messages"] if m["role"] == "assistant"]
    assert meta["version"] == 1 and meta["steps"] == len(lines) == len(assistant) == 3
    assert lines[0]["prompt"] == "click 120 240" and lines[0]["thinking"] == "Where to?"
    for line, message in zip(lines, assistant, strict=True):
        uses = [b for b in message["content"] if b["type"] == "tool_use"]
        assert [(c["id"], c["name"], c["input"]) for c in line["tool_calls"]] == [
            (u["id"], u["name"], u["input"]) for u in uses
        ]
        assert line["usage"] == message["usage"] and line["duration_seconds"] >= 0
        for call in line["tool_calls"]:
            image = await http.get(_image_url_of(detail, call["id"]))
            assert shots[call["screenshot"]] == image.content  # the same screenshot
    assert lines[-1]["tool_calls"] == [] and lines[-1]["text"] == "done"
    assert len(shots) == 2

    # Deleting mid-recording: ffmpeg is stopped and its files go with the session.
    directory = Path(server.env["DATA_DIR"]) / "recordings" / sid
    assert ffmpeg_pids_writing(directory)
    assert (await http.delete(f"/api/v1/sessions/{sid}")).status_code == 204
    assert not ffmpeg_pids_writing(directory)
    assert not await asyncio.to_thread(directory.exists)
    assert (await http.get(f"/api/v1/sessions/{sid}/recording")).status_code == 404


def _image_url_of(detail: dict[str, Any], tool_use_id: str) -> str:
    for message in detail["messages"]:
        for block in message["content"]:
            if block.get("type") == "tool_result" and block["tool_use_id"] == tool_use_id:
                return str(
                    next(c["source"]["url"] for c in block["content"] if c["type"] == "image")
                )
    raise AssertionError(f"no screenshot for {tool_use_id}")


async def test_a_session_without_record_has_no_recording_and_a_restart_adds_a_part(
    http: httpx.AsyncClient, server: ServerProcess
) -> None:
    plain = (await http.post("/api/v1/sessions", json={"title": "plain"})).json()
    assert plain["recording"] is False
    missing = await http.get(f"/api/v1/sessions/{plain['id']}/recording")
    assert missing.status_code == 404 and "record" in missing.json()["error"]["message"]

    sid = (await http.post("/api/v1/sessions", json={"record": True})).json()["id"]
    directory = Path(server.env["DATA_DIR"]) / "recordings" / sid
    await asyncio.to_thread(server.stop)  # SIGTERM: ffmpeg finishes its segment and exits
    assert not ffmpeg_pids_writing(directory)
    await asyncio.to_thread(server.start)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as again:

        async def two_parts() -> list[dict[str, Any]] | None:
            timeline = (await again.get(f"/api/v1/sessions/{sid}/recording/timeline")).json()
            parts: list[dict[str, Any]] = timeline["parts"]
            return parts if len(parts) == 2 else None

        parts = await wait_for_async(two_parts, timeout=20, what="a second recording part")
        assert parts[0]["ended_at"] is not None and parts[1]["ended_at"] is None
        video = await again.get(f"/api/v1/sessions/{sid}/recording")
        assert video.status_code == 200
        for session_id in (sid, plain["id"]):
            await again.delete(f"/api/v1/sessions/{session_id}")
