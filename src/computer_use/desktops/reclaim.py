"""Giving the host back the memory a session's browser has freed but the kernel still counts.

Firefox's allocator returns the pages it no longer needs with `madvise(MADV_FREE)`: the kernel
may take them whenever it wants memory, but until then they stay mapped and count in the
process's resident set and PSS (`LazyFree` in /proc/PID/smaps_rollup). A session whose browser
has just started holds ~25 MiB of them, more after pages came and went: memory that is free
for the kernel and looks used to everyone else (the host's monitoring, capacity planning,
bench/density.py).

Every `interval` seconds the sweep asks the kernel to page out the private anonymous memory of
each process of every session whose browser is up (`process_madvise(MADV_PAGEOUT)`, Linux
5.10+, root). Without swap the kernel can page out only anonymous pages that need no saving,
which are exactly those lazily freed ones; everything the programs still use stays where it
is, and files (shared libraries, caches) are not touched. A sweep takes ~20 ms per session with
its browser up (bench/density.py, 10 sessions).

Before paging out, the sweep asks each browser that has been quiet since the previous sweep
to minimize its memory, once per quiet spell (minimize.py): what Firefox frees then is paged
out by the next sweep.

With swap the same call would write the sessions' live memory out to disk, so the sweep only
runs on a host without swap. health() says whether it runs and why not.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import mmap
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from computer_use.desktops.minimize import Minimizer
from computer_use.desktops.process import live_pids_of_uids

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
MEMINFO = Path("/proc/meminfo")
SYS_PROCESS_MADVISE = 440  # the same number on every architecture (5.10+)
MADV_PAGEOUT = 21
IOV_BATCH = 512  # ranges per call (the kernel takes at most IOV_MAX, 1024)


# Its own handle on libc's syscall(): the result is a byte count (a long), not an int.
_SYSCALL = ctypes.CDLL(None, use_errno=True).syscall
_SYSCALL.restype = ctypes.c_long


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def host_has_swap(meminfo: Path = MEMINFO) -> bool:
    for line in meminfo.read_text().splitlines():
        if line.startswith("SwapTotal:"):
            return int(line.split()[1]) > 0
    return False


def anonymous_ranges(maps: str) -> list[tuple[int, int]]:
    """(start, length) of the private writable anonymous mappings in a /proc/PID/maps text:
    the heaps, where freed pages are; never a file's pages."""
    ranges = []
    for line in maps.splitlines():
        fields = line.split()
        anonymous = len(fields) == 5 or (len(fields) == 6 and fields[5] == "[heap]")
        if anonymous and fields[1].startswith("rw") and fields[1][3] == "p":
            start, end = (int(x, 16) for x in fields[0].split("-"))
            ranges.append((start, end - start))
    return ranges


def resident(pid: int) -> int:
    """The process's resident set in bytes (/proc/PID/statm: cheap, no page walk)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def page_out(pid: int) -> int:
    """Ask the kernel to page out `pid`'s anonymous memory; the bytes its resident set lost.
    Raises OSError (ESRCH: it exited; EINVAL: a mapping that cannot be paged out, e.g. locked;
    EPERM, ENOSYS: the host does not allow it)."""
    before = resident(pid)
    _page_out(pid, anonymous_ranges(Path(f"/proc/{pid}/maps").read_text()))
    return max(0, before - resident(pid))


def _page_out(pid: int, ranges: list[tuple[int, int]]) -> None:
    pidfd = os.pidfd_open(pid)
    try:
        for at in range(0, len(ranges), IOV_BATCH):
            batch = ranges[at : at + IOV_BATCH]
            iov = (_Iovec * len(batch))(*(_Iovec(start, length) for start, length in batch))
            call = (ctypes.c_long(SYS_PROCESS_MADVISE), ctypes.c_int(pidfd), iov)
            if _SYSCALL(*call, ctypes.c_size_t(len(batch)), MADV_PAGEOUT, ctypes.c_uint(0)) < 0:
                code = ctypes.get_errno()
                if code != errno.ENOMEM:  # a range unmapped since we read maps: go on
                    raise OSError(code, os.strerror(code))
    finally:
        os.close(pidfd)


def refusal() -> str | None:
    """Why this host will not page out (one page of our own, tried), or None."""
    page = mmap.mmap(-1, PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        view = ctypes.c_char.from_buffer(page)
        address = ctypes.addressof(view)
        del view  # the mapping cannot close while a ctypes object points into it
        _page_out(os.getpid(), [(address, PAGE)])
    except OSError as exc:
        return f"process_madvise(MADV_PAGEOUT) refused: {exc.strerror}"
    finally:
        page.close()
    return None


class MemoryReclaimer:
    """Sweeps the sessions every `interval` seconds (0: off); see the module's docstring.
    `session_users` gives the uids of the sessions whose browser is up: every process of
    those users is paged out."""

    def __init__(self, interval: float, session_users: Callable[[], Iterable[int]]) -> None:
        self.interval = interval
        self._session_users = session_users
        self.reason: str | None = "not started"
        self.reclaimed = 0  # bytes, since start
        self.sweeps = 0
        self.minimizer = Minimizer()
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.reason is None

    def start(self, *, session_users: bool) -> None:
        """`session_users`: each session's processes run as its own user (root only)."""
        if self.interval <= 0:
            self.reason = "MEMORY_RECLAIM_INTERVAL is 0"
        elif not session_users:
            self.reason = "no dedicated session users (needs root)"
        elif host_has_swap():
            self.reason = "the host has swap: paging out would write the sessions' memory to it"
        else:
            self.reason = refusal()
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="memory-reclaim")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def sweep(self) -> int:
        """One pass over the sessions; the bytes freed."""
        freed = await asyncio.to_thread(self._sweep, set(self._session_users()))
        self.reclaimed += freed
        self.sweeps += 1
        return freed

    def _sweep(self, uids: set[int]) -> int:
        pids = live_pids_of_uids(uids) if uids else []
        self.minimizer.step(pids)
        freed = 0
        for pid in pids:
            try:
                freed += page_out(pid)
            except (FileNotFoundError, ProcessLookupError):  # ESRCH included
                continue  # exited meanwhile
            except OSError as exc:
                if exc.errno == errno.EINVAL:  # a mapping it cannot page out
                    continue
                self.reason = f"process_madvise(MADV_PAGEOUT) refused: {exc.strerror}"
                logger.warning("memory reclaim is off: %s", self.reason)
                break
        return freed

    async def _run(self) -> None:
        while self.enabled:
            await asyncio.sleep(self.interval)
            await self.sweep()

    def health(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "reason": self.reason,
            "interval_s": self.interval if self.enabled else None,
            "reclaimed_mib": round(self.reclaimed / MIB, 1),
            "sweeps": self.sweeps,
            "browsers_minimized": self.minimizer.minimized,
        }
