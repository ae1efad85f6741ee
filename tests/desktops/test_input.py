"""XTest input on a real desktop, observed by a real X client (or read back from a program)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from Xlib import XK, X
from Xlib.display import Display

from computer_use.desktops import Desktop, DesktopInputError
from computer_use.desktops.input import InputInjector
from computer_use.desktops.keys import keysym_for_char, keysym_for_name, parse_combo
from tests.desktop_fixtures import DESKTOP_SIZE, desktop_reap
from tests.desktops.conftest import desktop_wait_for_pixel

EVENT_MASK = (
    X.ButtonPressMask
    | X.ButtonReleaseMask
    | X.PointerMotionMask
    | X.KeyPressMask
    | X.KeyReleaseMask
    | X.StructureNotifyMask
)


class Observer:
    """A full-screen override-redirect window on the desktop that records its input events."""

    def __init__(self, display: str) -> None:
        self.d = Display(display)
        screen = self.d.screen()
        self.window = screen.root.create_window(
            0, 0, DESKTOP_SIZE[0], DESKTOP_SIZE[1], 0, screen.root_depth,
            X.InputOutput, X.CopyFromParent,
            override_redirect=True, background_pixel=screen.white_pixel, event_mask=EVENT_MASK,
        )  # fmt: skip
        self.window.map()
        self.events: list[Any] = []
        self.collect(lambda e: e.type == X.MapNotify)
        self.window.set_input_focus(X.RevertToParent, X.CurrentTime)
        self.d.sync()
        self.events.clear()

    def collect(self, done: Callable[[Any], bool], within: float = 5.0) -> list[Any]:
        """Reads events until one satisfies `done` (returned list includes it)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            while self.d.pending_events():
                event = self.d.next_event()
                self.events.append(event)
                if done(event):
                    return self.events
            time.sleep(0.005)
        raise TimeoutError(f"no matching event; got {[e.type for e in self.events]}")

    def keysym(self, event: Any) -> int:
        return int(self.d.keycode_to_keysym(event.detail, 0))

    def close(self) -> None:
        self.window.destroy()
        self.d.close()


@pytest.fixture
async def observer(desktop_plain: Desktop) -> AsyncIterator[Observer]:
    obs = await asyncio.to_thread(Observer, desktop_plain.display)
    try:
        yield obs
    finally:
        await asyncio.to_thread(obs.close)


async def _collect(obs: Observer, done: Callable[[Any], bool]) -> list[Any]:
    return await asyncio.to_thread(obs.collect, done)


def _presses(events: list[Any], kind: int = X.ButtonPress) -> list[Any]:
    return [e for e in events if e.type == kind]


# -- key names ------------------------------------------------------------------------------


def test_xdotool_key_names_map_to_keysyms() -> None:
    assert parse_combo("ctrl+l") == [[XK.XK_Control_L, XK.XK_l]]
    assert parse_combo("ctrl+shift+t Return") == [
        [XK.XK_Control_L, XK.XK_Shift_L, XK.XK_t],
        [XK.XK_Return],
    ]
    assert parse_combo("super") == [[XK.XK_Super_L]]
    assert parse_combo("KP_Enter") == [[XK.XK_KP_Enter]]
    assert parse_combo("ctrl++") == [[XK.XK_Control_L, XK.XK_plus]]
    assert keysym_for_name("enter") == XK.XK_Return
    assert keysym_for_name("page_down") == XK.XK_Next
    assert keysym_for_name("f5") == XK.XK_F5
    assert keysym_for_name("XF86AudioMute") != 0
    assert keysym_for_char("é") == 0xE9
    assert keysym_for_char("✓") == 0x1000000 + ord("✓")


def test_unknown_key_names_are_rejected_with_a_hint() -> None:
    with pytest.raises(DesktopInputError, match="unknown key name 'ctrl-l'"):
        parse_combo("ctrl-l")
    with pytest.raises(DesktopInputError, match="control character"):
        keysym_for_char("\x07")


# -- mouse ------------------------------------------------------------------------------------


async def test_click_presses_the_button_at_the_point_with_modifiers_held(
    desktop_plain: Desktop, observer: Observer
) -> None:
    await desktop_plain.click(200, 150, button="right", modifiers=["ctrl", "shift"])

    events = await _collect(
        observer, lambda e: e.type == X.KeyRelease and observer.keysym(e) == XK.XK_Control_L
    )
    press = _presses(events)[0]
    assert (press.detail, press.event_x, press.event_y) == (3, 200, 150)
    assert press.state & X.ControlMask and press.state & X.ShiftMask
    released = [observer.keysym(e) for e in _presses(events, X.KeyRelease)]
    assert released == [XK.XK_Shift_L, XK.XK_Control_L]  # in reverse order, after the click


async def test_double_click_sends_two_clicks_at_the_current_position(
    desktop_plain: Desktop, observer: Observer
) -> None:
    await desktop_plain.move_mouse(321, 123)
    await desktop_plain.click(None, None, count=2)

    releases = 0

    def second_release(e: Any) -> bool:
        nonlocal releases
        if e.type == X.ButtonRelease:
            releases += 1
        return releases == 2

    events = await _collect(observer, second_release)
    presses = _presses(events)
    assert [(p.detail, p.event_x, p.event_y) for p in presses] == [(1, 321, 123)] * 2
    assert await desktop_plain.cursor_position() == (321, 123)


