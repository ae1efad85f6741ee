"""The disk quota of a session's home: its upper layer lives in a sparse ext4 image of
quota_mb, loop-mounted. Created on first use, preened when reused, mounted with autoclear."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from computer_use.desktops.mounts import is_mounted, loop_devices
from computer_use.desktops.process import CommandError, run_command

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
# -m 0: no root-reserved blocks, so the quota is exactly what the session can fill (overlayfs
# writes with the mounter's root credentials and would otherwise dip into the reserve).
# lazy_*_init: the image is a fresh sparse file whose holes already read as zeros; zeroing
# the journal and inode tables would only allocate megabytes of disk for nothing.
_MKFS_ARGS = ("-q", "-F", "-m", "0", "-E", "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1")
# discard: files deleted in the home punch holes back into the image, so the disk comes back.
_LAYER_OPTIONS = "loop,discard,nosuid,nodev"


async def mount_layer(image: Path, layer: Path, quota_mb: int) -> None:
    """Mount `image` (created, or preened when no loop device backs it) at `layer`."""
    if not image.exists():  # noqa: ASYNC240 (a stat, as the callers do on their paths)
        await _create_image(image, quota_mb)
    elif not any(backing == image for _, backing in loop_devices()):
        await _repair_image(image)
    layer.mkdir(exist_ok=True)  # noqa: ASYNC240
    if not is_mounted(layer):
        await run_command(["mount", "-t", "ext4", "-o", _LAYER_OPTIONS, str(image), str(layer)])


async def _create_image(image: Path, quota_mb: int) -> None:
    partial = image.with_suffix(".partial")  # a crash mid-mkfs must not leave a bad image
    await asyncio.to_thread(_make_sparse_file, partial, quota_mb * MIB)
    await run_command(["mkfs.ext4", *_MKFS_ARGS, str(partial)], timeout=60)
    partial.rename(image)


async def _repair_image(image: Path) -> None:
    """Preen a reused image (a few ms when clean): after a host crash a session's files
    should come back rather than fail to mount. Never while a loop device still backs it:
    it may be mounted in a namespace we cannot see, and checking a live fs corrupts it."""
    result = await run_command(["e2fsck", "-p", str(image)], timeout=300, check=False)
    if result.timed_out or result.returncode not in (0, 1, 2):  # 1, 2: errors corrected
        raise CommandError(["e2fsck", "-p", str(image)], result)
    if result.returncode:
        logger.warning("repaired the upper layer %s: %s", image, result.stdout.decode().strip())


def _make_sparse_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)  # a hole: costs no disk until written
