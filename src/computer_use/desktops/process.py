"""Host-side process helpers: run a helper with a deadline, collect its output, kill a
process group or every process of a uid, wait on a condition the kernel gives no event for."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import shutil
import signal
from collections.abc import Callable, Collection, Sequence
from subprocess import DEVNULL, PIPE

from computer_use.desktop_port import CommandResult
from computer_use.desktops.errors import DesktopError

# The C library through ctypes, loaded once at import: preexec steps (ksm.py, landlock.py,
# namespace.py) call into it in a forked child, where loading a library could deadlock.
LIBC = ctypes.CDLL(None, use_errno=True)

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
HELPER_TIMEOUT = 10.0
# After run()'s process exits, a background child may keep its pipes open: don't wait forever.
OUTPUT_GRACE = 1.0


class SandboxError(DesktopError):
    """The session's sandbox could not be created or is no longer usable."""


class CommandError(DesktopError):
    """A host-side helper (mount, useradd, ...) failed or hung."""

    def __init__(self, argv: Sequence[str], result: CommandResult) -> None:
        self.argv = list(argv)
        self.result = result
        detail = "timed out" if result.timed_out else f"exited {result.returncode}"
        stderr = result.stderr.decode(errors="replace").strip()
        super().__init__(f"{' '.join(argv)}: {detail}" + (f": {stderr}" if stderr else ""))


async def run_command(
    argv: Sequence[str],
    *,
    timeout: float = HELPER_TIMEOUT,
    check: bool = True,
    input: bytes | None = None,
) -> CommandResult:
    """Run a host-side helper as ourselves; its process group is killed on timeout."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=PIPE if input is not None else DEVNULL,
        stdout=PIPE,
        stderr=PIPE,
        start_new_session=True,
    )
    result = await collect(proc, timeout=timeout, input=input)
    if check and (result.timed_out or result.returncode != 0):
        raise CommandError(argv, result)
    return result


async def collect(
    proc: asyncio.subprocess.Process,
    *,
    timeout: float,
    input: bytes | None = None,
) -> CommandResult:
    """Wait for `proc` (a process group leader), feeding `input` and gathering its output.

    If the caller is cancelled, the process group is killed: nothing outlives its command.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    readers = [asyncio.ensure_future(_read_all(s)) for s in (proc.stdout, proc.stderr)]
    timed_out = False
    try:
        if proc.stdin is not None:
            # A program that exits without reading its input is not an error.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
                if input:
                    proc.stdin.write(input)
                    await asyncio.wait_for(proc.stdin.drain(), timeout)
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout=max(deadline - loop.time(), 0.0))
        except TimeoutError:
            timed_out = True
            kill_process_group(proc.pid)
            await proc.wait()
        grace = 0.2 if timed_out else min(OUTPUT_GRACE, max(deadline - loop.time(), 0.0))
        await asyncio.wait(readers, timeout=grace)
    except BaseException:
        kill_process_group(proc.pid)
        raise
    finally:
        for reader in readers:
            reader.cancel()
    stdout, stderr = (r.result() if r.done() and not r.cancelled() else b"" for r in readers)
    return CommandResult(
        returncode=None if timed_out else proc.returncode,
        stdout=stdout,
        stderr=stderr,
        timed_out=timed_out,
    )


async def _read_all(stream: asyncio.StreamReader | None) -> bytes:
    return b"" if stream is None else await stream.read()


def kill_process_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def live_pids_of_uid(uid: int) -> list[int]:
    """Pids whose real uid is `uid`; zombies (and the dead) are left to their parent."""
    return live_pids_of_uids({uid})


def live_pids_of_uids(uids: Collection[int]) -> list[int]:
    """Pids whose real uid is one of `uids` (one pass over /proc), zombies left out."""
    pids: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="utf-8", errors="replace") as f:
                status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        except OSError:
            continue  # exited while we looked
        if status.get("State", "").strip().startswith(("Z", "X")):
            continue
        if int(status.get("Uid", "-1").split()[0]) in uids:
            pids.append(int(entry.name))
    return pids


async def poll_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
) -> None:
    """Wait for a condition the kernel gives us no event for, with a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.001
    while not check():
        if loop.time() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


@functools.cache
def tool(name: str) -> str:
    path = shutil.which(name, path=os.environ.get("PATH", DEFAULT_PATH) + ":/usr/sbin:/sbin")
    if path is None:
        raise SandboxError(f"{name} not found: install util-linux / procps")
    return path
