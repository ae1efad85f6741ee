"""X authority cookies: one MIT-MAGIC-COOKIE-1 per display, never `-ac`.

Two files hold each cookie:
- the session's own Xauthority (owned by the session user, 0600), given to Xvfb with `-auth`
  and to every client of the session through XAUTHORITY;
- one service-side file, 0600 root, holding the cookies of every display this process talks
  to. Both libxcb (mss, for capture) and python-xlib (XTest input) read XAUTHORITY when they
  connect and offer no per-connection way to pass a cookie, so the process points XAUTHORITY
  at this file once, and the file is rewritten atomically as displays come and go.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import struct
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

COOKIE_NAME = b"MIT-MAGIC-COOKIE-1"
FAMILY_LOCAL = 256
FAMILY_WILD = 65535  # matches any host: survives a different hostname in the sandbox
_DIR_PREFIX = "computer-use-xauth-"


def new_cookie() -> bytes:
    return secrets.token_bytes(16)


@dataclass(frozen=True)
class AuthEntry:
    family: int
    address: bytes
    display_number: int
    cookie: bytes

    def encode(self) -> bytes:
        fields = (self.address, str(self.display_number).encode(), COOKIE_NAME, self.cookie)
        out = struct.pack(">H", self.family)
        for field in fields:
            out += struct.pack(">H", len(field)) + field
        return out


def write_authority(
    path: Path, entries: list[AuthEntry], *, uid: int | None = None, gid: int | None = None
) -> None:
    """Write an Xauthority file atomically, mode 0600, owned by uid:gid when given."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(b"".join(entry.encode() for entry in entries))
        if uid is not None and gid is not None:
            os.chown(tmp, uid, gid)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def session_entries(display_numbers: Iterable[int], cookie: bytes) -> list[AuthEntry]:
    """The session's cookie for each number its display answers to (xalias.py)."""
    return [AuthEntry(FAMILY_WILD, b"", number, cookie) for number in display_numbers]


class ServiceAuthority:
    """The process-wide Xauthority file behind XAUTHORITY. Shared by every DesktopManager of
    the process (XAUTHORITY is process-global); the last one to release it removes it."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _instance: ClassVar[ServiceAuthority | None] = None

    def __init__(self) -> None:
        _remove_orphans()
        self._dir = Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-"))
        self.path = self._dir / "Xauthority"
        self._cookies: dict[int, bytes] = {}
        self._users = 0
        self._previous_env = os.environ.get("XAUTHORITY")
        self._rewrite()
        os.environ["XAUTHORITY"] = str(self.path)

    @classmethod
    def acquire(cls) -> ServiceAuthority:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            cls._instance._users += 1
            return cls._instance

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0:
                return
            type(self)._instance = None
            if self._previous_env is None:
                os.environ.pop("XAUTHORITY", None)
            else:
                os.environ["XAUTHORITY"] = self._previous_env
            shutil.rmtree(self._dir, ignore_errors=True)

    def add(self, display_number: int, cookie: bytes) -> None:
        with self._lock:
            self._cookies[display_number] = cookie
            self._rewrite()

    def remove(self, display_number: int) -> None:
        with self._lock:
            if self._cookies.pop(display_number, None) is not None:
                self._rewrite()

    def _rewrite(self) -> None:
        # python-xlib only matches FamilyLocal entries for this host name; libxcb takes either.
        host = socket.gethostname().encode()
        entries: list[AuthEntry] = []
        for number, cookie in sorted(self._cookies.items()):
            entries.append(AuthEntry(FAMILY_LOCAL, host, number, cookie))
            entries.append(AuthEntry(FAMILY_WILD, b"", number, cookie))
        write_authority(self.path, entries)


def _remove_orphans() -> None:
    """Delete the files of processes that died without releasing them (e.g. a crash)."""
    for path in Path(tempfile.gettempdir()).glob(f"{_DIR_PREFIX}*-*"):
        try:
            pid = int(path.name.removeprefix(_DIR_PREFIX).split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)
