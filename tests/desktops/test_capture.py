"""Screenshots, zoom and settle detection on a real Xvfb desktop."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest
from PIL import Image

from computer_use.desktops import Desktop, DesktopInputError
from computer_use.desktops.capture import encode_png
from tests.desktop_fixtures import DESKTOP_SIZE
from tests.desktops.conftest import desktop_image
from tests.helpers import wait_for_async

BACKGROUND = (0x3A, 0x4A, 0x5C)  # jwmrc's desktop background


def test_encoded_png_decodes_to_the_same_pixels() -> None:
    width, height = 37, 23
    bgrx = os.urandom(width * height * 4)

    image = desktop_image(encode_png(bgrx, width, height))

    expected = Image.frombuffer("RGB", (width, height), bgrx, "raw", "BGRX", 0, 1)
    assert image.size == (width, height)
    assert image.tobytes() == expected.tobytes()


async def test_screenshot_is_a_png_of_the_screen_size_with_true_colours(
    desktop_plain: Desktop,
) -> None:
    png = await desktop_plain.screenshot()

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = desktop_image(png)
    assert image.size == DESKTOP_SIZE
    assert image.getpixel((500, 300)) == BACKGROUND  # channel order survives BGRX -> RGB
    tray = image.getpixel((500, DESKTOP_SIZE[1] - 5))
    assert tray != BACKGROUND  # jwm's tray is drawn along the bottom


async def test_zoom_returns_the_region_at_full_resolution(desktop_plain: Desktop) -> None:
    full = desktop_image(await desktop_plain.screenshot())

    region = desktop_image(await desktop_plain.zoom(0, 700, 300, 768))

    assert region.size == (300, 68)
    assert region.tobytes() == full.crop((0, 700, 300, 768)).tobytes()


async def test_zoom_clamps_to_the_screen_and_rejects_empty_regions(
    desktop_plain: Desktop,
) -> None:
    clamped = desktop_image(await desktop_plain.zoom(1000, 700, 2000, 900))
    assert clamped.size == (24, 68)

    with pytest.raises(DesktopInputError, match="empty"):
        await desktop_plain.zoom(10, 10, 10, 50)
    with pytest.raises(DesktopInputError):
        await desktop_plain.zoom(2000, 2000, 3000, 3000)


async def test_screenshots_are_fast(desktop_plain: Desktop) -> None:
    durations = []
    for _ in range(15):
        started = time.perf_counter()
        await desktop_plain.screenshot()
        durations.append(time.perf_counter() - started)

    durations.sort()
    # The target is 20 ms (bench/desktop.py); a loaded CI machine gets slack.
    assert durations[len(durations) // 2] < 0.1


async def test_settle_returns_quickly_on_a_static_screen(desktop_plain: Desktop) -> None:
    started = time.perf_counter()
    await desktop_plain.wait_until_settled(timeout=2.0)
    assert time.perf_counter() - started < 0.5


# Repaints a window in alternating colours as fast as the server takes it: a screen that
# never settles. A separate process, so the test's own event loop cannot pause it.
_REPAINTER = """
import sys
from Xlib import X
from Xlib.display import Display
d = Display(sys.argv[1])
s = d.screen()
w = s.root.create_window(0, 0, 200, 200, 0, s.root_depth, override_redirect=True)
w.map()
gc = w.create_gc()
n = 0
while True:
    n += 1
    gc.change(foreground=(n * 7919) & 0xFFFFFF)
    w.fill_rectangle(gc, 0, 0, 200, 200)
    d.sync()
"""


async def test_settle_gives_up_at_the_timeout_while_the_screen_keeps_changing(
    desktop_plain: Desktop,
) -> None:
    painter = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _REPAINTER, desktop_plain.display
    )
    try:
        await _wait_for_change(desktop_plain, (100, 100))

        started = time.perf_counter()
        await desktop_plain.wait_until_settled(timeout=0.5)
        elapsed = time.perf_counter() - started

        assert 0.45 <= elapsed < 1.0
    finally:
        painter.kill()
        await painter.wait()


async def _wait_for_change(desktop: Desktop, xy: tuple[int, int]) -> None:
    x, y = xy
    first = await desktop.zoom(x, y, x + 1, y + 1)

    async def changed() -> bool:
        return await desktop.zoom(x, y, x + 1, y + 1) != first

    await wait_for_async(changed, timeout=15, interval=0.02, what=f"the pixel at {xy} to change")


async def test_fingerprint_follows_the_screen_but_not_the_tray_clock(
    desktop_plain: Desktop,
) -> None:
    still = await desktop_plain.fingerprint()
    assert await desktop_plain.fingerprint() == still  # a static screen: the same value

    painter = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _REPAINTER, desktop_plain.display
    )
    try:
        await _wait_for_change(desktop_plain, (100, 100))
        assert await desktop_plain.fingerprint() != still
    finally:
        painter.kill()
        await painter.wait()
    # The tray (its clock ticks every minute) is left out: paint over it, nothing changes.
    tray = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _TRAY_PAINTER, desktop_plain.display, str(DESKTOP_SIZE[1] - 20)
    )
    try:
        await _wait_for_change(desktop_plain, (10, DESKTOP_SIZE[1] - 10))
        assert await desktop_plain.fingerprint() == still
    finally:
        tray.kill()
        await tray.wait()


# A window over the bottom 20 rows, in one colour, left up until killed.
_TRAY_PAINTER = """
import sys, time
from Xlib.display import Display
d = Display(sys.argv[1])
s = d.screen()
w = s.root.create_window(0, int(sys.argv[2]), 300, 20, 0, s.root_depth,
                         override_redirect=True, background_pixel=0xFF00FF)
w.map()
d.sync()
time.sleep(600)
"""
