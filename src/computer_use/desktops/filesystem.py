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

This module decides (isolation mode, per-session life cycle, crash clean-up, the base layer);
the mechanics are in overlay.py (the merged home), quota_image.py (the ext4 image) and
mounts.py (the host's mount table and loop devices).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from computer_use.desktops.firefox_prefs import firefox_user_js
from computer_use.desktops.mounts import (
    containing_mount,
    is_mounted,
    is_under,
    loop_devices,
    read_mounts,
    unmount,
    wait_loops_released,
)
from computer_use.desktops.overlay import IsolationMode, SessionPaths, mount_home, unmount_under
from computer_use.desktops.process import CommandError, run_command
from computer_use.desktops.users import SessionUser

logger = logging.getLogger(__name__)

FIREFOX_PROFILE = ".mozilla/firefox/session.default"  # relative to the home
SKELETON_DIRS = ("Downloads", "Desktop", ".config", FIREFOX_PROFILE)
# Firefox's startup cache as the base home has it (startup_cache.py), relative to the home
SHARED_STARTUP_CACHE = ".cache/mozilla/firefox/session.default/startupCache"
# A profile Firefox has initialised once (startup_cache.py), copied into the session's profile
# by its first browser start (display.py), relative to the home
PROFILE_TEMPLATE = ".cache/mozilla/firefox/session.default/profile-template"
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# The kernel splits overlay options on these characters.
_UNSAFE_PATH_CHARS = frozenset(",:\\")
_PROBE_IMAGE_MB = 8


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
            await mount_home(self.base_dir, probe, mode, _PROBE_IMAGE_MB)
            (probe.home / "probe").write_bytes(b"ok")
        except (CommandError, OSError) as exc:
            what = "kernel overlay mount" if mode is IsolationMode.OVERLAY else "fuse-overlayfs"
            return f"{what} refused: {_first_line(exc)}"
        finally:
            await unmount_under(probe.root)
            await asyncio.to_thread(shutil.rmtree, probe.root, True)
        return None

    async def _make_sessions_dir_shared(self) -> None:
        mounts = read_mounts()
        own = next((m for m in mounts if m.mount_point == self.sessions_dir), None)
        if own is None:
            parent = containing_mount(mounts, self.sessions_dir)
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
        await unmount_under(self.sessions_dir)
        if is_mounted(self.sessions_dir):
            await unmount(self.sessions_dir)

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
                await mount_home(self.base_dir, paths, self.mode, self.quota_mb)
            if user is not None and self._is_root:
                await asyncio.to_thread(_give_to, home, user)
            self._attached.add(session_id)
        return home

    async def detach(self, session_id: str) -> None:
        """Unmount everything of the session; its files stay on disk for the next attach."""
        paths = self.paths(session_id)
        async with self._lock(session_id):
            await unmount_under(paths.root)
            self._attached.discard(session_id)
        await wait_loops_released(paths.image)

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
            if is_under(m.mount_point, self.data_dir)
            and m.mount_point != self.sessions_dir
            and not any(is_under(m.mount_point, a) for a in attached)
        ]
        # Reverse mount order (mountinfo lists them as mounted): a home's overlay goes before
        # the image layer under it; by depth alone (equal here) the layer came first, busy,
        # was only lazily detached, and the next mount of its image found it still in use.
        for mount_point in reversed(stale):
            logger.warning("unmounting stale %s", mount_point)
            await unmount(mount_point)
        for device, backing in loop_devices():
            if is_under(backing, self.data_dir) and not any(is_under(backing, a) for a in attached):
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


# -- host helpers ---------------------------------------------------------------------------


def _first_line(exc: Exception) -> str:
    """The gist of a failure, for /api/v1/health (the full error is in the log)."""
    logger.info("probe failed: %s", exc)
    if isinstance(exc, CommandError):
        lines = exc.result.stderr.decode(errors="replace").strip().splitlines()
        return lines[0] if lines else str(exc)
    return str(exc)


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
    template = home / PROFILE_TEMPLATE
    for top, dirnames, filenames, dir_fd in os.fwalk(home, topdown=False):
        # Read-only, from the base, for every session (startup_cache.py): chowning would copy
        # them into the session's layer.
        in_template = Path(top).is_relative_to(template)
        if Path(top) == shared or in_template:
            filenames = []
        if in_template:
            dirnames = []
        elif Path(top) == template.parent:
            dirnames = [d for d in dirnames if d != template.name]
        for name in (*filenames, *dirnames):
            os.chown(name, user.uid, user.gid, dir_fd=dir_fd, follow_symlinks=False)
    os.chmod(home, 0o700)
    os.chown(home, user.uid, user.gid)


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
