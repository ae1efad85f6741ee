"""A session's merged home: the shared base as the lower layer, the session's own upper layer
(in its quota image, or a plain directory with fuse-overlayfs) on top."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from computer_use.desktops.mounts import is_mounted, is_under, read_mounts, unmount
from computer_use.desktops.process import run_command
from computer_use.desktops.quota_image import mount_layer


class IsolationMode(StrEnum):
    OVERLAY = "overlay"  # kernel overlayfs, upper layer inside a sparse ext4 image (quota enforced)
    FUSE = "fuse-overlayfs"  # when kernel overlay cannot be mounted; quota NOT enforced
    COPY = "copy"  # plain copy of the base; quota NOT enforced
    OFF = "off"  # FILESYSTEM_ISOLATION_ENABLED=false: all sessions share DATA_DIR/shared-home


@dataclass(frozen=True)
class SessionPaths:
    root: Path

    @property
    def image(self) -> Path:
        return self.root / "upper.img"

    @property
    def layer(self) -> Path:
        return self.root / "layer"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def upper_and_work(self, mode: IsolationMode) -> tuple[Path, Path]:
        parent = self.layer if mode is IsolationMode.OVERLAY else self.root
        return parent / "upper", parent / "work"


async def mount_home(base: Path, paths: SessionPaths, mode: IsolationMode, quota_mb: int) -> None:
    """Mount the merged home at `paths.home` (OVERLAY or FUSE), unless it is mounted already."""
    upper, work = paths.upper_and_work(mode)
    if mode is IsolationMode.OVERLAY:
        await mount_layer(paths.image, paths.layer, quota_mb)
    for directory in (upper, work, paths.home):
        directory.mkdir(exist_ok=True)
    if is_mounted(paths.home):
        return
    options = f"lowerdir={base},upperdir={upper},workdir={work}"
    if mode is IsolationMode.OVERLAY:
        argv = ["mount", "-t", "overlay", "-o", f"{options},nosuid,nodev", "overlay"]
    else:
        argv = ["fuse-overlayfs", "-o", options]
    await run_command([*argv, str(paths.home)])


async def unmount_under(root: Path) -> None:
    """Unmount everything at or below `root`, deepest first."""
    inner = [m.mount_point for m in read_mounts() if is_under(m.mount_point, root)]
    for mount_point in sorted(inner, key=lambda p: len(p.parts), reverse=True):
        await unmount(mount_point)
