"""The host's mount table and loop devices: read them, unmount, wait for a loop to go."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from computer_use.desktops.process import CommandError, poll_until, run_command

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mount:
    mount_point: Path
    fstype: str
    shared: bool


def read_mounts() -> list[Mount]:
    mounts = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            separator = fields.index("-")
            mounts.append(
                Mount(
                    mount_point=Path(_unescape(fields[4])),
                    fstype=fields[separator + 1],
                    shared=any(tag.startswith("shared:") for tag in fields[6:separator]),
                )
            )
    return mounts


def is_mounted(path: Path) -> bool:
    return any(m.mount_point == path for m in read_mounts())


def loop_devices() -> Iterator[tuple[str, Path]]:
    """(device, backing file) of every bound loop device."""
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            target = backing.read_text().strip()
        except OSError:
            continue  # released while we looked
        yield f"/dev/{backing.parent.parent.name}", Path(target.removesuffix(" (deleted)"))


def containing_mount(mounts: list[Mount], path: Path) -> Mount | None:
    candidates = [m for m in mounts if is_under(path, m.mount_point)]
    return max(candidates, key=lambda m: len(m.mount_point.parts), default=None)


def is_under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


async def unmount(mount_point: Path) -> None:
    is_root = os.geteuid() == 0
    argv = ["umount"] if is_root else ["fusermount3", "-u"]
    try:
        await run_command([*argv, str(mount_point)])
    except CommandError as exc:
        # Busy (e.g. a host process has its cwd inside): detach it from the tree now; the
        # kernel finishes, and autoclear frees the loop device, when the last user lets go.
        logger.warning("lazy unmount of %s: %s", mount_point, exc)
        lazy = ["umount", "--lazy"] if is_root else ["fusermount3", "-uz"]
        await run_command([*lazy, str(mount_point)], check=False)


async def wait_loops_released(image: Path) -> None:
    try:
        await poll_until(
            lambda: not any(b == image for _, b in loop_devices()),
            timeout=5.0,
            what=f"the loop device of {image} to be released",
        )
    except TimeoutError:
        logger.warning("loop device of %s still busy (a process of the session alive?)", image)
