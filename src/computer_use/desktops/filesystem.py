"""Per-session home directories: a shared read-only base plus a private upper layer.

Layout under DATA_DIR:

    base/home/                  the shared base layer (skeleton dirs + a Firefox profile)
    sessions/<id>/              mode 0700 root
        upper.img               sparse ext4 image of quota_mb: the quota (OVERLAY mode only)
        layer/                  where upper.img is loop-mounted; holds upper/ and work/
        upper/ work/            the upper layer itself in FUSE mode (no image: no quota)
        home/                   the merged home (a plain copy in COPY mode)
    shared-home/                the one home every session uses when isolation is off

Unmounting is all it takes to release a session: the image is mounted with `-o loop`, which
sets the loop device to autoclear. `sessions/` is kept a *shared* mount so that the copies
of these mounts that each session's private namespace inherits (see launcher.py) are
unmounted together with the originals instead of pinning the loop devices.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from computer_use.desktops.firefox_prefs import firefox_user_js
from computer_use.desktops.launcher import CommandError, poll_until, run_command
from computer_use.desktops.users import SessionUser

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
FIREFOX_PROFILE = ".mozilla/firefox/session.default"  # relative to the home
SKELETON_DIRS = ("Downloads", "Desktop", ".config", FIREFOX_PROFILE)
# Firefox's startup cache as the base home has it (startup_cache.py), relative to the home
SHARED_STARTUP_CACHE = ".cache/mozilla/firefox/session.default/startupCache"
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# The kernel splits overlay options on these characters.
_UNSAFE_PATH_CHARS = frozenset(",:\\")
# -m 0: no root-reserved blocks, so the quota is exactly what the session can fill (overlayfs
# writes with the mounter's root credentials and would otherwise dip into the reserve).
# lazy_*_init: the image is a fresh sparse file whose holes already read as zeros; zeroing
# the journal and inode tables would only allocate megabytes of disk for nothing.
_MKFS_ARGS = ("-q", "-F", "-m", "0", "-E", "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1")
# discard: files deleted in the home punch holes back into the image, so the disk comes back.
_LAYER_OPTIONS = "loop,discard,nosuid,nodev"
_PROBE_IMAGE_MB = 8


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


@dataclass(frozen=True)
class Mount:
    mount_point: Path
    fstype: str
    shared: bool


class HomeManager:
    def __init__(
        self,
        data_dir: Path,
        *,
        enabled: bool,
        quota_mb: int,
        force_mode: IsolationMode | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()  # mountinfo reports resolved paths
        self.enabled = enabled
        self.quota_mb = quota_mb
        self.force_mode = force_mode
        self.base_dir = self.data_dir / "base" / "home"
        self.sessions_dir = self.data_dir / "sessions"
        self.shared_home = self.data_dir / "shared-home"
        self.mode = IsolationMode.OFF
        self.quota_enforced = False
        self.reason = "not set up yet"
        self._is_root = os.geteuid() == 0
        self._set_up = False
        self._locks: dict[str, asyncio.Lock] = {}
        self._attached: set[str] = set()

    # -- setup -------------------------------------------------------------------------------

    async def setup(self) -> IsolationMode:
        """Write the base layer, then probe (by really mounting) which mode works."""
        if _UNSAFE_PATH_CHARS & set(str(self.data_dir)):
            raise ValueError(f"DATA_DIR must not contain any of ',:\\': {self.data_dir}")
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.sessions_dir, 0o711)  # traversable, not listable
        await asyncio.to_thread(write_base_layer, self.base_dir)
        if not self.enabled or self.force_mode is IsolationMode.OFF:
            self.mode, self.reason = (
                IsolationMode.OFF,
                (f"filesystem isolation disabled: all sessions share {self.shared_home}"),
            )
        elif self.force_mode is not None:
            failure = await self._probe(self.force_mode)
            if failure:
                raise RuntimeError(f"forced isolation mode {self.force_mode} fails: {failure}")
            self.mode, self.reason = self.force_mode, f"forced to {self.force_mode}"
        else:
            self.mode, self.reason = await self._pick_mode()
        self.quota_enforced = self.mode is IsolationMode.OVERLAY
        if self._is_root and self.mode in (IsolationMode.OVERLAY, IsolationMode.FUSE):
            await self._make_sessions_dir_shared()
        logger.info("home isolation: %s (%s)", self.mode, self.reason)
        self._set_up = True
        return self.mode

    async def _pick_mode(self) -> tuple[IsolationMode, str]:
        overlay_failure = await self._probe(IsolationMode.OVERLAY)
        if overlay_failure is None:
            return IsolationMode.OVERLAY, (
                f"kernel overlayfs, upper layer in a {self.quota_mb} MB ext4 image per session"
            )
        fuse_failure = await self._probe(IsolationMode.FUSE)
        if fuse_failure is None:
            return IsolationMode.FUSE, f"{overlay_failure}; using fuse-overlayfs, no disk quota"
        return IsolationMode.COPY, f"{overlay_failure}; {fuse_failure}; plain copy, no disk quota"

    async def _probe(self, mode: IsolationMode) -> str | None:
        """None when `mode` works here, else why not (for /api/v1/health)."""
        if mode in (IsolationMode.COPY, IsolationMode.OFF):
            return None
        if mode is IsolationMode.OVERLAY and not self._is_root:
            return "kernel overlay needs root (CAP_SYS_ADMIN)"
        if mode is IsolationMode.FUSE and not (
            shutil.which("fuse-overlayfs") and os.path.exists("/dev/fuse")  # noqa: ASYNC240
        ):
            return "fuse-overlayfs unavailable: needs the binary and /dev/fuse"
        probe = SessionPaths(Path(tempfile.mkdtemp(prefix=".probe-", dir=self.data_dir)))
        try:
            await self._mount(probe, mode, _PROBE_IMAGE_MB)
            (probe.home / "probe").write_bytes(b"ok")
        except (CommandError, OSError) as exc:
            what = "kernel overlay mount" if mode is IsolationMode.OVERLAY else "fuse-overlayfs"
            return f"{what} refused: {_first_line(exc)}"
        finally:
            await self._unmount_under(probe.root)
            await asyncio.to_thread(shutil.rmtree, probe.root, True)
        return None

    async def _make_sessions_dir_shared(self) -> None:
        mounts = read_mounts()
        own = next((m for m in mounts if m.mount_point == self.sessions_dir), None)
        if own is None:
            parent = _containing_mount(mounts, self.sessions_dir)
            if parent is not None and parent.shared:
                return  # e.g. systemd hosts: / is shared, our mounts propagate already
            await run_command(["mount", "--bind", str(self.sessions_dir), str(self.sessions_dir)])
        elif own.shared:
            return
        await run_command(["mount", "--make-shared", str(self.sessions_dir)])

    async def close(self) -> None:
        """Undo setup(): unmount what is left under the sessions dir (homes of stopped desktops
        are already unmounted) and the sessions dir's own bind mount, so DATA_DIR can be
        moved or deleted once the service has stopped. Session files stay on disk."""
        await self._unmount_under(self.sessions_dir)
        if is_mounted(self.sessions_dir):
            await _unmount(self.sessions_dir)

    # -- per session -------------------------------------------------------------------------

    def paths(self, session_id: str) -> SessionPaths:
        if not _SESSION_ID.fullmatch(session_id):
            raise ValueError(f"invalid session id {session_id!r}")
        return SessionPaths(self.sessions_dir / session_id)

    def has_files(self, session_id: str) -> bool:
        if self.mode is IsolationMode.OFF:
            return self.shared_home.exists()
        return self.paths(session_id).root.exists()

    async def attach(self, session_id: str, user: SessionUser | None) -> Path:
        """Create or reuse the session's upper layer, mount it, return the merged home."""
        if not self._set_up:
            raise RuntimeError("HomeManager.setup() must run before attach()")
        paths = self.paths(session_id)
        async with self._lock(session_id):
            if self.mode is IsolationMode.OFF:
                home = self.shared_home
                if not home.exists():
                    await _copy_tree(self.base_dir, home)
            elif self.mode is IsolationMode.COPY:
                paths.root.mkdir(mode=0o711, exist_ok=True)  # the home itself is 0700
                home = paths.home
                if not home.exists():
                    await _copy_tree(self.base_dir, home)
            else:
                paths.root.mkdir(mode=0o700, exist_ok=True)
                home = paths.home
                await self._mount(paths, self.mode, self.quota_mb)
            if user is not None and self._is_root:
                await asyncio.to_thread(_give_to, home, user)
            self._attached.add(session_id)
        return home

    async def detach(self, session_id: str) -> None:
        """Unmount everything of the session; its files stay on disk for the next attach."""
        paths = self.paths(session_id)
        async with self._lock(session_id):
            await self._unmount_under(paths.root)
            self._attached.discard(session_id)
        await _wait_loops_released(paths.image)

    async def rename(self, old: str, new: str) -> None:
        """Give the files of `old` (mounted or not) to `new`: the mounts under its directory
        move with it (the warm pool's desktops are prepared under a placeholder id)."""
        source, target = self.paths(old).root, self.paths(new).root
        async with self._lock(old), self._lock(new):
            if self.mode is not IsolationMode.OFF:
                if target.exists():
                    raise FileExistsError(f"{target} exists")
                await asyncio.to_thread(source.rename, target)
            if old in self._attached:
                self._attached.discard(old)
                self._attached.add(new)
        self._locks.pop(old, None)

    async def remove(self, session_id: str) -> None:
        await self.detach(session_id)
        async with self._lock(session_id):
            await asyncio.to_thread(shutil.rmtree, self.paths(session_id).root, True)
        self._locks.pop(session_id, None)

    async def reconcile(self, keep: set[str]) -> None:
        """After a crash: unmount what a previous run left mounted, free its loop devices and
        delete the sessions not in `keep` (kept ones stay on disk, unmounted, for attach()).

        Kill the session users' processes first (`SessionSandbox.kill_user_processes`): a
        surviving process keeps its namespace, and with it a loop device, alive.
        """
        attached = {self.sessions_dir / s for s in self._attached}
        stale = [
            m.mount_point
            for m in read_mounts()
            if _is_under(m.mount_point, self.data_dir)
            and m.mount_point != self.sessions_dir
            and not any(_is_under(m.mount_point, a) for a in attached)
        ]
        # Reverse mount order (mountinfo lists them as mounted): a home's overlay goes before
        # the image layer under it; by depth alone (equal here) the layer came first, busy,
        # was only lazily detached, and the next mount of its image found it still in use.
        for mount_point in reversed(stale):
            logger.warning("unmounting stale %s", mount_point)
            await _unmount(mount_point)
        for device, backing in loop_devices():
            if _is_under(backing, self.data_dir) and not any(
                _is_under(backing, a) for a in attached
            ):
                logger.warning("detaching stale loop device %s (%s)", device, backing)
                await run_command(["losetup", "--detach", device], check=False)
        for leftover in self.data_dir.glob(".probe-*"):
            await asyncio.to_thread(shutil.rmtree, leftover, True)
        if self.sessions_dir.is_dir():
            for entry in self.sessions_dir.iterdir():
                if entry.name not in keep and entry.name not in self._attached:
                    logger.info("deleting files of gone session %s", entry.name)
                    await asyncio.to_thread(shutil.rmtree, entry, True)

    # -- mechanics ---------------------------------------------------------------------------

    def _lock(self, session_id: str) -> asyncio.Lock:
        return self._locks.setdefault(session_id, asyncio.Lock())

    async def _mount(self, paths: SessionPaths, mode: IsolationMode, quota_mb: int) -> None:
        upper, work = paths.upper_and_work(mode)
        if mode is IsolationMode.OVERLAY:
            if not paths.image.exists():
                await _create_image(paths.image, quota_mb)
            elif not any(backing == paths.image for _, backing in loop_devices()):
                await _repair_image(paths.image)
            paths.layer.mkdir(exist_ok=True)
            if not is_mounted(paths.layer):
                await run_command(
                    [
                        "mount",
                        "-t",
                        "ext4",
                        "-o",
                        _LAYER_OPTIONS,
                        str(paths.image),
                        str(paths.layer),
                    ]
                )
        for directory in (upper, work, paths.home):
            directory.mkdir(exist_ok=True)
        if is_mounted(paths.home):
            return
        options = f"lowerdir={self.base_dir},upperdir={upper},workdir={work}"
        if mode is IsolationMode.OVERLAY:
            argv = ["mount", "-t", "overlay", "-o", f"{options},nosuid,nodev", "overlay"]
        else:
            argv = ["fuse-overlayfs", "-o", options]
        await run_command([*argv, str(paths.home)])

    async def _unmount_under(self, root: Path) -> None:
        inner = [m.mount_point for m in read_mounts() if _is_under(m.mount_point, root)]
        for mount_point in sorted(inner, key=lambda p: len(p.parts), reverse=True):
            await _unmount(mount_point)


