"""Asking an idle session's Firefox to give back its caches, once per quiet spell.

A browser that has drawn a page keeps what drawing it needed: WebRender's render targets and
texture atlas (~45 MiB allocated in a session's Firefox on a blank page), JavaScript's spare
GC chunks and buffers, style caches. Firefox frees them all on "minimize memory usage" (the
button in about:memory): three memory-pressure notifications, garbage and cycle collections in
the parent and the content processes. From outside, the one way to ask for it is the real-time
signal SIGRTMIN+1, which minimizes and then writes a memory report (a ~40 KiB .json.gz) into
the process's TMPDIR; without a writable TMPDIR it does neither. What it frees goes back to
the allocator, which hands it to the kernel lazily (MADV_FREE): the memory reclaim's next
page-out (reclaim.py) makes it free on the host. bench/density.py measures what it saves.

The reclaim's sweep calls `Minimizer.step` with the processes of the sessions whose browser is
up (the one /proc scan it pages out too). A browser (the Firefox parent process of a session's
user) is minimized once it used under `QUIET_CPU` of a core since the previous sweep, and
again only after it has been busy since: an idle session is minimized once, not every sweep,
and a session the agent is driving is left alone. The signal goes only to a process that has
a handler for it (/proc/PID/status SigCgt): a Firefox still starting would be killed by it.
The next step deletes the report from the session's /tmp.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from computer_use.desktops.display import FIREFOX

logger = logging.getLogger(__name__)

SIGNAL = signal.SIGRTMIN + 1  # Firefox: minimize memory usage, then dump a memory report
QUIET_CPU = 0.02  # of one core, averaged since the previous sweep
GIVE_UP_STEPS = 3  # a report that has not appeared after this many steps: stop waiting
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class _Browser:
    cpu: float  # seconds of CPU at the last step
    at: float  # when (monotonic)
    minimized: bool = False  # since it was last busy
    waiting: int = 0  # steps since the signal, while its report has not been removed


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` (/proc/PID/stat; the name field may hold spaces)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def is_browser(pid: int) -> bool:
    """A Firefox parent process (not one of its content or helper processes)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return os.path.basename(argv[0]) == FIREFOX.encode() and b"-contentproc" not in argv


def handles(pid: int, signum: int) -> bool:
    """Whether `pid` has a handler for `signum` (else the signal's default, ending it)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def reports(pid: int) -> list[Path]:
    """The memory reports `pid` wrote into its /tmp (its TMPDIR under the session's sandbox:
    the private /tmp of its mount namespace, seen through /proc/PID/root), finished or not."""
    tmp = Path(f"/proc/{pid}/root/tmp")
    name = f"unified-memory-report-*-{pid}.json.gz"
    return [*tmp.glob(name), *tmp.glob(f"incomplete-{name}")]


class Minimizer:
    """What each session's browser was doing at the last sweep; see the module's docstring."""

    def __init__(self) -> None:
        self.enabled = True  # bench/density.py measures without (`+nomin`)
        self._browsers: dict[int, _Browser] = {}
        self.minimized = 0  # browsers asked, since start

    def step(self, pids: Iterable[int]) -> None:
        """One sweep's look at the browsers among `pids`, the processes of the sessions whose
        browser is up (blocking: a thread)."""
        seen: dict[int, _Browser] = {}
        for pid in pids if self.enabled else []:
            with contextlib.suppress(OSError):  # exited while we looked
                if is_browser(pid):
                    seen[pid] = self._look(pid, self._browsers.get(pid))
        self._browsers = seen

    def minimized_browsers(self) -> list[int]:
        """The browsers minimized since they were last busy, their reports removed."""
        return [pid for pid, b in self._browsers.items() if b.minimized and not b.waiting]

    def settled(self) -> bool:
        """Every browser seen is minimized and its report gone (bench/density.py waits)."""
        return len(self.minimized_browsers()) == len(self._browsers)

    def _look(self, pid: int, known: _Browser | None) -> _Browser:
        now = _Browser(cpu=cpu_seconds(pid), at=time.monotonic())
        if known is None:
            return now
        if known.waiting:
            return self._collect(pid, known, now)
        now.minimized = known.minimized
        busy = now.cpu - known.cpu > QUIET_CPU * (now.at - known.at)
        if busy:
            now.minimized = False
        elif not known.minimized and handles(pid, SIGNAL):
            os.kill(pid, SIGNAL)
            self.minimized += 1
            now.minimized, now.waiting = True, 1
        return now

    def _collect(self, pid: int, known: _Browser, now: _Browser) -> _Browser:
        """Remove the report of the minimize asked for earlier, once it is written; the CPU
        that minimize took does not count as the browser being busy."""
        written = reports(pid)
        finished = [p for p in written if not p.name.startswith("incomplete-")]
        now.minimized = True
        if finished or known.waiting >= GIVE_UP_STEPS:
            for report in written:
                with contextlib.suppress(FileNotFoundError):
                    report.unlink()
            if not finished:
                logger.info("firefox %d wrote no memory report after minimizing", pid)
        else:
            now.waiting = known.waiting + 1
        return now
