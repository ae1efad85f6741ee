"""Screen recordings of session desktops: ffmpeg x11grab into MPEG-TS segments.

Layout under DATA_DIR (0700 root, out of every session's reach):

    recordings/<session id>/
        recording.json              {"parts": [{"started_at": epoch s, "ended_at": ...}], ...}
        part-0001-00000.ts ...      one part per desktop start (restart, restore), segmented

ffmpeg runs as the service, like the screenshot capture (capture.py): an X client with the
display's cookie from the service's XAUTHORITY, writing where the session cannot. Were it the
session user's, the agent could stop it or rewrite the evidence of what it did. It dies with
the server (PR_SET_PDEATHSIG, SIGTERM): MPEG-TS needs no trailer, so a segment cut anywhere
stays playable, and stop() (delete, expiry, shutdown) lets ffmpeg finish the current one.

`export()` joins every segment so far (the one being written included) into one MP4.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import DEVNULL, PIPE
from typing import Any

from computer_use.desktops.launcher import kill_process_group, poll_until, run_command

logger = logging.getLogger(__name__)

SEGMENT_SECONDS = 10
START_TIMEOUT = 10.0
STOP_GRACE = 5.0
EXPORT_TIMEOUT = 120.0
MAX_RESTARTS = 5
META = "recording.json"


@dataclass(frozen=True)
class RecordingState:
    """A recording's state: recording now, and its parts (recording.json's)."""

    recording: bool
    parts: list[dict[str, Any]]

    def video_seconds(self, moment: float) -> float | None:
        """Where in the exported video the wall-clock `moment` (epoch seconds) is, if any."""
        offset = 0.0
        for part in self.parts:
            start = part.get("started_at")
            if start is None:
                continue
            end = part.get("ended_at") or time.time()
            if start <= moment <= end:
                return round(float(offset + moment - start), 3)
            offset += max(0.0, end - start)
        return None


@dataclass
class _Live:
    proc: asyncio.subprocess.Process
    part: int
    stopping: bool = False
    watcher: asyncio.Task[None] | None = None
    restarts: int = 0
    stderr: list[str] = field(default_factory=list)


class Recordings:
    """Every session's recording: start with the desktop, stop, export, remove."""

    def __init__(self, data_dir: Path, *, fps: int) -> None:
        self.root = data_dir / "recordings"
        self.fps = fps
        self._live: dict[str, _Live] = {}
        self._targets: dict[str, tuple[str, int, int]] = {}

    def dir(self, session_id: str) -> Path:
        if "/" in session_id or session_id in ("", ".", ".."):
            raise ValueError(f"invalid session id {session_id!r}")
        return self.root / session_id

    def exists(self, session_id: str) -> bool:
        return (self.dir(session_id) / META).is_file()

    def is_recording(self, session_id: str) -> bool:
        live = self._live.get(session_id)
        return live is not None and live.proc.returncode is None

    def parts(self, session_id: str) -> list[dict[str, Any]]:
        try:
            meta = json.loads((self.dir(session_id) / META).read_text())
        except (OSError, ValueError):
            return []
        parts: list[dict[str, Any]] = meta.get("parts", [])
        return parts

    def state(self, session_id: str) -> RecordingState:
        """Whether it is recording now and its parts, as plain values (they cross the
        network from a Ray desktop host)."""
        return RecordingState(self.is_recording(session_id), self.parts(session_id))

    async def start(self, session_id: str, display: str, width: int, height: int) -> None:
        """Start recording `display` (a new part); failures are logged, never raised."""
        await self.stop(session_id)
        directory = self.dir(session_id)
        directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.mkdir(mode=0o700, exist_ok=True)
        self._targets[session_id] = (display, width, height)
        try:
            await self._start_part(session_id)
        except (OSError, TimeoutError, RuntimeError) as exc:
            logger.error("recording of %s did not start: %s", session_id, exc)

    async def _start_part(self, session_id: str, restarts: int = 0) -> None:
        display, width, height = self._targets[session_id]
        directory = self.dir(session_id)
        parts = self.parts(session_id)
        number = len(parts) + 1
        pattern = directory / f"part-{number:04d}-%05d.ts"
        proc = await asyncio.create_subprocess_exec(
            *_setpriv_pdeathsig(),
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
            "-f", "x11grab", "-framerate", str(self.fps), "-video_size", f"{width}x{height}",
            "-draw_mouse", "1", "-i", display,
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-crf", "30",
            "-pix_fmt", "yuv420p", "-g", str(self.fps * 2),
            "-f", "segment", "-segment_time", str(SEGMENT_SECONDS),
            "-segment_format", "mpegts", "-segment_format_options", "flush_packets=1",
            "-reset_timestamps", "0",
            str(pattern),
            stdin=DEVNULL, stdout=DEVNULL, stderr=PIPE,
            start_new_session=True,
        )  # fmt: skip
        live = _Live(proc=proc, part=number, restarts=restarts)
        self._live[session_id] = live
        first = directory / f"part-{number:04d}-00000.ts"
        try:
            await poll_until(
                lambda: proc.returncode is not None or _non_empty(first),
                timeout=START_TIMEOUT,
                what="the first recorded frame",
            )
        except TimeoutError:
            await self._kill(live)
            raise
        if proc.returncode is not None:
            err = await proc.stderr.read() if proc.stderr else b""
            self._live.pop(session_id, None)
            raise RuntimeError(f"ffmpeg exited {proc.returncode}: {err.decode()[-300:]}")
        # The first frame reached the file a frame's time (at most) after it was grabbed.
        started = time.time() - 1.0 / self.fps / 2
        self._write_parts(session_id, [*parts, {"started_at": started, "ended_at": None}])
        live.watcher = asyncio.create_task(self._watch(session_id, live))

    async def _watch(self, session_id: str, live: _Live) -> None:
        assert live.proc.stderr is not None
        while line := await live.proc.stderr.readline():
            live.stderr = [*live.stderr[-9:], line.decode(errors="replace").rstrip()]
        await live.proc.wait()
        self._end_part(session_id, live.part)
        if live.stopping or self._live.get(session_id) is not live:
            return
        # e.g. Xvfb restarted under it: carry on in a new part, a few times.
        logger.warning(
            "recording of %s stopped (%s): %s", session_id, live.proc.returncode, live.stderr
        )
        self._live.pop(session_id, None)
        if live.restarts < MAX_RESTARTS and session_id in self._targets:
            await asyncio.sleep(1.0)  # let the display come back
            if session_id in self._targets and session_id not in self._live:
                with contextlib.suppress(OSError, TimeoutError, RuntimeError):
                    await self._start_part(session_id, live.restarts + 1)

    async def stop(self, session_id: str) -> None:
        """Let ffmpeg finish the current segment and exit (SIGKILL after a grace period)."""
        self._targets.pop(session_id, None)
        live = self._live.pop(session_id, None)
        if live is None:
            return
        live.stopping = True
        if live.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(live.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(live.proc.wait()), STOP_GRACE)
            except TimeoutError:
                await self._kill(live)
        if live.watcher is not None:
            await asyncio.gather(live.watcher, return_exceptions=True)
        self._end_part(session_id, live.part)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(s) for s in list(self._live)), return_exceptions=True)

    async def remove(self, session_id: str) -> None:
        await self.stop(session_id)
        await asyncio.to_thread(shutil.rmtree, self.dir(session_id), True)

    async def reconcile(self, known: set[str]) -> None:
        """After a restart: recordings of sessions that no longer exist go."""
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if entry.name not in known:
                logger.info("deleting the recording of gone session %s", entry.name)
                await asyncio.to_thread(shutil.rmtree, entry, True)
            else:
                for leftover in entry.glob("export-*"):
                    leftover.unlink(missing_ok=True)

    async def export(self, session_id: str) -> Path:
        """One MP4 of every segment so far; the caller deletes it when sent."""
        directory = self.dir(session_id)
        segments = sorted(p for p in directory.glob("part-*.ts") if _non_empty(p))
        if not segments:
            raise FileNotFoundError(f"no recorded frames for {session_id} yet")
        token = secrets.token_hex(4)
        listing = directory / f"export-{token}.txt"
        output = directory / f"export-{token}.mp4"
        listing.write_text("".join(f"file '{p.name}'\n" for p in segments))
        try:
            await run_command(
                [
                    "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "concat", "-safe", "0", "-i", str(listing),
                    "-c", "copy", "-movflags", "+faststart", str(output),
                ],
                timeout=EXPORT_TIMEOUT,
            )  # fmt: skip
        except BaseException:
            output.unlink(missing_ok=True)
            raise
        finally:
            listing.unlink(missing_ok=True)
        return output

    def _end_part(self, session_id: str, number: int) -> None:
        parts = self.parts(session_id)
        if len(parts) >= number and parts[number - 1].get("ended_at") is None:
            parts[number - 1]["ended_at"] = time.time()
            with contextlib.suppress(OSError):
                self._write_parts(session_id, parts)

    def _write_parts(self, session_id: str, parts: list[dict[str, Any]]) -> None:
        meta = {"fps": self.fps, "parts": parts}
        path = self.dir(session_id) / META
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta))
        tmp.replace(path)

    async def _kill(self, live: _Live) -> None:
        kill_process_group(live.proc.pid)
        await live.proc.wait()


def _non_empty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _setpriv_pdeathsig() -> list[str]:
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig=TERM", "--"] if setpriv else []
