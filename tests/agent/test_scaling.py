from __future__ import annotations

import io

import pytest
from PIL import Image

from computer_use.agent.tools.base import ToolError
from computer_use.agent.tools.scaling import Scaling, fit_png, fit_within_limits, scale_factor
from tests.agent.fakes import png


def test_1280x800_is_sent_at_native_size() -> None:
    scaling = Scaling(1280, 800)
    assert scaling.scale == 1.0
    assert (scaling.api_width, scaling.api_height) == (1280, 800)
    assert scaling.to_screen(1279, 799) == (1279, 799)


def test_1920x1080_is_scaled_under_the_pixel_budget() -> None:
    scaling = Scaling(1920, 1080)
    assert scaling.scale == pytest.approx((1.15e6 / (1920 * 1080)) ** 0.5)
    assert (scaling.api_width, scaling.api_height) == (1429, 804)
    assert scaling.api_width * scaling.api_height <= 1_150_000
    assert scaling.to_screen(0, 0) == (0, 0)
    assert scaling.to_screen(715, 402) == (960, 540)
    assert scaling.to_screen(1428, 803) == (1918, 1078)


def test_long_edge_limit_applies_to_wide_screens() -> None:
    assert scale_factor(3000, 400) == pytest.approx(1568 / 3000)


def test_coordinates_round_trip_between_api_and_screen() -> None:
    scaling = Scaling(1920, 1080)
    for x, y in [(0, 0), (100, 200), (715, 402), (1428, 803)]:
        assert scaling.to_api(*scaling.to_screen(x, y)) == (x, y)


@pytest.mark.parametrize("point", [(1429, 0), (0, 804), (-1, 5), (5000, 5000)])
def test_out_of_bounds_is_checked_in_api_space(point: tuple[int, int]) -> None:
    with pytest.raises(ToolError, match=r"outside the screen.*0\.\.1428.*0\.\.803"):
        Scaling(1920, 1080).to_screen(*point)


def test_fit_png_resizes_and_keeps_a_matching_png_untouched() -> None:
    original = png(1920, 1080)
    resized = fit_png(original, 1429, 804)
    assert Image.open(io.BytesIO(resized)).size == (1429, 804)
    assert fit_png(resized, 1429, 804) is resized


def test_zoomed_regions_are_shrunk_only_beyond_the_limits() -> None:
    small = png(400, 300)
    assert fit_within_limits(small) is small
    big = Image.open(io.BytesIO(fit_within_limits(png(2000, 2000)))).size
    assert big[0] * big[1] <= 1_150_000