# -- host helpers ---------------------------------------------------------------------------


async def _create_image(image: Path, quota_mb: int) -> None:
    partial = image.with_suffix(".partial")  # a crash mid-mkfs must not leave a bad image
    await asyncio.to_thread(_make_sparse_file, partial, quota_mb * MIB)
    await run_command(["mkfs.ext4", *_MKFS_ARGS, str(partial)], timeout=60)
    partial.rename(image)


def _first_line(exc: Exception) -> str:
    """The gist of a failure, for /api/v1/health (the full error is in the log)."""
    logger.info("probe failed: %s", exc)
    if isinstance(exc, CommandError):
        lines = exc.result.stderr.decode(errors="replace").strip().splitlines()
        return lines[0] if lines else str(exc)
    return str(exc)


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


async def _unmount(mount_point: Path) -> None:
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


async def _wait_loops_released(image: Path) -> None:
    try:
        await poll_until(
            lambda: not any(b == image for _, b in loop_devices()),
            timeout=5.0,
            what=f"the loop device of {image} to be released",
        )
    except TimeoutError:
        logger.warning("loop device of %s still busy (a process of the session alive?)", image)


async def _copy_tree(source: Path, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    await asyncio.to_thread(shutil.rmtree, partial, True)
    await run_command(["cp", "-a", "--reflink=auto", str(source), str(partial)], timeout=120)
    partial.rename(target)


def _give_to(home: Path, user: SessionUser) -> None:
    """chown -R, children first: the root is chowned last, so a home whose root already
    belongs to the user is known to be complete and the (often large) walk can be skipped.
    fwalk + dir_fd: a symlink swapped in mid-walk cannot redirect a chown outside the home."""
    if (home.stat().st_uid, home.stat().st_gid) == (user.uid, user.gid):
        return
    shared = home / SHARED_STARTUP_CACHE
    for top, dirnames, filenames, dir_fd in os.fwalk(home, topdown=False):
        if Path(top) == shared:
            filenames = []  # read-only, mapped from the base by every session (startup_cache.py)
        for name in (*filenames, *dirnames):
            os.chown(name, user.uid, user.gid, dir_fd=dir_fd, follow_symlinks=False)
    os.chmod(home, 0o700)
    os.chown(home, user.uid, user.gid)


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


def _containing_mount(mounts: list[Mount], path: Path) -> Mount | None:
    candidates = [m for m in mounts if _is_under(path, m.mount_point)]
    return max(candidates, key=lambda m: len(m.mount_point.parts), default=None)


def _is_under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


# -- the base layer -------------------------------------------------------------------------

# Lets a plain `firefox` (without --profile) pick our profile too.
_PROFILES_INI = """[General]
StartWithLastProfile=1
Version=2

[Profile0]
Name=session
IsRelative=1
Path=session.default
Default=1
"""


def write_base_layer(base: Path) -> None:
    """Create (or bring up to date) the shared base; files are rewritten only if changed,
    because the kernel does not expect the lower layer to change under a mounted overlay."""
    for directory in SKELETON_DIRS:
        (base / directory).mkdir(parents=True, exist_ok=True)
    os.chmod(base / FIREFOX_PROFILE, 0o700)
    profile = base / FIREFOX_PROFILE
    for path, content in (
        (profile / "user.js", firefox_user_js()),
        (profile.parent / "profiles.ini", _PROFILES_INI),
    ):
        if not path.exists() or path.read_text() != content:
            path.write_text(content)
