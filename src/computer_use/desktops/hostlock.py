"""One live instance per session-user prefix and per display: host-wide `flock`s.

A DesktopManager owns everything named after its user prefix (users, nftables chain, cgroups)
and every display of its range, and reclaims them at start (kills their processes, removes
their files). Two live instances sharing either would destroy each other, so before touching
anything the manager locks `prefix-<prefix>.lock` and `display-<n>.lock` for each display of
its range, under /run/computer-use/locks (root) or the temp dir. The kernel drops a flock when
its holder dies, so a crashed instance's locks are simply taken over (and start() reclaims
its orphans as usual). Within one process the same locks may be taken again (counted).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
from pathlib import Path

from computer_use.desktops.errors import DesktopError


class InstanceLockError(DesktopError):
    """Another live instance uses this user prefix or one of these displays."""


def lock_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/run/computer-use/locks")
    return Path(tempfile.gettempdir()) / f"computer-use-{os.getuid()}" / "locks"


_held: dict[Path, tuple[int, int]] = {}  # path -> (fd, count), this process's
_guard = threading.Lock()


class InstanceLock:
    def __init__(self, *, prefix: str, display_base: int, max_displays: int) -> None:
        self.prefix = prefix
        self.first = display_base + 1
        self.last = display_base + max_displays
        self._paths: list[Path] = []

    @property
    def held(self) -> bool:
        return bool(self._paths)

    def acquire(self) -> None:
        """Take every lock or none; InstanceLockError names the setting to change."""
        if self._paths:
            return
        directory = lock_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        wanted = [(directory / f"prefix-{self.prefix}.lock", "DESKTOP_USER_PREFIX")]
        wanted += [
            (directory / f"display-{n}.lock", "DESKTOP_DISPLAY_BASE")
            for n in range(self.first, self.last + 1)
        ]
        taken: list[Path] = []
        try:
            for path, setting in wanted:
                holder = _take(path)
                if holder is not None:
                    raise InstanceLockError(self._message(setting, path, holder))
                taken.append(path)
        except BaseException:
            for path in taken:
                _give_back(path)
            raise
        self._paths = taken

    def release(self) -> None:
        for path in self._paths:
            _give_back(path)
        self._paths = []

    def _message(self, setting: str, path: Path, holder: str) -> str:
        what = (
            f"DESKTOP_USER_PREFIX={self.prefix}"
            if setting == "DESKTOP_USER_PREFIX"
            else f"display :{path.stem.removeprefix('display-')} of DESKTOP_DISPLAY_BASE="
            f"{self.first - 1} (displays :{self.first}-:{self.last})"
        )
        return (
            f"another instance ({holder}) is running with {what}; give this one its own "
            "DESKTOP_USER_PREFIX and a DESKTOP_DISPLAY_BASE range that does not overlap"
        )


def _take(path: Path) -> str | None:
    """Lock `path`; None on success, else a description of the holder."""
    with _guard:
        if path in _held:
            fd, count = _held[path]
            _held[path] = (fd, count + 1)
            return None
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            return f"pid {holder}" if holder else "unknown pid"
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[path] = (fd, 1)
        return None


def _give_back(path: Path) -> None:
    with _guard:
        if path not in _held:
            return
        fd, count = _held.pop(path)
        if count > 1:
            _held[path] = (fd, count - 1)
            return
        with contextlib.suppress(OSError):
            os.close(fd)  # closing drops the flock; the file stays (unlinking would race)
