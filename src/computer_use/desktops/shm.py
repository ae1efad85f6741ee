"""Clean-up of System V shared memory that killed X clients leave behind.

x11vnc (and any MIT-SHM client) creates SysV segments and only marks them for removal when it
exits cleanly; after a kill -9 or a lost X server they stay forever, holding RAM and counting
against kernel.shmmni (4096 segments for the whole host). A session user's segments that no
process has attached and whose creator is dead are garbage: we remove them whenever one of its
processes dies and when its desktop goes away.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from computer_use.desktops.process import LIBC

logger = logging.getLogger(__name__)

IPC_RMID = 0
_SYSVIPC_SHM = "/proc/sysvipc/shm"


@dataclass(frozen=True)
class Segment:
    shmid: int
    size: int
    creator_pid: int
    attached: int
    uid: int


def segments() -> list[Segment]:
    try:
        with open(_SYSVIPC_SHM) as table:
            header = next(table).split()
            rows = [dict(zip(header, line.split(), strict=False)) for line in table]
    except (OSError, StopIteration):
        return []
    return [
        Segment(
            shmid=int(row["shmid"]),
            size=int(row["size"]),
            creator_pid=int(row["cpid"]),
            attached=int(row["nattch"]),
            uid=int(row["uid"]),
        )
        for row in rows
    ]


def remove_orphaned_segments(uid: int) -> int:
    """Remove `uid`'s unattached segments whose creator has exited; returns how many."""
    if uid == 0 or uid == os.getuid():
        return 0  # never touch the service's own (or root's) segments
    orphans = [
        s
        for s in segments()
        if s.uid == uid and s.attached == 0 and not os.path.exists(f"/proc/{s.creator_pid}")
    ]
    if not orphans:
        return 0
    libc = LIBC
    removed = 0
    for segment in orphans:
        if libc.shmctl(segment.shmid, IPC_RMID, None) == 0:
            removed += 1
    if removed:
        total = sum(s.size for s in orphans) // (1024 * 1024)
        logger.info("removed %d orphaned shm segments (%d MiB) of uid %d", removed, total, uid)
    return removed
