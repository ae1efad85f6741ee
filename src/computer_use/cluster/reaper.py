"""`python -m computer_use.cluster.reaper SLOT`: what a session actor leaves behind when it
dies without ending its desktop (its host's raylet killed, the worker killed by a signal).

Ray ends a dead actor's worker, but not what the worker started in sessions of their own:
the desktop's X server, window manager, VNC server, Firefox, the session's programs, its
overlay mounts, cgroups and network rules. So each actor starts this watcher, with a pipe on
its stdin, in a session of its own and not as its child (a Ray worker that exits ends its
children: a setsid child of a worker died ~4 s after its host's raylet, seen here). A clean
stop writes `done` and the watcher exits; when the pipe closes without it (the kernel closes
it as the actor's process dies), the watcher takes the slot's desktop range and gives it
back, which ends every process of the slot's users and removes their mounts, files, cgroups
and rules (DesktopManager.start with nothing to keep, then shutdown). If a new actor has
taken the slot meanwhile, it did the same, and the watcher has nothing to do. Its log is the
slot's `reaper.log`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys

from computer_use.cluster.slots import slot_settings
from computer_use.config import Settings
from computer_use.desktops.hostlock import InstanceLockError
from computer_use.runtime import desktop_manager

logger = logging.getLogger(__name__)

DONE = b"done"


def start_reaper(settings: Settings, slot: int) -> subprocess.Popen[bytes]:
    """The watcher of this actor's slot (its log: the slot's reaper.log); `stop_reaper` it on
    a clean stop."""
    log_path = slot_settings(settings, slot).data_dir / "reaper.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "computer_use.cluster.reaper", str(slot)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the worker's process group
        )
    launcher.wait(timeout=30)  # it forks the watcher and exits (see main)
    return launcher


def stop_reaper(reaper: subprocess.Popen[bytes]) -> None:
    assert reaper.stdin is not None
    reaper.stdin.write(DONE)
    reaper.stdin.close()


async def reclaim(slot: int) -> bool:
    """Ends everything the slot's dead actor left; False if a live actor holds the slot."""
    manager = desktop_manager(slot_settings(Settings(ray_address=""), slot))
    try:
        await manager.start(keep=())
    except InstanceLockError:
        return False
    await manager.shutdown()
    return True


def main(argv: list[str]) -> int:
    slot = int(argv[1])
    # Not the worker's child: a Ray worker that exits ends its children, daemons included.
    if os.fork() > 0:
        return 0
    said = sys.stdin.buffer.read()  # until `done`, or the actor's death closes the pipe
    if said == DONE:
        return 0
    logging.basicConfig(level=logging.INFO, format="reaper: %(message)s")
    logger.info("slot %d: its session actor died; reclaiming what it left", slot)
    if asyncio.run(reclaim(slot)):
        logger.info("slot %d: reclaimed", slot)
    else:
        logger.info("slot %d: a live actor holds it (it reclaimed what was left)", slot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
