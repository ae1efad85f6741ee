"""The pool of session desktops: create, restore, look up, destroy, shut down, reconcile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from computer_use.desktops import landlock, seccomp, startup_cache
from computer_use.desktops.assembly import DesktopAssembler
from computer_use.desktops.desktop import Desktop
from computer_use.desktops.display import make_runtime_dir, remove_runtime_dir
from computer_use.desktops.errors import DesktopExists, DesktopNotFound, DesktopStartError
from computer_use.desktops.filesystem import HomeManager
from computer_use.desktops.hostlock import InstanceLock
from computer_use.desktops.ksm import SessionKsm
from computer_use.desktops.launcher import CommandError, SandboxError, SessionSandbox
from computer_use.desktops.leftovers import sweep
from computer_use.desktops.limits import ResourceLimits
from computer_use.desktops.namespace import probe_private_proc, probe_private_run
from computer_use.desktops.netrules import EgressPolicy, NetworkRules
from computer_use.desktops.reclaim import MemoryReclaimer
from computer_use.desktops.slots import (
    Slot,
    SlotAllocator,
    load_slot_index,
    remove_stale_display_files,
    save_slot,
)
from computer_use.desktops.supervisor import EventCallback
from computer_use.desktops.users import UserPool
from computer_use.desktops.warm_pool import WarmPool, is_pooled

logger = logging.getLogger(__name__)

FD_LIMIT = 65536
# Tearing down hundreds of desktops at once on a small host starves the reaping of their
# processes past the sandbox's kill deadline; a few at a time is as fast in total.
CONCURRENT_TEARDOWNS = 8


class DesktopManager:
    def __init__(
        self,
        data_dir: Path,
        *,
        width: int,
        height: int,
        max_displays: int,
        isolation_enabled: bool,
        disk_quota_mb: int,
        display_base: int = 100,
        user_prefix: str = "cu-s",
        on_event: EventCallback | None = None,
        runtime_dir: Path | None = None,
        restart_limit: int = 5,
        restart_window: float = 60.0,
        retry_after: int = 30,
        memory_limit_mb: int = 2048,
        max_processes: int = 512,
        eager_browser: bool = False,
        ksm: bool = False,
        ksm_start_host: bool = False,
        ksm_disable_aslr: bool = False,
        warm_pool_size: int = 0,
        warm_pool_browser: bool = False,
        memory_reclaim_interval: float = 60.0,
        vnc_linger: float = 30.0,
        cpu_limit: float = 1.0,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.width = width
        self.height = height
        self.homes = HomeManager(data_dir, enabled=isolation_enabled, quota_mb=disk_quota_mb)
        # Two managers on one host (tests, a second instance) need disjoint display ranges and
        # user names: start() and destroy() kill every process of their pool's users.
        self.instance_lock = InstanceLock(
            prefix=user_prefix, display_base=display_base, max_displays=max_displays
        )
        self.users = UserPool(max_displays, prefix=user_prefix)
        # Not under /tmp: each session sees a private /tmp. /run is shared and is RAM.
        self.runtime_root = (runtime_dir or _default_runtime_root()) / f"displays-{display_base}"
        self.assembler = DesktopAssembler(
            width=width,
            height=height,
            runtime_root=self.runtime_root,
            users=self.users,
            on_event=on_event,
            restart_limit=restart_limit,
            restart_window=restart_window,
            vnc_linger=vnc_linger,
        )
        self.slots = SlotAllocator(
            max_displays,
            display_base=display_base,
            retry_after=retry_after,
            in_use=self.assembler.taken,
        )
        self.limits = ResourceLimits(
            memory_mb=memory_limit_mb,
            max_processes=max_processes,
            cpu_limit=cpu_limit,
            name=user_prefix,
        )
        self.network = NetworkRules(name=user_prefix, egress=egress or EgressPolicy())
        self.ksm = SessionKsm(enabled=ksm, start_host=ksm_start_host, fixed_layout=ksm_disable_aslr)
        self._proc_hidden_reason: str | None = "not probed yet"
        self._run_hidden_reason: str | None = "not probed yet"
        self.eager_browser = eager_browser  # else each browser starts on first use
        self._desktops: dict[str, Desktop] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._launcher_mode: str | None = None
        self._teardowns = asyncio.Semaphore(CONCURRENT_TEARDOWNS)
        self.pool = WarmPool(self, warm_pool_size, browser=warm_pool_browser)
        self.reclaimer = MemoryReclaimer(memory_reclaim_interval, self._browser_users)

    # -- lifecycle of the pool -------------------------------------------------------------

    async def start(self, keep: Iterable[str] = ()) -> None:
        """Prepare users and homes and clear what a previous run left behind: processes of
        the pool's users, X lock files and sockets of our displays, runtime files, and the
        files of every session not in `keep`. Refuses (InstanceLockError) before touching
        anything when another live instance has our user prefix or one of our displays."""
        self.instance_lock.acquire()
        _raise_fd_limit()
        await self.users.ensure()
        await self.homes.setup()
        await startup_cache.install(self.homes.base_dir)
        if self.users.enabled:
            for user in self.users.all_users():
                await SessionSandbox.kill_user_processes(user)
                await asyncio.to_thread(sweep, user.uid)
            await self.network.install([user.uid for user in self.users.all_users()])
        else:
            await self.network.install([])
        await asyncio.to_thread(self.limits.setup)
        await asyncio.to_thread(self.ksm.setup)
        self._proc_hidden_reason = await probe_private_proc()
        self._run_hidden_reason = await probe_private_run()
        for slot in self.slots.all_slots():
            if remove_stale_display_files(slot.display_number):
                logger.warning("removed stale X files of display %s", slot.display)
        await asyncio.to_thread(shutil.rmtree, self.runtime_root, True)
        self.runtime_root.mkdir(mode=0o755, parents=True, exist_ok=True)
        await self.homes.reconcile(set(keep))
        self.assembler.open()
        self.pool.start()
        self.reclaimer.start(session_users=self.users.enabled)

    async def shutdown(self) -> None:
        """Stop every desktop, keeping its files (restore() brings it back)."""
        await self.pool.close()
        await self.reclaimer.close()
        ids = list(self._desktops)
        results = await asyncio.gather(
            *(self._close(sid, remove_files=False) for sid in ids), return_exceptions=True
        )
        for session_id, result in zip(ids, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("closing the desktop of %s failed: %r", session_id, result)
        self.assembler.close()
        await asyncio.to_thread(shutil.rmtree, self.runtime_root, True)
        await self.homes.close()
        await self.network.remove()
        await asyncio.to_thread(self.limits.remove_all)
        self.instance_lock.release()

    # -- per session ---------------------------------------------------------------------------

    def get(self, session_id: str) -> Desktop | None:
        return self._desktops.get(session_id)

    async def create(self, session_id: str, *, browser: bool | None = None) -> Desktop:
        """A new desktop, screenshot-able with its window manager and VNC up. `browser`:
        start Firefox now (it may still be starting on return) rather than on first use;
        None = the manager's `eager_browser`. Raises DesktopCapacityError when every slot
        is taken."""
        async with self._session_lock(session_id):
            if not is_pooled(session_id) and (claimed := await self._claim(session_id)):
                if self.eager_browser if browser is None else browser:
                    claimed.request_browser()
                return claimed
            return await self._open(session_id, prefer=None, browser=browser)

    async def restore(self, session_id: str, *, browser: bool | None = None) -> Desktop:
        """Like create(), on the session's existing files and, when free, its old slot."""
        async with self._session_lock(session_id):
            prefer = load_slot_index(self._session_dir(session_id))
            return await self._open(session_id, prefer=prefer, browser=browser)

    async def destroy(self, session_id: str, *, remove_files: bool = True) -> None:
        async with self._session_lock(session_id):
            if session_id not in self._desktops:
                raise DesktopNotFound(session_id)
            await self._close(session_id, remove_files=remove_files)
        self._locks.pop(session_id, None)

    def readiness(self) -> str:
        """For /api/v1/health/ready: "ok" from start() (users, homes, network rules, the X
        authority) to shutdown(), when desktops can be created; else why not."""
        if not (self.assembler.is_open and self.instance_lock.held):
            return "unavailable: not started"
        return "ok"

    def health(self) -> dict[str, Any]:
        failed = sorted(s for s, d in self._desktops.items() if d.failed)
        return {
            "isolation": str(self.homes.mode),
            "isolation_reason": self.homes.reason,
            "quota_enforced": self.homes.quota_enforced,
            "launcher": self._launcher_mode or _expected_launcher_mode(self.users),
            "process_view": {
                "enabled": self._proc_hidden_reason is None,
                "reason": self._proc_hidden_reason,
            },
            "network": self.network.health(),
            "egress": self.network.egress_health(),
            "resource_limits": self.limits.health(),
            "ksm": self.ksm.health(),
            "memory_reclaim": self.reclaimer.health(),
            "desktops_running": sum(not is_pooled(s) for s in self._desktops),
            "warm_pool": self.pool.health(),
            "cpu_limit": self.limits.cpu_health(),
            "seccomp": _measure(
                self.users.enabled and seccomp.reason_off() is None,
                seccomp.reason_off() or "no dedicated session users",
            ),
            "abstract_sockets": _measure(
                self.assembler.scoping_possible(),
                landlock.reason_off() or "no dedicated session users (needs root)",
            ),
            "private_dirs": _measure(self._run_hidden_reason is None, self._run_hidden_reason),
            "vnc": {
                "enabled": True,
                "reason": None,
                "transport": "unix socket (0700 dir)",
                # x11vnc runs while watched (viewing.py)
                "servers_up": sum(d.vnc.state == "up" for d in self._desktops.values()),
                "viewers": sum(d.vnc.viewers for d in self._desktops.values()),
            },
            "instance_lock": _measure(self.instance_lock.held, "not started"),
            "desktops_failed": failed,
            "browser_start": "eager" if self.eager_browser else "on first use",
            "browsers_up": sum(d.browser_state == "up" for d in self._desktops.values()),
            "capacity": self.slots.capacity,
            "free_slots": self.slots.capacity - self.slots.used,
        }

    # -- mechanics ---------------------------------------------------------------------------

    async def _claim(self, session_id: str) -> Desktop | None:
        """A desktop of the warm pool, renamed to `session_id`; None if the pool is empty."""
        if session_id in self._desktops:
            raise DesktopExists(session_id)
        self._session_dir(session_id)  # validates the id
        if self.homes.has_files(session_id) and self.homes.mode != "off":
            return None  # its own files exist: restore()'s business, not the pool's
        desktop = self.pool.take()
        if desktop is None:
            return None
        placeholder = desktop.session_id
        await self.homes.rename(placeholder, session_id)
        desktop.rename(session_id)
        self._desktops[session_id] = self._desktops.pop(placeholder)
        self._locks.pop(placeholder, None)
        self.pool.claimed += 1
        logger.info("desktop on %s (warm pool) given to %s", desktop.display, session_id)
        return desktop

    async def _open(self, session_id: str, *, prefer: int | None, browser: bool | None) -> Desktop:
        self.assembler.check_open()
        if session_id in self._desktops:
            raise DesktopExists(session_id)
        session_dir = self._session_dir(session_id)  # validates the id before anything runs
        slot = self.slots.allocate(session_id, prefer)
        user = self.users.user_for_slot(slot.index)
        cleanup = contextlib.AsyncExitStack()
        async with cleanup:
            cleanup.callback(self._release_slot, slot)
            runtime_dir = self.runtime_root / str(slot.display_number)
            # Before the sandbox: its namespace shows this directory (and no other of /run).
            await asyncio.to_thread(make_runtime_dir, runtime_dir, user.uid, user.gid)
            cleanup.callback(shutil.rmtree, runtime_dir, True)
            try:
                home = await self.homes.attach(session_id, user)
            except (CommandError, OSError) as exc:
                raise DesktopStartError(f"cannot mount the session's home: {exc}") from exc
            cleanup.push_async_callback(self.homes.detach, session_id)
            try:
                cgroup = self.limits.create(user.name) if self.users.enabled else None
                if cgroup is not None:
                    cleanup.callback(cgroup.remove)
                sandbox = await SessionSandbox.create(
                    session_id=session_id,
                    user=user if self.users.enabled else None,
                    home=home,
                    cgroup=cgroup,
                    runtime_dir=runtime_dir,
                    x_alias=self.assembler.hold_alias(slot),
                )
            except (SandboxError, OSError) as exc:
                raise DesktopStartError(f"cannot create the session sandbox: {exc}") from exc
            cleanup.push_async_callback(sandbox.close)
            sandbox.preexec = self.ksm.preexec()
            self._launcher_mode = sandbox.mode
            if sandbox.mode != "direct":
                self._proc_hidden_reason = sandbox.proc_hidden_reason
                self._run_hidden_reason = sandbox.run_hidden_reason
            start_browser = self.eager_browser if browser is None else browser
            desktop = await self.assembler.start(
                session_id, slot, user, sandbox, start_browser, cleanup
            )
            await asyncio.to_thread(save_slot, session_dir, slot)
            cleanup.pop_all()  # success: the desktop owns all of it now
        self._desktops[session_id] = desktop
        logger.info("desktop of %s up on %s", session_id, slot.display)
        return desktop

    async def _close(self, session_id: str, *, remove_files: bool) -> None:
        desktop = self._desktops.pop(session_id)
        async with self._teardowns:
            await self._teardown(desktop, remove_files=remove_files)
        logger.info("desktop of %s closed (files %s)", session_id,
                    "removed" if remove_files else "kept")  # fmt: skip

    async def _teardown(self, desktop: Desktop, *, remove_files: bool) -> None:
        session_id = desktop.session_id
        try:
            await desktop.stop_processes()
            await desktop.sandbox.close()
            if desktop.sandbox.user is not None:
                await asyncio.to_thread(sweep, desktop.sandbox.user.uid)
        finally:
            self.assembler.remove_cookie(desktop.slot_info.display_number)
            await asyncio.to_thread(remove_runtime_dir, desktop.spec)
            self._release_slot(desktop.slot_info)
            if remove_files:
                await self.homes.remove(session_id)
            else:
                await self.homes.detach(session_id)

    def _browser_users(self) -> list[int]:
        """The users of the desktops whose browser is up (the memory reclaim's sweep)."""
        return [d.user.uid for d in self._desktops.values() if d.browser_state == "up"]

    def _release_slot(self, slot: Slot) -> None:
        self.assembler.release_alias(slot.display_number)
        # A SIGKILLed Xvfb leaves its socket (and, outside a namespace, its lock file).
        remove_stale_display_files(slot.display_number)
        self.slots.release(slot)
        self.pool.slot_freed()

    def _session_dir(self, session_id: str) -> Path:
        return self.homes.paths(session_id).root

    @contextlib.asynccontextmanager
    async def _session_lock(self, session_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            yield


def _measure(enabled: bool, reason: str | None) -> dict[str, object]:
    return {"enabled": enabled, "reason": None if enabled else reason}


def _raise_fd_limit() -> None:
    """Each desktop holds ~7 descriptors here (pipes, X connections): the usual soft limit
    of 1024 would cap the pool at ~140 desktops. Raise it to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FD_LIMIT if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        logger.info("raised the open-files limit from %d to %d", soft, want)


def _default_runtime_root() -> Path:
    if os.geteuid() == 0:
        return Path("/run/computer-use")
    return Path(tempfile.gettempdir()) / f"computer-use-{os.getuid()}"


def _expected_launcher_mode(users: UserPool) -> str:
    return "namespace" if users.enabled else "direct"
