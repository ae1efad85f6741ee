"""Who listens on a unix socket: readiness that proves a listener is the session's own.

A name (a path, or an abstract name written `@name`) tells nothing about its owner: anyone
who binds it first gets the connections. These helpers answer by inode: which listening
sockets carry a name (`/proc/net/unix`), and which processes hold them (`/proc/<pid>/fd`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

_ACCEPTING = 0x00010000  # __SO_ACCEPTCON: the socket listens


def listening_inodes(name: str) -> set[int]:
    """Inodes of the sockets listening on `name` (a path, or `@abstract`)."""
    return named_inodes(name, listening=True)


def listening_names() -> set[str]:
    """The names (paths, `@abstract`) of every listening unix socket of this network
    namespace."""
    found: set[str] = set()
    for fields in _table():
        if len(fields) >= 8 and int(fields[3], 16) & _ACCEPTING:
            found.add(fields[7])
    return found


def _table() -> list[list[str]]:
    try:
        with open("/proc/net/unix", encoding="utf-8", errors="replace") as table:
            next(table, None)
            return [line.split() for line in table]
    except OSError:
        return []


def named_inodes(name: str, *, listening: bool) -> set[int]:
    """Inodes of the sockets bound to `name`; only those that listen if `listening`."""
    found: set[int] = set()
    for fields in _table():
        if len(fields) < 8 or fields[7] != name:
            continue
        if not listening or int(fields[3], 16) & _ACCEPTING:
            found.add(int(fields[6]))
    return found


def socket_inodes_of(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        entries = os.scandir(f"/proc/{pid}/fd")
    except OSError:
        return found
    with entries:
        for entry in entries:
            try:
                target = os.readlink(entry.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                found.add(int(target[8:-1]))
    return found


def listener_held_by(name: str, pid: int) -> bool:
    """True if `name` has listeners and every one of them is held by process `pid`."""
    inodes = listening_inodes(name)
    return bool(inodes) and inodes <= socket_inodes_of(pid)


def holders(name: str, *, listening: bool = True) -> dict[int, int]:
    """{pid: uid} of every process holding a socket listening on (or bound to) `name`."""
    inodes = named_inodes(name, listening=listening)
    found: dict[int, int] = {}
    if not inodes:
        return found
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and socket_inodes_of(int(entry.name)) & inodes:
            try:
                found[int(entry.name)] = entry.stat().st_uid
            except OSError:
                continue
    return found


def evict(name: str, uids: set[int], *, timeout: float = 1.0, listening: bool = True) -> bool:
    """SIGKILL the processes of `uids` that listen on (or, unless `listening`, merely bind)
    `name`; True once nobody does.

    A holder outside `uids` (another program of the host) is left alone: False."""
    deadline = time.monotonic() + timeout
    while True:
        held = holders(name, listening=listening)
        if not held and not named_inodes(name, listening=listening):
            return True
        if any(uid not in uids for uid in held.values()) or time.monotonic() > deadline:
            return False
        for pid in held:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def accepts_connections(name: str) -> bool:
    """A connect() to `name` (a path, or `@abstract`) succeeds."""
    address = "\0" + name[1:] if name.startswith("@") else name
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(address)
        except OSError:
            return False
    return True


def owned_socket(path: Path, uid: int) -> bool:
    """`path` is a socket file owned by `uid`."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return st.st_uid == uid and (st.st_mode & 0o170000) == 0o140000
