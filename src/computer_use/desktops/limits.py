"""Per-session resource limits: one cgroup per session user, with a memory, a task and a CPU cap.

cgroup v2 when it is the only hierarchy (`/sys/fs/cgroup/cgroup.controllers` exists), else the
v1 `memory`, `pids` and (when mounted) `cpu` hierarchies. CPU: every session's group has the
same weight, so under contention sessions share the CPU equally whatever their number of
processes, and a quota (`cpu_limit` CPUs, `cpu.max` / `cpu.cfs_quota_us`) caps each one even
on an idle host, so a hog never takes every core.

Groups are made under our own cgroup where we can (so the sessions stay inside whatever limit
the host gives this service), named after the manager's user prefix so two managers on one
host never share one.

The launcher moves each program into the group *before* it execs anything of the session
(`enter_argv()`), so not even a fork in the first instruction escapes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000
# Moves the shell into every cgroup.procs file given (count first), then execs the rest: the
# pid, and so everything it forks, is in the groups before the session's program runs.
ENTER_SCRIPT = (
    'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ >"$1" || exit 126; shift; n=$((n-1)); done; '
    'exec "$@"'
)


@dataclass(frozen=True)
class SessionCgroup:
    """The cgroup directories of one session (one for v2; memory, pids and cpu for v1)."""

    dirs: tuple[Path, ...]

    def enter_argv(self) -> list[str]:
        procs = [str(d / "cgroup.procs") for d in self.dirs]
        return ["/bin/sh", "-c", ENTER_SCRIPT, "cgroup-enter", str(len(procs)), *procs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return found

    def remove(self) -> None:
        """Remove the groups (their processes must be gone; a busy group is left and logged)."""
        for d in self.dirs:
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("cannot remove cgroup %s: %s", d, exc)


class ResourceLimits:
    """Creates each session's cgroup with `memory_mb` and `max_processes` (tasks, threads
    included: that is what the kernel counts). `enabled`/`reason` say whether it works here."""

    def __init__(
        self, *, memory_mb: int, max_processes: int, name: str, cpu_limit: float = 0.0
    ) -> None:
        self.memory_mb = memory_mb
        self.max_processes = max_processes
        self.cpu_limit = cpu_limit  # CPUs per session; 0: no quota (equal weights only)
        self.cpu_reason: str | None = "not set up"
        self.name = f"computer-use-{name}"
        self.version: str | None = None
        self.enabled = False
        self.reason: str | None = "not set up"
        self._parents: tuple[Path, ...] = ()

    def setup(self) -> None:
        """Find the hierarchies and create our parent groups; never raises (degrades)."""
        if os.geteuid() != 0:
            self._off("not root")
            return
        try:
            if (CGROUP_ROOT / "cgroup.controllers").is_file():
                self.version = "v2"
                self._parents = (self._setup_v2(),)
            else:
                self.version = "v1"
                self._parents = tuple(self._setup_v1(c) for c in ("memory", "pids"))
                try:
                    self._parents += (self._setup_v1("cpu"),)
                    self.cpu_reason = None
                except (OSError, ValueError) as exc:
                    self.cpu_reason = str(exc)
        except (OSError, ValueError) as exc:
            self._off(str(exc))
            return
        self.enabled, self.reason = True, None

    def create(self, group: str) -> SessionCgroup | None:
        """A fresh group named `group` with the limits written; None when limits are off."""
        if not self.enabled:
            return None
        memory = self.memory_mb * 1024 * 1024
        dirs = tuple(parent / group for parent in self._parents)
        for d in dirs:
            d.mkdir(exist_ok=True)
        if self.version == "v2":
            (d,) = dirs
            _write(d / "memory.max", memory)
            _write(d / "memory.swap.max", 0, optional=True)
            _write(d / "pids.max", self.max_processes)
            if self.cpu_reason is None:
                quota = "max" if self.cpu_limit <= 0 else int(self.cpu_limit * CPU_PERIOD_US)
                _write(d / "cpu.max", f"{quota} {CPU_PERIOD_US}")
        else:
            memory_dir, pids_dir, *cpu_dir = dirs
            # With swap, the memory+swap cap must be set too or a hog just swaps. The kernel
            # wants memsw >= memory at every step: lift it, set memory, then lower it.
            _write(memory_dir / "memory.memsw.limit_in_bytes", -1, optional=True)
            _write(memory_dir / "memory.limit_in_bytes", memory)
            _write(memory_dir / "memory.memsw.limit_in_bytes", memory, optional=True)
            _write(pids_dir / "pids.max", self.max_processes)
            for d in cpu_dir:
                _write(d / "cpu.cfs_period_us", CPU_PERIOD_US)
                quota = -1 if self.cpu_limit <= 0 else int(self.cpu_limit * CPU_PERIOD_US)
                _write(d / "cpu.cfs_quota_us", quota)
        return SessionCgroup(dirs)

    def remove_all(self) -> None:
        """Remove the (empty) session groups and our parents, e.g. at shutdown."""
        for parent in self._parents:
            if not parent.is_dir():
                continue
            for child in parent.iterdir():
                if child.is_dir():
                    SessionCgroup((child,)).remove()
            with contextlib.suppress(OSError):
                parent.rmdir()

    def health(self) -> dict[str, object]:
        return {
            "enabled": self.enabled,
            "reason": self.reason,
            "cgroup": self.version,
            "memory_limit_mb": self.memory_mb if self.enabled else None,
            "max_processes": self.max_processes if self.enabled else None,
        }

    def cpu_health(self) -> dict[str, object]:
        enabled = self.enabled and self.cpu_reason is None
        return {
            "enabled": enabled,
            "reason": None if enabled else (self.reason or self.cpu_reason),
            "cpus_per_session": (self.cpu_limit or None) if enabled else None,
        }

    def _setup_v2(self) -> Path:
        controllers = (CGROUP_ROOT / "cgroup.controllers").read_text().split()
        missing = {"memory", "pids"} - set(controllers)
        if missing:
            raise ValueError(f"cgroup v2 lacks the {', '.join(sorted(missing))} controller")
        wanted = "+memory +pids"
        if "cpu" in controllers:
            wanted += " +cpu"
            self.cpu_reason = None
        else:
            self.cpu_reason = "cgroup v2 lacks the cpu controller"
        # The root is exempt from "no processes in inner groups"; ours usually is not.
        parent = CGROUP_ROOT / self.name
        _write(CGROUP_ROOT / "cgroup.subtree_control", wanted)
        parent.mkdir(exist_ok=True)
        _write(parent / "cgroup.subtree_control", wanted)
        return parent

    def _setup_v1(self, controller: str) -> Path:
        root = CGROUP_ROOT / controller
        if not (root / "cgroup.procs").is_file():
            raise ValueError(f"cgroup v1 {controller} controller is not mounted")
        parent = root / _own_v1_path(controller).lstrip("/") / self.name
        if not parent.parent.is_dir():  # a cgroup namespace hides our path: use the root
            parent = root / self.name
        parent.mkdir(exist_ok=True)
        return parent

    def _off(self, reason: str) -> None:
        self.enabled, self.reason = False, reason
        logger.warning("per-session resource limits are off: %s", reason)


def _own_v1_path(controller: str) -> str:
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            if controller in names.split(","):
                return path
    return "/"


def _write(path: Path, value: object, *, optional: bool = False) -> None:
    try:
        path.write_text(f"{value}\n")
    except FileNotFoundError:
        if not optional:
            raise
