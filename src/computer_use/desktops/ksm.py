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
MIB = 1024 * 1024


def _merge_this_process() -> None:
    """Runs in the child between fork and exec: nothing but the system call."""
    LIBC.prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0)


def kernel_supports_merge() -> bool:
    return int(LIBC.prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0)) >= 0


def host_running() -> bool:
    try:
        return (KSM_DIR / "run").read_text().strip() == "1"
    except OSError:
        return False


def counters() -> dict[str, int]:
    out: dict[str, int] = {}
    for name in ("pages_shared", "pages_sharing", "general_profit"):
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
    def __init__(self, *, enabled: bool, start_host: bool = False) -> None:
        self.requested = enabled
        self.start_host = start_host
        self.reason: str | None = "not set up yet"  # None when merging is on

    def setup(self) -> None:
        """Decide whether sessions' processes are marked mergeable (and, when told to,
        switch the host's KSM on)."""
        self.reason = self._why_not()
        if self.reason is None:
            logger.info("KSM: session processes are marked mergeable")
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
        """For SessionSandbox.spawn: marks each session program mergeable, or None."""
        return _merge_this_process if self.active else None

    def health(self) -> dict[str, Any]:
        stats = counters()
        page = os.sysconf("SC_PAGE_SIZE")
        return {
            "enabled": self.active,
            "reason": self.reason,
            # pages_sharing: pages that point at a shared copy instead of their own
            "saved_mib": round(stats.get("pages_sharing", 0) * page / MIB, 1),
            "pages_shared": stats.get("pages_shared", 0),
            "pages_sharing": stats.get("pages_sharing", 0),
        }