async def test_scroll_uses_wheel_buttons(desktop_plain: Desktop, observer: Observer) -> None:
    await desktop_plain.scroll(50, 60, "down", 3)
    await desktop_plain.scroll(50, 60, "left", 1, modifiers=["shift"])

    events = await _collect(observer, lambda e: e.type == X.ButtonRelease and e.detail == 6)
    assert [p.detail for p in _presses(events)] == [5, 5, 5, 6]
    assert _presses(events)[-1].state & X.ShiftMask


async def test_drag_moves_with_the_button_held(desktop_plain: Desktop, observer: Observer) -> None:
    await desktop_plain.drag(100, 100, 300, 200)

    events = await _collect(observer, lambda e: e.type == X.ButtonRelease)
    press, release = _presses(events)[0], events[-1]
    motions = [e for e in events if e.type == X.MotionNotify and e.state & X.Button1Mask]
    assert (press.event_x, press.event_y) == (100, 100)
    assert (release.event_x, release.event_y) == (300, 200)
    assert len(motions) >= 3


async def test_mouse_down_and_up_are_separate(desktop_plain: Desktop, observer: Observer) -> None:
    await desktop_plain.move_mouse(10, 10)
    await desktop_plain.mouse_down()
    events = await _collect(observer, lambda e: e.type == X.ButtonPress)
    assert not [e for e in events if e.type == X.ButtonRelease]

    await desktop_plain.mouse_up()
    await _collect(observer, lambda e: e.type == X.ButtonRelease)


# -- keyboard ---------------------------------------------------------------------------------


async def test_key_combo_presses_in_order_and_releases_in_reverse(
    desktop_plain: Desktop, observer: Observer
) -> None:
    await desktop_plain.key("ctrl+shift+t KP_Enter")

    events = await _collect(observer, lambda e: observer.keysym(e) == XK.XK_KP_Enter)
    keys = [(e.type, observer.keysym(e)) for e in events if e.type in (X.KeyPress, X.KeyRelease)]
    press, release = X.KeyPress, X.KeyRelease
    assert keys[:6] == [
        (press, XK.XK_Control_L),
        (press, XK.XK_Shift_L),
        (press, XK.XK_t),
        (release, XK.XK_t),
        (release, XK.XK_Shift_L),
        (release, XK.XK_Control_L),
    ]
    t_press = next(e for e in events if e.type == press and observer.keysym(e) == XK.XK_t)
    assert t_press.state & X.ControlMask and t_press.state & X.ShiftMask


async def test_hold_key_keeps_the_key_down_for_the_duration(
    desktop_plain: Desktop, observer: Observer
) -> None:
    await desktop_plain.hold_key("shift", 0.3)

    events = await _collect(observer, lambda e: e.type == X.KeyRelease)
    press = next(e for e in events if e.type == X.KeyPress)
    assert events[-1].time - press.time >= 250  # server timestamps, in ms


async def test_unknown_key_is_an_input_error(desktop_plain: Desktop) -> None:
    with pytest.raises(DesktopInputError):
        await desktop_plain.key("ctrl+nonsense")


# -- typing into a real program ---------------------------------------------------------------


async def _type_into_xterm(desktop: Desktop, text: str, name: str) -> str:
    """Types `text` + Return into an xterm running `read`, returns what `read` got."""
    script = f'read -r line; printf %s "$line" > "$HOME/{name}"'
    term = await desktop.spawn(
        ["xterm", "-geometry", "60x5+200+200", "-bg", "#ff00ff", "-e", "bash", "-c", script]
    )
    try:
        await desktop_wait_for_pixel(desktop, (400, 260), (255, 0, 255))
        await desktop.click(400, 260)  # focus it (jwm: click to focus)
        await desktop.type_text(text)
        await desktop.key("Return")
        async with asyncio.timeout(10):
            await term.wait()
    finally:
        await desktop_reap(term)
    result = await desktop.run(["cat", f"/home/user/{name}"], timeout=10)
    assert result.returncode == 0, result
    return result.stdout.decode()


async def test_typing_ascii_with_shifted_characters_round_trips(desktop_plain: Desktop) -> None:
    text = "Hello, World! ~/a_b-c=d+e(f)[g]{h}|i\\j:k;l'm\"n<o>p?q@r#s$t%u^v&w*x`"

    assert await _type_into_xterm(desktop_plain, text, "ascii.txt") == text


async def test_typing_unicode_round_trips_even_beyond_the_spare_keycodes(
    desktop_plain: Desktop,
) -> None:
    # More distinct non-keymap characters than Xvfb has spare keycodes (19): forces rebinding.
    text = "héllo wörld ✓ 日本 — " + "".join(chr(0x4E00 + i) for i in range(30)) + " ñ€Ωπ😀"

    assert await _type_into_xterm(desktop_plain, text, "unicode.txt") == text


async def test_input_connection_works_beyond_the_select_descriptor_limit(
    desktop_plain: Desktop,
) -> None:
    # The X connection opened next gets a descriptor above FD_SETSIZE (1024).
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
    injector = InputInjector(desktop_plain.display)
    try:
        await injector.move(7, 9)

        assert await injector.pointer() == (7, 9)
    finally:
        injector.close()
        for fd in held:
            os.close(fd)
