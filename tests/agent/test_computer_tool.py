from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from computer_use.agent.tools import SessionTools
from computer_use.agent.tools.computer import ComputerTool
from computer_use.agent.versions import versions_for
from computer_use.desktops import Desktop
from tests.agent.fakes import FakeDesktop

NEW = versions_for("claude-opus-4-6")
OLD = versions_for("claude-sonnet-4-5")


def size(png: bytes | None) -> tuple[int, int]:
    assert png is not None
    return Image.open(io.BytesIO(png)).size


async def test_definition_advertises_the_scaled_size_and_zoom(desktop_1080: Desktop) -> None:
    tool = ComputerTool(desktop_1080)
    assert tool.definition(NEW) == {
        "type": "computer_20251124",
        "name": "computer",
        "display_width_px": 1429,
        "display_height_px": 804,
        "enable_zoom": True,
    }
    assert "enable_zoom" not in tool.definition(OLD)


async def test_screenshot_has_the_advertised_size(desktop_1080: Desktop) -> None:
    result = await ComputerTool(desktop_1080)({"action": "screenshot"}, NEW)
    assert size(result.image) == (1429, 804)


async def test_click_lands_on_the_scaled_screen_point(desktop_1080: Desktop) -> None:
    tool = ComputerTool(desktop_1080, settle_timeout=0.2)
    result = await tool({"action": "left_click", "coordinate": [715, 402]}, NEW)
    assert not result.is_error and size(result.image) == (1429, 804)
    assert await desktop_1080.cursor_position() == (960, 540)
    position = await tool({"action": "cursor_position"}, NEW)
    assert position.output == "X=715,Y=402"


async def test_native_size_screen_maps_one_to_one(desktop: Desktop) -> None:
    tool = ComputerTool(desktop, settle_timeout=0.2)
    await tool({"action": "mouse_move", "coordinate": [100, 700]}, NEW)
    assert await desktop.cursor_position() == (100, 700)
    await tool(
        {"action": "left_click_drag", "start_coordinate": [10, 10], "coordinate": [50, 60]}, NEW
    )
    assert await desktop.cursor_position() == (50, 60)
    for params in (
        {"action": "key", "text": "ctrl+l"},
        {"action": "type", "text": "héllo wörld"},
        {
            "action": "scroll",
            "coordinate": [640, 400],
            "scroll_direction": "down",
            "scroll_amount": 2,
        },
        {"action": "double_click"},
        {"action": "left_mouse_down"},
        {"action": "left_mouse_up"},
        {"action": "hold_key", "text": "shift", "duration": 0.05},
        {"action": "wait", "duration": 0.05},
    ):
        result = await tool(params, NEW)
        assert not result.is_error, params
        assert size(result.image) == (1280, 800)


async def test_zoom_returns_the_region_at_full_resolution(desktop_1080: Desktop) -> None:
    result = await ComputerTool(desktop_1080)({"action": "zoom", "region": [0, 0, 715, 402]}, NEW)
    assert size(result.image) == (960, 540)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"action": "left_click", "coordinate": [1429, 10]}, "outside the screen"),
        ({"action": "mouse_move"}, "coordinate is required"),
        ({"action": "mouse_move", "coordinate": [1.5, 2]}, "two integers"),
        ({"action": "type"}, "text is required"),
        ({"action": "scroll", "scroll_direction": "sideways"}, "scroll_direction"),
        ({"action": "scroll", "scroll_direction": "up", "scroll_amount": -1}, "non-negative"),
        ({"action": "wait", "duration": 1000}, "duration must be"),
        ({"action": "fly"}, "unknown action 'fly'"),
        ({"action": "zoom", "region": [10, 10, 5, 5]}, "region"),
        (
            {"action": "left_click_drag", "start_coordinate": [-1, 0], "coordinate": [5, 5]},
            "start_coordinate",
        ),
    ],
)
async def test_invalid_input_becomes_an_error_result(
    desktop_1080: Desktop, params: dict[str, Any], message: str
) -> None:
    tools = SessionTools(desktop_1080, settle_timeout=0.1)
    result = await tools.run("computer", params, NEW)
    assert result.is_error
    assert message in result.text


async def test_zoom_is_refused_with_the_older_tool_version() -> None:
    tools = SessionTools(FakeDesktop())
    result = await tools.run("computer", {"action": "zoom", "region": [0, 0, 10, 10]}, OLD)
    assert result.is_error and "computer_20250124" in result.text


async def test_actions_map_onto_the_desktop_with_modifiers_and_counts() -> None:
    desktop = FakeDesktop(1920, 1080)
    tool = ComputerTool(desktop)
    await tool({"action": "left_click", "coordinate": [715, 402], "text": "shift+ctrl"}, NEW)
    await tool({"action": "triple_click"}, NEW)
    await tool({"action": "right_click", "coordinate": [0, 0]}, NEW)
    await tool({"action": "middle_click", "coordinate": [1, 1], "key": "alt"}, OLD)
    await tool(
        {
            "action": "scroll",
            "coordinate": [715, 402],
            "scroll_direction": "left",
            "scroll_amount": 4,
            "text": "shift",
        },
        NEW,
    )
    await tool({"action": "hold_key", "text": "a", "duration": 0.5}, NEW)
    actions = [c for c in desktop.calls if c[0] not in ("screenshot", "settle")]
    assert actions == [
        ("click", 960, 540, "left", 1, ("shift", "ctrl")),
        ("click", None, None, "left", 3, ()),
        ("click", 0, 0, "right", 1, ()),
        ("click", 1, 1, "middle", 1, ("alt",)),
        ("scroll", 960, 540, "left", 4, ("shift",)),
        ("hold_key", "a", 0.5),
    ]
    # every screen-changing action waits for the screen to settle before the screenshot
    assert desktop.calls.count(("settle",)) == 6
