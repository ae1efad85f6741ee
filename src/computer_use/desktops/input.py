"""Mouse and keyboard through XTest, in-process (python-xlib), one connection per display.

Unicode typing: a character without a key in the current keymap is bound to one of the
keycodes that have no symbols at all (Xvfb's default map has ~19) and typed from there.
Clients translate keycodes when they *read* events, not when we send them, so rebinding a
keycode right after pressing it races with the client and yields the wrong character (this
is how xdotool loses non-ASCII text). So bindings are cached and reused, a keycode pressed in
this call is only rebound after a grace period, and the spare keycodes are cleared again
once typing has been idle for RESTORE_AFTER seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import Xlib.protocol.display
from Xlib import XK, X, error
from Xlib.display import Display
from Xlib.ext import xtest

from computer_use.desktop_port import MouseButton, ScrollDirection
from computer_use.desktops.errors import DesktopError, DesktopInputError, retried_once
from computer_use.desktops.keys import keysym_for_char, keysym_for_name, parse_combo

T = TypeVar("T")

BUTTONS: dict[str, int] = {"left": 1, "middle": 2, "right": 3}
SCROLL_BUTTONS: dict[str, int] = {"up": 4, "down": 5, "left": 6, "right": 7}
REBIND_GRACE = 0.15  # seconds a client gets to read keys before their keycode is rebound
RESTORE_AFTER = 2.0  # idle seconds before temporary bindings are cleared
DRAG_STEPS = 8  # intermediate motions, so toolkits see a drag rather than a jump
TYPE_BATCH = 64  # keystrokes per round trip


class InputInjector:
    def __init__(self, display: str) -> None:
        self.display = display
        self._lock = threading.Lock()
        self._conn: Display | None = None
        self._keymap: dict[int, tuple[int, int]] = {}  # keysym -> (keycode, shift level)
        self._spares: list[int] = []  # keycodes without any symbol when we connected
        self._bound: OrderedDict[int, int] = OrderedDict()  # keysym -> spare keycode (LRU)
        self._shift = 0
        self._restore: asyncio.TimerHandle | None = None

    # -- async API (DesktopPort semantics, screen coordinates) ------------------------------

    async def move(self, x: int, y: int) -> None:
        await self._call(lambda d: self._motion(d, x, y))

    async def click(
        self,
        x: int | None,
        y: int | None,
        *,
        button: MouseButton = "left",
        count: int = 1,
        modifiers: Sequence[str] = (),
    ) -> None:
        await self._press_button(x, y, _button(button), max(1, count), modifiers)

    async def button(self, button: MouseButton, *, press: bool) -> None:
        code = _button(button)
        kind = X.ButtonPress if press else X.ButtonRelease
        await self._call(lambda d: xtest.fake_input(d, kind, code))

    async def drag(self, x1: int, y1: int, x2: int, y2: int) -> None:
        def act(d: Display) -> None:
            self._motion(d, x1, y1)
            xtest.fake_input(d, X.ButtonPress, 1)
            d.sync()
            for step in range(1, DRAG_STEPS + 1):
                fx = x1 + (x2 - x1) * step // DRAG_STEPS
                fy = y1 + (y2 - y1) * step // DRAG_STEPS
                self._motion(d, fx, fy)
                d.sync()
            xtest.fake_input(d, X.ButtonRelease, 1)

        await self._call(act)

    async def scroll(
        self,
        x: int | None,
        y: int | None,
        direction: ScrollDirection,
        amount: int,
        *,
        modifiers: Sequence[str] = (),
    ) -> None:
        if direction not in SCROLL_BUTTONS:
            raise DesktopInputError(f"unknown scroll direction {direction!r}")
        await self._press_button(x, y, SCROLL_BUTTONS[direction], max(0, amount), modifiers)

    async def _press_button(
        self, x: int | None, y: int | None, code: int, times: int, modifiers: Sequence[str]
    ) -> None:
        """Press and release button `code` `times` times at (x, y), or where the pointer is
        when x/y are None, holding `modifiers` (a click, or a scroll's wheel steps)."""
        mods = [keysym_for_name(m) for m in modifiers]

        def act(d: Display) -> None:
            if x is not None and y is not None:
                self._motion(d, x, y)
            with self._held(d, mods):
                for _ in range(times):
                    xtest.fake_input(d, X.ButtonPress, code)
                    xtest.fake_input(d, X.ButtonRelease, code)

        await self._call(act)

    async def key(self, combo: str) -> None:
        sequence = parse_combo(combo)

        def act(d: Display) -> None:
            for keysyms in sequence:
                codes = self._press_codes(d, keysyms)
                for code in codes:
                    xtest.fake_input(d, X.KeyPress, code)
                for code in reversed(codes):
                    xtest.fake_input(d, X.KeyRelease, code)

        await self._keyboard(act)

    async def hold_key(self, combo: str, seconds: float) -> None:
        sequence = parse_combo(combo)
        keysyms = [ks for combo_keys in sequence for ks in combo_keys]
        codes: list[int] = []

        def press(d: Display) -> None:
            codes.extend(self._press_codes(d, keysyms))
            for code in codes:
                xtest.fake_input(d, X.KeyPress, code)

        def release(d: Display) -> None:
            for code in reversed(codes):
                xtest.fake_input(d, X.KeyRelease, code)

        await self._keyboard(press)
        try:
            await asyncio.sleep(max(0.0, seconds))
        finally:
            await self._call(release)

    async def type_text(self, text: str) -> None:
        keysyms = [keysym_for_char(c) for c in text.replace("\r\n", "\n") if c != "\r"]
        if keysyms:
            await self._keyboard(lambda d: self._type(d, keysyms))

    async def pointer(self) -> tuple[int, int]:
        def query(d: Display) -> tuple[int, int]:
            reply = d.screen().root.query_pointer()
            return int(reply.root_x), int(reply.root_y)

        return await self._call(query)

    async def window_manager_running(self) -> bool:
        """True once a EWMH window manager has announced itself on the root window."""

        def check(d: Display) -> bool:
            atom = d.intern_atom("_NET_SUPPORTING_WM_CHECK")
            prop = d.screen().root.get_full_property(atom, X.AnyPropertyType)
            if prop is None or len(prop.value) == 0:
                return False
            # A dead WM leaves the root property behind; its check window dies with it.
            window = d.create_resource_object("window", int(prop.value[0]))
            try:
                own = window.get_full_property(atom, X.AnyPropertyType)
            except error.BadWindow:
                return False
            return own is not None and len(own.value) > 0 and own.value[0] == prop.value[0]

        return await self._call(check)

    async def query(self, action: Callable[[Display], T]) -> T:
        """Run `action` on this display's connection (e.g. browser.py's window lookup)."""
        return await self._call(action)

    def close(self) -> None:
        self._cancel_restore()
        with self._lock:
            self._disconnect()

    # -- connection ------------------------------------------------------------------------

    async def _keyboard(self, action: Callable[[Display], None]) -> None:
        """Runs a keyboard action that may bind spare keycodes, and (re)arms their restore."""
        self._cancel_restore()
        try:
            await self._call(action)
        finally:
            loop = asyncio.get_running_loop()
            self._restore = loop.call_later(RESTORE_AFTER, self._schedule_restore)

    async def _call(self, action: Callable[[Display], T]) -> T:
        return await asyncio.to_thread(self._run, action)

    def _run(self, action: Callable[[Display], T]) -> T:
        def once() -> T:
            conn = self._connect()
            result = action(conn)
            conn.sync()  # the server has applied our input before we return
            return result

        with self._lock:
            return retried_once(
                once,
                lost=(error.ConnectionClosedError, error.DisplayError, OSError),
                disconnect=self._disconnect,
                failure=f"cannot reach display {self.display}",
            )

    def _connect(self) -> Display:
        if self._conn is not None:
            return self._conn
        use_poll_in_xlib()
        conn = Display(self.display)
        if not conn.query_extension("XTEST").present:
            conn.close()
            raise DesktopError(f"display {self.display} lacks the XTEST extension")
        self._conn = conn
        self._bound.clear()
        self._load_keymap(conn, first_time=True)
        return conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(error.ConnectionClosedError, OSError):
                self._conn.close()
            self._conn = None

    # -- keyboard mapping ------------------------------------------------------------------

    def _load_keymap(self, d: Display, *, first_time: bool = False) -> None:
        first = d.display.info.min_keycode
        count = d.display.info.max_keycode - first + 1
        keymap: dict[int, tuple[int, int]] = {}
        if first_time:
            self._spares = []
        for offset, syms in enumerate(d.get_keyboard_mapping(first, count)):
            code = first + offset
            if first_time and not any(syms):
                self._spares.append(code)
            for level in (0, 1):  # levels 2+ need Mode_switch / AltGr; bind a spare instead
                if level < len(syms) and syms[level]:
                    keymap.setdefault(syms[level], (code, level))
        self._keymap = keymap
        if first_time:
            self._shift = keymap.get(XK.XK_Shift_L, (0, 0))[0]

    def _code_for(self, d: Display, keysym: int, used: set[int]) -> tuple[int, int]:
        """(keycode, level) typing `keysym`, binding a spare keycode when the map lacks it."""
        if keysym in self._bound:
            self._bound.move_to_end(keysym)
            return self._bound[keysym], 0
        if keysym in self._keymap:
            return self._keymap[keysym]
        if not self._spares:
            raise DesktopInputError(f"no free keycode to type keysym {keysym:#x}")
        free = [c for c in self._spares if c not in self._bound.values()]
        if free:
            code = free[0]
        else:
            old_sym, code = next(iter(self._bound.items()))
            del self._bound[old_sym]
            if code in used:
                d.sync()
                time.sleep(REBIND_GRACE)  # see module docstring: let the client read the keys
                used.clear()
        d.change_keyboard_mapping(code, [(keysym, keysym)])
        self._bound[keysym] = code
        return code, 0

    def _press_codes(self, d: Display, keysyms: Iterable[int]) -> list[int]:
        codes: list[int] = []
        used: set[int] = set()
        for keysym in keysyms:
            code, level = self._code_for(d, keysym, used)
            used.add(code)
            if level == 1 and self._shift and self._shift not in codes:
                codes.append(self._shift)
            codes.append(code)
        return codes

    def _type(self, d: Display, keysyms: list[int]) -> None:
        self._load_keymap(d)  # another client (setxkbmap, x11vnc) may have changed it
        used: set[int] = set()
        for index, keysym in enumerate(keysyms, start=1):
            code, level = self._code_for(d, keysym, used)
            used.add(code)
            if level == 1:
                xtest.fake_input(d, X.KeyPress, self._shift)
            xtest.fake_input(d, X.KeyPress, code)
            xtest.fake_input(d, X.KeyRelease, code)
            if level == 1:
                xtest.fake_input(d, X.KeyRelease, self._shift)
            if index % TYPE_BATCH == 0:
                d.sync()

    def _schedule_restore(self) -> None:
        self._restore = None
        task = asyncio.get_running_loop().run_in_executor(None, self._restore_spares)
        task.add_done_callback(_ignore_result)

    def _restore_spares(self) -> None:
        with self._lock:
            if self._conn is None or not self._bound:
                return
            try:
                for code in self._bound.values():
                    self._conn.change_keyboard_mapping(code, [(X.NoSymbol, X.NoSymbol)])
                self._conn.sync()
            except (error.ConnectionClosedError, OSError):
                self._disconnect()
            self._bound.clear()

    def _cancel_restore(self) -> None:
        if self._restore is not None:
            self._restore.cancel()
            self._restore = None

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _motion(d: Display, x: int, y: int) -> None:
        xtest.fake_input(d, X.MotionNotify, x=int(x), y=int(y))

    def _held(self, d: Display, modifiers: list[int]) -> _HeldKeys:
        return _HeldKeys(self, d, modifiers)


class _HeldKeys:
    """Presses modifier keys on enter and releases them (in reverse) on exit."""

    def __init__(self, owner: InputInjector, d: Display, keysyms: list[int]) -> None:
        self._codes = owner._press_codes(d, keysyms) if keysyms else []
        self._d = d

    def __enter__(self) -> None:
        for code in self._codes:
            xtest.fake_input(self._d, X.KeyPress, code)

    def __exit__(self, *exc: object) -> None:
        for code in reversed(self._codes):
            xtest.fake_input(self._d, X.KeyRelease, code)


class _PollSelect:
    """Stands in for the `select` module inside python-xlib, which waits on its socket with
    select.select(): that raises for descriptors >= 1024 (FD_SETSIZE), a number a service
    with ~150 desktops reaches. Same semantics, on poll()."""

    error = OSError

    @staticmethod
    def select(
        rlist: list[Any], wlist: list[Any], xlist: list[Any], timeout: float | None = None
    ) -> tuple[list[Any], list[Any], list[Any]]:
        poller = select.poll()
        for obj in {*rlist, *wlist}:
            mask = (select.POLLIN if obj in rlist else 0) | (select.POLLOUT if obj in wlist else 0)
            poller.register(obj, mask)
        by_fd = {obj.fileno(): obj for obj in (*rlist, *wlist)}
        ready = poller.poll(None if timeout is None else timeout * 1000)
        # Errors and hang-ups count as readable, as select() reports them: the recv() that
        # follows sees the closed connection.
        readable = select.POLLIN | select.POLLERR | select.POLLHUP | select.POLLNVAL
        rs = [by_fd[fd] for fd, ev in ready if ev & readable and by_fd[fd] in rlist]
        ws = [by_fd[fd] for fd, ev in ready if ev & select.POLLOUT and by_fd[fd] in wlist]
        return rs, ws, []


def use_poll_in_xlib() -> None:
    """Idempotent; called before the first connection (see _PollSelect)."""
    Xlib.protocol.display.select = _PollSelect


def _button(name: str) -> int:
    try:
        return BUTTONS[name]
    except KeyError:
        raise DesktopInputError(f"unknown mouse button {name!r}") from None


def _ignore_result(future: Any) -> None:
    future.exception()  # retrieved so asyncio does not log "exception never retrieved"
