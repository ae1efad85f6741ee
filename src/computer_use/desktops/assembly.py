"""Putting one desktop together on a slot: its display's runtime files and X cookies, screen
capture, input, the supervised processes (Xvfb, jwm, x11vnc) and the on-demand browser; and
keeping each display's X socket ours (reclaimed from squatting session users, fresh cookie on
every Xvfb start)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from computer_use.desktops.browser import SessionBrowser
from computer_use.desktops.capture import ScreenCapture
from computer_use.desktops.desktop import Desktop
from computer_use.desktops.display import (
    DisplaySpec,
    components,
    prepare_runtime_dir,
    remove_runtime_dir,
)
from computer_use.desktops.errors import DesktopStartError
from computer_use.desktops.input import InputInjector
from computer_use.desktops.launcher import SessionSandbox
from computer_use.desktops.slots import Slot, abstract_name, lock_owner
from computer_use.desktops.sockets import evict
from computer_use.desktops.supervisor import EventCallback, Supervisor
from computer_use.desktops.users import SessionUser, UserPool
from computer_use.desktops.xauth import (
    ServiceAuthority,
    new_cookie,
    session_entries,
    write_authority,
)

logger = logging.getLogger(__name__)


@dataclass
class DesktopAssembler:
    width: int
    height: int
    runtime_root: Path
    users: UserPool
    on_event: EventCallback | None
    restart_limit: int
    restart_window: float
    _authority: ServiceAuthority | None = field(default=None, init=False)

    def open(self) -> None:
        """Take the service's X authority (once, at the manager's start)."""
        if self._authority is None:
            self._authority = ServiceAuthority.acquire()

    def close(self) -> None:
        if self._authority is not None:
            self._authority.release()
            self._authority = None

    @property
    def is_open(self) -> bool:
        return self._authority is not None

    def check_open(self) -> None:
        if self._authority is None:
            raise DesktopStartError("DesktopManager.start() has not been called")

    async def start(
        self,
        session_id: str,
        slot: Slot,
        user: SessionUser,
        sandbox: SessionSandbox,
        browser: bool,
        cleanup: contextlib.AsyncExitStack,
    ) -> Desktop:
        assert self._authority is not None
        spec = DisplaySpec(
            display_number=slot.display_number,
            width=self.width,
            height=self.height,
            runtime_dir=self.runtime_root / str(slot.display_number),
            home=sandbox.home_path,
        )
        cookie = new_cookie()
        await asyncio.to_thread(prepare_runtime_dir, spec, cookie, user.uid, user.gid)
        cleanup.callback(remove_runtime_dir, spec)
        self._authority.add(slot.display_number, cookie)
        cleanup.callback(self._authority.remove, slot.display_number)
        capture = ScreenCapture(spec.display, spec.width, spec.height)
        injector = InputInjector(spec.display)
        cleanup.callback(capture.close)
        cleanup.callback(injector.close)
        supervisor = Supervisor(
            session_id,
            sandbox,
            components(
                spec,
                uid=user.uid,
                wm_running=injector.window_manager_running,
                start_browser=browser,
                before_server=lambda: self._before_xvfb(spec, user),
            ),
            on_event=self.on_event,
            restart_limit=self.restart_limit,
            restart_window=self.restart_window,
        )
        firefox = SessionBrowser(session_id, supervisor, injector.query, capture.wait_until_settled)
        cleanup.push_async_callback(firefox.close)
        firefox.listen(spec.browser_request, user.uid, user.gid)
        await supervisor.start()  # stops what it started if it fails
        return Desktop(
            session_id=session_id,
            slot=slot,
            spec=spec,
            user=user,
            sandbox=sandbox,
            capture=capture,
            injector=injector,
            supervisor=supervisor,
            browser=firefox,
        )

    def remove_cookie(self, display_number: int) -> None:
        """The display's processes are gone: its cookie opens nothing any more."""
        if self._authority is not None:
            self._authority.remove(display_number)

    def taken(self, slot: Slot) -> bool:
        """The slot's display is held by something we may not reclaim (see slots.py)."""
        return not self._reclaim_display(slot.display_number)

    def _reclaim_display(self, display_number: int) -> bool:
        """Free the display's abstract X socket of squatting session users; True if free.
        (Before each Xvfb start too: a False there shows up as Xvfb not getting ready.)"""
        uids = {u.uid for u in self.users.all_users()} if self.users.enabled else set()
        if lock_owner(display_number) is not None:
            return False
        free = evict(abstract_name(display_number), uids)
        if not free:
            logger.warning("display :%d is held by a program outside the pool", display_number)
        return free

    def _before_xvfb(self, spec: DisplaySpec, user: SessionUser) -> None:
        """Before each Xvfb (re)start: reclaim the display's abstract name from squatting
        session users, and give the display a fresh cookie, so a cookie a squatter may have
        been offered while the display was down opens nothing."""
        self._reclaim_display(spec.display_number)
        cookie = new_cookie()
        entries = session_entries(spec.display_number, cookie)
        write_authority(spec.xauthority, entries, uid=user.uid, gid=user.gid)
        if self._authority is not None:
            self._authority.add(spec.display_number, cookie)
