"""Dedicated unprivileged Unix users, one per desktop slot.

A user per slot (not per session) keeps /etc/passwd bounded and makes "kill everything this
session started" a question the kernel can answer: every process of that uid.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
from dataclasses import dataclass

from computer_use.desktops.process import CommandError, run_command

logger = logging.getLogger(__name__)

SESSION_HOME = "/home/user"
NOLOGIN_SHELL = "/usr/sbin/nologin"
# useradd exit codes: 9 = name taken (someone created it concurrently: fine); 1 and 10 = the
# passwd/group file is locked by a concurrent useradd (retry).
USERADD_NAME_IN_USE = 9
USERADD_LOCKED = (1, 10)
USERADD_ATTEMPTS = 5


@dataclass(frozen=True)
class SessionUser:
    name: str
    uid: int
    gid: int


class UserPool:
    """One dedicated unprivileged Unix user per desktop slot: cu-s01 .. cu-sNN."""

    def __init__(self, size: int, *, prefix: str = "cu-s") -> None:
        if size < 1:
            raise ValueError("the pool needs at least one slot")
        self.size = size
        self.prefix = prefix
        # Not root: we cannot create or switch to other users, so everything runs as us.
        self.enabled = os.geteuid() == 0
        self._width = max(2, len(str(size)))

    def name_for_slot(self, slot: int) -> str:
        self._check_slot(slot)
        return f"{self.prefix}{slot:0{self._width}d}"

    def user_for_slot(self, slot: int) -> SessionUser:
        """The slot's user (slot is 1..size); our own user when the pool is disabled."""
        name = self.name_for_slot(slot)
        if not self.enabled:
            me = pwd.getpwuid(os.getuid())
            return SessionUser(name=me.pw_name, uid=me.pw_uid, gid=me.pw_gid)
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise LookupError(f"user {name} does not exist: call UserPool.ensure() first") from None
        return SessionUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)

    def all_users(self) -> list[SessionUser]:
        """Every slot's user (for reconcile: kill what a crashed server left running)."""
        return [self.user_for_slot(slot) for slot in range(1, self.size + 1)]

    async def ensure(self) -> None:
        """Create the missing users; a no-op (no subprocess) when they all exist."""
        if not self.enabled:
            return
        for slot in range(1, self.size + 1):
            name = self.name_for_slot(slot)
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                await self._create(name, slot)
                entry = pwd.getpwnam(name)
            if entry.pw_uid == 0 or entry.pw_gid == 0:
                raise RuntimeError(
                    f"session user {name} is privileged (uid/gid 0): fix /etc/passwd"
                )

    async def _create(self, name: str, slot: int) -> None:
        argv = [
            "useradd",
            "--system",  # no password aging, no mail spool, uid outside the login range
            "--no-create-home",
            "--home-dir",
            SESSION_HOME,
            "--shell",
            NOLOGIN_SHELL,
            "--user-group",
            "--comment",
            f"computer-use desktop slot {slot}",
            name,
        ]
        for attempt in range(1, USERADD_ATTEMPTS + 1):
            result = await run_command(argv, check=False)
            if result.returncode == 0 or result.returncode == USERADD_NAME_IN_USE:
                logger.info("created session user %s", name)
                return
            if result.returncode not in USERADD_LOCKED or attempt == USERADD_ATTEMPTS:
                raise CommandError(argv, result)
            await asyncio.sleep(0.05 * attempt)  # backoff while another useradd holds the lock

    def _check_slot(self, slot: int) -> None:
        if not 1 <= slot <= self.size:
            raise ValueError(f"slot {slot} is outside 1..{self.size}")
