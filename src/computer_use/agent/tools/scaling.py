"""Between the screen and the image the model sees: Anthropic's documented downscaling.

The API shrinks images to at most 1568 px on the long edge and about 1.15 megapixels. We shrink
them ourselves by the same factor, advertise the shrunk size as the display size, and map the
model's coordinates back by dividing by the factor. Bounds are checked in the model's space:
that is the space it chose the coordinate in, so that is where an error message helps it.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image

from computer_use.agent.tools.base import ToolError

MAX_LONG_EDGE = 1568
MAX_PIXELS = 1_150_000


def scale_factor(width: int, height: int) -> float:
    return min(1.0, MAX_LONG_EDGE / max(width, height), math.sqrt(MAX_PIXELS / (width * height)))


@dataclass(frozen=True)
class Scaling:
    screen_width: int
    screen_height: int

    @property
    def scale(self) -> float:
        return scale_factor(self.screen_width, self.screen_height)

    @property
    def api_width(self) -> int:
        # Floor, so the advertised size never exceeds the limits the factor was computed for.
        return max(1, int(self.screen_width * self.scale))

    @property
    def api_height(self) -> int:
        return max(1, int(self.screen_height * self.scale))

    def check(self, x: int, y: int, *, what: str = "coordinate") -> None:
        if not (0 <= x < self.api_width and 0 <= y < self.api_height):
            raise ToolError(
                f"{what} ({x}, {y}) is outside the screen: x must be 0..{self.api_width - 1} "
                f"and y 0..{self.api_height - 1} (the screenshot is "
                f"{self.api_width}x{self.api_height})."
            )

    def to_screen(self, x: int, y: int) -> tuple[int, int]:
        """Model coordinates (checked) to screen pixels."""
        self.check(x, y)
        scale = self.scale
        return (
            min(self.screen_width - 1, round(x / scale)),
            min(self.screen_height - 1, round(y / scale)),
        )

    def to_api(self, x: int, y: int) -> tuple[int, int]:
        scale = self.scale
        return (
            min(self.api_width - 1, max(0, round(x * scale))),
            min(self.api_height - 1, max(0, round(y * scale))),
        )


def fit_png(png: bytes, width: int, height: int) -> bytes:
    """`png` resized to width x height (returned untouched when it already is that size)."""
    with Image.open(io.BytesIO(png)) as image:
        if image.size == (width, height):
            return png
        # BILINEAR with reducing_gap: close to LANCZOS for text at a fraction of the cost,
        # and this runs after every action.
        resized = image.convert("RGB").resize(
            (width, height), Image.Resampling.BILINEAR, reducing_gap=2.0
        )
    out = io.BytesIO()
    resized.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def fit_within_limits(png: bytes) -> bytes:
    """`png` shrunk to the API's limits if it exceeds them (used for zoomed regions)."""
    with Image.open(io.BytesIO(png)) as image:
        width, height = image.size
    scale = scale_factor(width, height)
    if scale >= 1.0:
        return png
    return fit_png(png, max(1, int(width * scale)), max(1, int(height * scale)))
