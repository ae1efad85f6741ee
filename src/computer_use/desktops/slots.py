"""Display slots: slot k (1..max) owns X display `base + k` (and pool user k).

A display's one host-wide resource is the abstract unix socket `@/tmp/.X11-unix/X<n>` (every
process of our network namespace shares that name space); its lock file and socket file live
in the session's private /tmp. A slot whose abstract name a session user squats is reclaimed
(the squatter is killed, `sockets.evict`); one held by any other program of the host is skipped.
VNC has no port: x11vnc listens on a unix socket in the session's runtime directory.

A session's slot is remembered in `DATA_DIR/sessions/<id>/desktop.json` so a restored session
gets its old display and pool user back when they are free.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from computer_use.desktops.errors import DesktopCapacityError
from computer_use.desktops.sockets import listening_inodes

X_SOCKET_DIR = Path("/tmp/.X11-unix")
SLOT_FILE = "desktop.json"


@dataclass(frozen=True)
class Slot:
    index: int  # 1..max_displays; also selects the session's pool user
    display_number: int

    @property
    def display(self) -> str:
        return f":{self.display_number}"


class SlotAllocator:
    """Hands out slots. Allocation never awaits (atomic on the event loop); the lock also
    makes it safe from worker threads."""

    def __init__(
        self,
        max_displays: int,
        *,
        display_base: int = 100,
        retry_after: int = 30,
        in_use: Callable[[Slot], bool] | None = None,
    ) -> None:
        if max_displays < 1:
            raise ValueError("max_displays must be at least 1")
        self.capacity = max_displays
        self.display_base = display_base
        self.retry_after = retry_after
        # Catches displays/ports held by something outside this allocator (another service
        # instance, a developer's server): such a slot is skipped rather than fought over.
        self._in_use = in_use or slot_held_by_others
        self._owners: dict[int, str] = {}
        self._lock = threading.Lock()

    def slot(self, index: int) -> Slot:
        display = self.display_base + index
        return Slot(index=index, display_number=display)

    def all_slots(self) -> list[Slot]:
        return [self.slot(i) for i in range(1, self.capacity + 1)]

    @property
    def used(self) -> int:
        return len(self._owners)

    def allocate(self, session_id: str, prefer: int | None = None) -> Slot:
        with self._lock:
            return self._allocate(session_id, prefer)

    def _allocate(self, session_id: str, prefer: int | None) -> Slot:
        if session_id in self._owners.values():
            raise ValueError(f"session {session_id!r} already holds a slot")
        order = list(range(1, self.capacity + 1))
        if prefer is not None and 1 <= prefer <= self.capacity:
            order.remove(prefer)
            order.insert(0, prefer)
        for index in order:
            if index in self._owners:
                continue
            slot = self.slot(index)
            if self._in_use(slot):
                continue
            self._owners[index] = session_id
            return slot
        raise DesktopCapacityError(self.capacity, self.retry_after)

    def release(self, slot: Slot) -> None:
        with self._lock:
            self._owners.pop(slot.index, None)


def slot_held_by_others(slot: Slot) -> bool:
    return display_in_use(slot.display_number)


def abstract_name(display_number: int) -> str:
    """The display's abstract socket as /proc/net/unix names it (X clients try it first)."""
    return f"@/tmp/.X11-unix/X{display_number}"


def lock_file(display_number: int) -> Path:
    return Path(f"/tmp/.X{display_number}-lock")


def socket_file(display_number: int) -> Path:
    return X_SOCKET_DIR / f"X{display_number}"


def lock_owner(display_number: int) -> int | None:
    """PID written in the display's X lock file, if the file exists and names a live process."""
    try:
        pid = int(lock_file(display_number).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def display_in_use(display_number: int) -> bool:
    if lock_owner(display_number) is not None:
        return True
    # An X server in another mount namespace has an invisible lock file but still holds the
    # abstract socket, which every namespace sharing our network namespace sees.
    return bool(listening_inodes(abstract_name(display_number)))


def remove_stale_display_files(display_number: int) -> bool:
    """Remove the lock file and socket of a display no live server holds. True if removed."""
    if display_in_use(display_number):
        return False
    removed = False
    for path in (lock_file(display_number), socket_file(display_number)):
        try:
            path.unlink()
            removed = True
        except FileNotFoundError:
            pass
    return removed


def load_slot_index(session_dir: Path) -> int | None:
    try:
        data = json.loads((session_dir / SLOT_FILE).read_text())
        index = data["slot"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return index if isinstance(index, int) else None


def save_slot(session_dir: Path, slot: Slot) -> None:
    session_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    record = {"slot": slot.index, "display": slot.display}
    tmp = session_dir / f".{SLOT_FILE}.tmp"
    tmp.write_text(json.dumps(record))
    tmp.replace(session_dir / SLOT_FILE)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
