"""What a session user leaves on the host outside its kept home, removed at teardown.

In a private mount namespace a session writes nothing on the host but its home: /tmp,
/var/tmp, /dev/shm and /run are its own tmpfs and vanish with the namespace. This sweep is
the second line (a session in `user` mode, a directory a future kernel or distribution makes
world-writable): every entry a session uid owns in the host's world-writable directories is
deleted (not merely made unreadable), and its System V message queues and semaphore sets
removed (its shared memory segments: shm.py). The next session of the same slot runs as the
same uid, so anything left would be its to read.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from computer_use.desktops.process import LIBC
from computer_use.desktops.shm import remove_orphaned_segments

logger = logging.getLogger(__name__)

WORLD_WRITABLE = (
    "/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue",
    "/tmp/.X11-unix", "/tmp/.ICE-unix", "/var/crash",
)  # fmt: skip
IPC_RMID = 0


def sweep(uid: int) -> None:
    """Everything `uid` left outside its home: files, IPC objects, shm segments."""
    sweep_files(uid)
    sweep_ipc(uid)
    remove_orphaned_segments(uid)


def sweep_files(uid: int, directories: tuple[str, ...] = WORLD_WRITABLE) -> list[Path]:
    """Delete every entry `uid` owns directly in `directories`; returns what was removed."""
    if uid in (0, os.getuid()):
        raise ValueError(f"refusing to sweep the files of uid {uid}")
    removed: list[Path] = []
    for directory in directories:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except OSError as exc:
                logger.warning("cannot remove %s of uid %d: %s", entry.path, uid, exc)
                continue
            removed.append(Path(entry.path))
    if removed:
        logger.info("removed %d host files of uid %d: %s", len(removed), uid, removed[:5])
    return removed


def sweep_ipc(uid: int) -> int:
    """Remove `uid`'s System V message queues and semaphore sets; returns how many."""
    if uid in (0, os.getuid()):
        raise ValueError(f"refusing to sweep the IPC objects of uid {uid}")
    libc = LIBC
    removed = 0
    for row in _rows("/proc/sysvipc/msg"):
        if int(row["uid"]) == uid and libc.msgctl(int(row["msqid"]), IPC_RMID, None) == 0:
            removed += 1
    for row in _rows("/proc/sysvipc/sem"):
        if int(row["uid"]) == uid and libc.semctl(int(row["semid"]), 0, IPC_RMID) == 0:
            removed += 1
    return removed


def _rows(path: str) -> list[dict[str, str]]:
    try:
        with open(path) as table:
            header = next(table).split()
            return [dict(zip(header, line.split(), strict=False)) for line in table]
    except (OSError, StopIteration):
        return []
