"""Files of a session's HOME, read and written through the session's own sandbox.

Every operation runs `file_helper.py` with the sandbox's Python as the session user, in its
mount namespace and cgroup (SessionSandbox.spawn): the disk quota, file ownership and what
the session may reach hold exactly as for the agent's own programs, and the service never
opens a path of the session's home itself. Bytes stream through the helper's stdin/stdout
in chunks; nothing holds a whole file in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import struct
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import PIPE
from typing import Any, NoReturn, Protocol

from computer_use.desktops.errors import DesktopError
from computer_use.desktops.launcher import DEFAULT_PATH, SessionSandbox, kill_process_group

HELPER_SOURCE = Path(__file__).with_name("file_helper.py")
# Bytes per frame up and per body chunk down: bigger pieces, fewer event-loop rounds.
BATCH = 1024 * 1024
MAX_PATH = 4096
MAX_NAME = 255
# A helper that prints no header within this time is stuck (e.g. a hung network mount).
HEADER_TIMEOUT = 30.0
EXIT_TIMEOUT = 10.0


class FileAccessError(DesktopError):
    """The helper refused or failed: `code` says why (invalid_path, outside_home, not_found,
    not_a_directory, is_a_directory, not_a_file, quota, too_large, permission, aborted,
    failed)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[FileAccessError], tuple[str, str]]:
        # Pickled with its code: a desktop host's refusal reaches an API replica (Ray).
        return (FileAccessError, (self.code, self.message))


def clean_path(raw: str) -> str:
    """The path relative to HOME, with empty segments dropped; refuses NUL, `..`, `.`."""
    if "\x00" in raw:
        raise FileAccessError("invalid_path", "the path must not contain NUL characters")
    if len(raw) > MAX_PATH:
        raise FileAccessError("invalid_path", f"the path is longer than {MAX_PATH} characters")
    parts = [p for p in raw.split("/") if p]
    for part in parts:
        if part in (".", ".."):
            raise FileAccessError(
                "invalid_path", f"'{part}' is not allowed in a path; give it relative to HOME"
            )
        if len(part.encode()) > MAX_NAME:
            raise FileAccessError("invalid_path", f"a name is longer than {MAX_NAME} bytes")
    return "/".join(parts)


@functools.cache
def _helper_argv() -> list[str]:
    # The sandbox's python: the service's own interpreter may live where the session user
    # cannot read (a virtualenv under /root).
    python = shutil.which("python3", path=DEFAULT_PATH)
    if python is None:
        raise FileAccessError("failed", "python3 is not installed in PATH " + DEFAULT_PATH)
    return [python, "-I", "-S", "-c", HELPER_SOURCE.read_text()]


@dataclass
class FileStream:
    """A running helper whose header has been read; `body()` streams what follows."""

    header: dict[str, Any]
    proc: asyncio.subprocess.Process

    async def body(self) -> AsyncGenerator[bytes, None]:
        assert self.proc.stdout is not None
        try:
            while chunk := await _read_up_to(self.proc.stdout, BATCH):
                yield chunk
            await asyncio.wait_for(self.proc.wait(), EXIT_TIMEOUT)
            if self.proc.returncode != 0:
                # Too late for a status code: end the response short so the client sees it.
                raise FileAccessError("failed", f"reading stopped ({self.proc.returncode})")
        finally:
            await _finish(self.proc)

    async def close(self) -> None:
        await _finish(self.proc)


class SessionFiles:
    """The files API's verbs on one session's sandbox. `home` is HOME as the sandbox sees it."""

    def __init__(self, sandbox: SessionSandbox) -> None:
        self.sandbox = sandbox

    async def _start(self, op: str, path: str, *, stdin: int | None = None) -> Any:
        return await self.sandbox.spawn(
            [*_helper_argv(), op, self.sandbox.home_path, path],
            stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=PIPE,
            stderr=PIPE,
        )

    async def open(self, path: str, *, as_zip: bool = False) -> FileStream:
        """A file's bytes or a folder's listing (header only), or a folder as a zip."""
        proc = await self._start("zip" if as_zip else "read", clean_path(path))
        try:
            header = await _read_header(proc)
        except BaseException:
            await _finish(proc)
            raise
        return FileStream(header, proc)

    async def listing(self, path: str) -> dict[str, Any]:
        stream = await self.open(path)
        await stream.close()
        return stream.header

    async def upload(self, path: str, *, limit: int) -> Upload:
        """An upload to `path` the caller sends chunks to, then commits (or closes)."""
        rel = clean_path(path)
        if not rel:
            raise FileAccessError("invalid_path", "name the file to write, e.g. Uploads/a.txt")
        return Upload(await self._start("write", rel, stdin=PIPE), limit)

    async def write(self, path: str, chunks: AsyncIterator[bytes], *, limit: int) -> int:
        """Stores the chunks at `path` (parents created) under a temporary name, renamed in
        place only once every byte is written; past `limit` bytes nothing is kept."""
        upload = await self.upload(path, limit=limit)
        try:
            async for chunk in chunks:
                await upload.send(chunk)
            return await upload.commit()
        finally:
            await upload.close()

    async def delete(self, path: str) -> None:
        proc = await self._start("delete", clean_path(path))
        try:
            await _read_header(proc)
        finally:
            await _finish(proc)


