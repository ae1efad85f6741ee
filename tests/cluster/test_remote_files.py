"""The host's side of the files API across the cluster (FileTransfers), without a desktop: a
download nobody reads for its idle time is ended (its helper stopped), an unknown transfer is
refused as `aborted`, a download ends with its last chunk."""

from __future__ import annotations

import asyncio
from subprocess import PIPE
from typing import cast

import pytest

from computer_use.desktops.files import FileAccessError, FileStream, SessionFiles
from tests.helpers import wait_for_async

pytest.importorskip("ray", reason="the cluster extra: pip install -e '.[cluster]'")

from computer_use.cluster.remote_files import FileTransfers


class ShellFiles:
    """SessionFiles' `open` on a shell command's output instead of the sandboxed helper."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.procs: list[asyncio.subprocess.Process] = []

    async def open(self, path: str, *, as_zip: bool = False) -> FileStream:
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", self.command, stdout=PIPE, stderr=PIPE, start_new_session=True
        )
        self.procs.append(proc)
        return FileStream({"type": "file", "path": path, "size": 0}, proc)

    async def drain(self) -> None:
        """What the ended processes left in their pipes, so that their transports close."""
        for proc in self.procs:
            await asyncio.wait_for(proc.communicate(), 10)


def transfers(files: ShellFiles, *, idle: float = 300.0) -> FileTransfers:
    return FileTransfers(lambda: cast(SessionFiles, files), idle=idle)


async def test_an_idle_download_is_ended_and_its_process_stopped() -> None:
    files = ShellFiles("head -c 50000000 /dev/zero")  # more than the pipe holds
    host = transfers(files, idle=0.3)
    transfer, _ = await host.call("open", "big", False)
    assert len(await host.call("read", transfer)) > 0
    assert len(host) == 1

    async def ended() -> bool:  # and its process stopped (reaped a moment after the kill)
        return len(host) == 0 and files.procs[0].returncode is not None

    await wait_for_async(ended, timeout=10, what="the idle transfer's end and its process's")
    with pytest.raises(FileAccessError) as refused:
        await host.call("read", transfer)
    assert refused.value.code == "aborted"
    await files.drain()


async def test_a_download_ends_with_its_last_chunk_and_close_is_idempotent() -> None:
    files = ShellFiles("head -c 2500000 /dev/zero")
    host = transfers(files)
    transfer, header = await host.call("open", "f", False)
    assert header["type"] == "file"
    sizes: list[int] = []
    while chunk := await host.call("read", transfer):
        sizes.append(len(chunk))
    assert sum(sizes) == 2500000 and max(sizes) <= 1024 * 1024
    assert len(host) == 0
    await host.call("close", transfer)  # the replica's close after the end: nothing to do
    with pytest.raises(ValueError):
        await host.call("spawn", "x")
    await files.drain()


async def test_closing_an_unread_download_stops_its_process() -> None:
    files = ShellFiles("head -c 50000000 /dev/zero")
    host = transfers(files)
    transfer, _ = await host.call("open", "big", False)
    await host.call("close", transfer)
    assert len(host) == 0 and files.procs[0].returncode is not None
    await files.drain()
