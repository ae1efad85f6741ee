"""Putting one desktop together on a slot: its display's runtime files and X cookies, screen
capture, input, the supervised processes (Xvfb, jwm), the on-demand browser and x11vnc; and
keeping each display's X socket ours (reclaimed from squatting session users, fresh cookie on
every Xvfb start), and holding each display's client alias (xalias.py) while the slot is
ours."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from computer_use.desktops import landlock, xalias
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
from computer_use.desktops.viewing import SessionVnc
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
    vnc_linger: float  # seconds x11vnc outlives its last viewer (viewing.py)
    _authority: ServiceAuthority | None = field(default=None, init=False)
    # display -> its client alias, held while the slot is ours (xalias.py)
    _aliases: dict[int, socket.socket] = field(default_factory=dict, init=False)

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
        alias = xalias.alias_number(slot.display_number) if sandbox.scoped else None
        spec = DisplaySpec(
            display_number=slot.display_number,
            width=self.width,
            height=self.height,
            runtime_dir=self.runtime_root / str(slot.display_number),
            home=sandbox.home_path,
            client_display_number=alias,
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
        vnc = SessionVnc(session_id, supervisor, spec.vnc_socket, linger=self.vnc_linger)
        cleanup.push_async_callback(vnc.aclose)
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
            vnc=vnc,
        )

    def remove_cookie(self, display_number: int) -> None:
        """The display's processes are gone: its cookie opens nothing any more."""
        if self._authority is not None:
            self._authority.remove(display_number)

    def taken(self, slot: Slot) -> bool:
        """The slot's display is held by something we may not reclaim (see slots.py)."""
        if not self._reclaim_display(slot.display_number):
            return True
        if self.scoping_possible():
            alias = xalias.alias_name(slot.display_number)
            return not evict(alias, self._pool_uids(), listening=False)
        return False

    def scoping_possible(self) -> bool:
        """Session programs can run under the Landlock scope (landlock.py) here."""
        return self.users.enabled and os.geteuid() == 0 and landlock.enabled()

    def hold_alias(self, slot: Slot) -> tuple[int, int] | None:
        """Hold the display's client alias (xalias.py) until `release_alias`; (alias,
        display) for the sandbox, or None when its programs cannot be scoped."""
        if not self.scoping_possible():
            return None
        held = xalias.hold(slot.display_number, self._pool_uids())
        if held is None:
            logger.warning("display :%d: its alias is held outside the pool; the session runs "
                           "without the Landlock scope", slot.display_number)  # fmt: skip
            return None
        self._aliases[slot.display_number] = held
        return xalias.alias_number(slot.display_number), slot.display_number

    def release_alias(self, display_number: int) -> None:
        xalias.release(self._aliases.pop(display_number, None))

    def _pool_uids(self) -> set[int]:
        return {u.uid for u in self.users.all_users()} if self.users.enabled else set()

    def _reclaim_display(self, display_number: int) -> bool:
        """Free the display's abstract X socket of squatting session users; True if free.
        (Before each Xvfb start too: a False there shows up as Xvfb not getting ready.)"""
        if lock_owner(display_number) is not None:
            return False
        free = evict(abstract_name(display_number), self._pool_uids())
        if not free:
            logger.warning("display :%d is held by a program outside the pool", display_number)
        return free

    def _before_xvfb(self, spec: DisplaySpec, user: SessionUser) -> None:
        """Before each Xvfb (re)start: reclaim the display's abstract name from squatting
        session users, and give the display a fresh cookie, so a cookie a squatter may have
        been offered while the display was down opens nothing."""
        self._reclaim_display(spec.display_number)
        cookie = new_cookie()
        entries = session_entries(spec.display_numbers, cookie)
        write_authority(spec.xauthority, entries, uid=user.uid, gid=user.gid)
        if self._authority is not None:
            self._authority.add(spec.display_number, cookie)