@dataclass
class Upload:
    """A running `write` helper: `send` the bytes, then `commit`; `close` always (before a
    commit it stops the helper, which removes what it wrote)."""

    proc: asyncio.subprocess.Process
    limit: int
    total: int = 0
    pending: bytearray = field(default_factory=bytearray)

    async def send(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.total > self.limit:
            raise FileAccessError("too_large", f"the upload is over {self.limit} bytes")
        self.pending += chunk
        # Frames of BATCH bytes: a request arrives in small pieces, and each frame is a
        # round of writes and wake-ups in both processes.
        try:
            while len(self.pending) >= BATCH:
                self._frame(self.pending[:BATCH])
                del self.pending[:BATCH]
                await self._stdin().drain()
        except (BrokenPipeError, ConnectionResetError):
            await self._refused()

    async def commit(self) -> int:
        """The file is in place; its size."""
        stdin = self._stdin()
        try:
            if self.pending:
                self._frame(self.pending)
                self.pending.clear()
            self._frame(b"")  # commit
            await stdin.drain()
            stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the helper stopped reading: its header says why
        header = await _read_header(self.proc)
        await asyncio.wait_for(self.proc.wait(), EXIT_TIMEOUT)
        return int(header["size"])

    async def close(self) -> None:
        await _finish(self.proc)

    def _stdin(self) -> asyncio.StreamWriter:
        assert self.proc.stdin is not None
        return self.proc.stdin

    def _frame(self, data: bytes | bytearray) -> None:
        self._stdin().write(struct.pack(">I", len(data)) + data)

    async def _refused(self) -> NoReturn:
        """The helper stopped reading mid-upload: raises the refusal its header gives."""
        header = await _read_header(self.proc)
        raise FileAccessError("failed", f"the file helper stopped reading ({header})")


class FileBody(Protocol):
    """What `open` hands back: the header, then (a file, a zip) the bytes in chunks."""

    header: dict[str, Any]

    def body(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


class Files(Protocol):
    """A session's files as the routers use them: SessionFiles in the process holding the
    desktop, cluster.remote_files.RemoteFiles through a session actor on its host."""

    async def open(self, path: str, *, as_zip: bool = False) -> FileBody: ...

    async def listing(self, path: str) -> dict[str, Any]: ...

    async def write(self, path: str, chunks: AsyncIterator[bytes], *, limit: int) -> int: ...

    async def delete(self, path: str) -> None: ...


async def _read_up_to(stream: asyncio.StreamReader, size: int) -> bytes:
    """Up to `size` bytes: what the pipe has, topped up until `size` or end of file."""
    data = await stream.read(size)
    if not data:
        return data
    buffer = bytearray(data)
    while len(buffer) < size:
        more = await stream.read(size - len(buffer))
        if not more:
            break
        buffer += more
    return bytes(buffer)


async def _read_header(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), HEADER_TIMEOUT)
    except TimeoutError:
        raise FileAccessError("failed", "the session did not answer in time") from None
    if not line:
        await asyncio.wait_for(proc.wait(), EXIT_TIMEOUT)
        stderr = (await proc.stderr.read(4096)).decode(errors="replace").strip()
        last = stderr.splitlines()[-1] if stderr else f"exit status {proc.returncode}"
        raise FileAccessError("failed", f"the file helper failed: {last}")
    header: dict[str, Any] = json.loads(line)
    if "error" in header:
        raise FileAccessError(str(header["error"]), str(header.get("message", header["error"])))
    return header


async def _finish(proc: asyncio.subprocess.Process) -> None:
    """Stop (SIGTERM first: an unfinished upload removes its temporary file) and reap."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, 15)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), 5.0)
        except TimeoutError:
            kill_process_group(proc.pid)
            await proc.wait()
