"""Kernel same-page merging (KSM) for the sessions' processes.

Twenty sessions run twenty copies of the same programs on the same kind of data: Firefox's
heaps after startup, Xvfb's framebuffers showing the same background, jwm and x11vnc. KSM
lets the kernel keep one copy of pages that are byte-for-byte identical (copy-on-write).

A process opts in with `prctl(PR_SET_MEMORY_MERGE, 1)` (Linux 6.4+); the flag is inherited
across fork and exec (6.7+), so setting it in each session program's child before exec
(`preexec`) covers everything a session starts. The kernel's merging thread only runs when
the host says so (`/sys/kernel/mm/ksm/run` = 1): a host-wide setting that costs some CPU for
scanning, so the service switches it on only when told to (KSM_START_HOST); otherwise
merging is on exactly when the host already runs KSM. health() says which, and what it saves.

Most of a session's memory with its browser up is Firefox's heap, and the heaps of twenty
Firefoxes differ, among other things, in the pointers they hold, because each process is laid
out at random addresses (ASLR). With `fixed_layout` (KSM_DISABLE_ASLR) the merged programs also
run without address-space randomisation (`personality(ADDR_NO_RANDOMIZE)`, inherited by their
children), so more of their pages come out identical (bench/density.py at 10 sessions: ~20 MiB
less per session than KSM alone). The price is an exploit mitigation: a browser bug is easier to
exploit when addresses are known, and every session has the same ones. Off unless asked for;
health() says when it is on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from computer_use.desktops.process import LIBC

logger = logging.getLogger(__name__)

KSM_DIR = Path("/sys/kernel/mm/ksm")
PR_SET_MEMORY_MERGE = 67
PR_GET_MEMORY_MERGE = 68
ADDR_NO_RANDOMIZE = 0x0040000
PERSONALITY_QUERY = 0xFFFFFFFF
MIB = 1024 * 1024
# What health() reports: the savings, and ksmd's pace (a page merges only once it is unchanged
# over two full scans, so the savings lag the browsers' start by a few scans).
COUNTERS = ("pages_shared", "pages_sharing", "full_scans", "pages_to_scan", "sleep_millisecs")


def _merge_this_process() -> None:
    """Runs in the child between fork and exec: nothing but the system call."""
    LIBC.prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0)


def _merge_this_process_fixed_layout() -> None:
    """Like _merge_this_process, and the program exec'd next runs without ASLR."""
    LIBC.prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0)
    LIBC.personality(LIBC.personality(PERSONALITY_QUERY) | ADDR_NO_RANDOMIZE)


def kernel_supports_merge() -> bool:
    return int(LIBC.prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0)) >= 0


def host_running() -> bool:
    try:
        return (KSM_DIR / "run").read_text().strip() == "1"
    except OSError:
        return False


def counters() -> dict[str, int]:
    out: dict[str, int] = {}
    for name in (*COUNTERS, "general_profit"):
        try:
            out[name] = int((KSM_DIR / name).read_text())
        except (OSError, ValueError):
            continue
    return out


def merging_pages(pid: int) -> int:
    """Pages of `pid` currently merged (0 if gone or unknown)."""
    try:
        return int(Path(f"/proc/{pid}/ksm_merging_pages").read_text())
    except (OSError, ValueError):
        return 0


class SessionKsm:
    def __init__(
        self, *, enabled: bool, start_host: bool = False, fixed_layout: bool = False
    ) -> None:
        self.requested = enabled
        self.start_host = start_host
        self.fixed_layout = fixed_layout
        self.reason: str | None = "not set up yet"  # None when merging is on

    def setup(self) -> None:
        """Decide whether sessions' processes are marked mergeable (and, when told to,
        switch the host's KSM on)."""
        self.reason = self._why_not()
        if self.reason is None:
            logger.info("KSM: session processes are marked mergeable")
            if self.fixed_layout:
                logger.warning("KSM: session programs run without ASLR (KSM_DISABLE_ASLR)")
        elif self.requested:
            logger.info("KSM: not merging: %s", self.reason)

    def _why_not(self) -> str | None:
        if not self.requested:
            return "off (KSM_MERGE=false)"
        if not (KSM_DIR / "run").exists():
            return "the kernel has no KSM (/sys/kernel/mm/ksm/run is missing)"
        if not kernel_supports_merge():
            return "the kernel has no PR_SET_MEMORY_MERGE (Linux 6.4+)"
        if not host_running() and self.start_host:
            try:
                (KSM_DIR / "run").write_text("1")
                logger.warning("KSM: switched on host-wide (/sys/kernel/mm/ksm/run = 1)")
            except OSError as exc:
                return f"cannot switch the host's KSM on: {exc}"
        if not host_running():
            return (
                "the host's KSM is off (/sys/kernel/mm/ksm/run = 0): set KSM_START_HOST=true "
                "or, as root, echo 1 > /sys/kernel/mm/ksm/run"
            )
        return None

    @property
    def active(self) -> bool:
        return self.reason is None

    def preexec(self) -> Callable[[], None] | None:
        """For SessionSandbox.spawn: marks each session program mergeable (and, with
        `fixed_layout`, switches its ASLR off), or None."""
        if not self.active:
            return None
        return _merge_this_process_fixed_layout if self.fixed_layout else _merge_this_process

    def health(self) -> dict[str, Any]:
        stats = counters()
        page = os.sysconf("SC_PAGE_SIZE")
        return {
            "enabled": self.active,
            "reason": self.reason,
            "aslr_disabled": self.active and self.fixed_layout,
            # pages_sharing: pages that point at a shared copy instead of their own
            "saved_mib": round(stats.get("pages_sharing", 0) * page / MIB, 1),
            **{name: stats.get(name, 0) for name in COUNTERS},
        }
