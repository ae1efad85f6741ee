"""The computer toolset path end to end: the real SDK against the loopback server, the SDK's
driver on a real session desktop, a real X client (xev) telling where the clicks landed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from anthropic.tools.computer import BetaComputerConfirmContext
from PIL import Image

from computer_use.agent import history
from computer_use.agent.tools import SessionTools
from computer_use.agent.tools.scaling import Scaling
from computer_use.desktops import Desktop
from computer_use.loopback import LoopbackModelServer, Reply, ToolUse, computer, member, say
from tests.agent.fakes import RecordingHooks, run
from tests.desktop_fixtures import desktop_reap

NOT_EXECUTED = "Not executed: an earlier computer action in this turn failed."
# The 1920x1080 screen is shown to the model smaller (1429x804, scale 0.7447).
SCALING = Scaling(1920, 1080)
CLICK, HALTED = (300, 200), (310, 210)
SCREEN_CLICK = SCALING.to_screen(*CLICK)


class ClickWatcher:
    """An xev window covering the click targets; reports the root coordinates of presses."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.mapped = asyncio.Event()
        self.pressed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            if "MapNotify" in line or "Expose" in line:
                self.mapped.set()
            if line.startswith(("ButtonRelease", "ButtonPress")):
                self.pressed.set()

    def presses(self) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        for i, line in enumerate(self.lines):
            if line.startswith("ButtonPress"):
                match = re.search(r"root:\((\d+),(\d+)\)", "".join(self.lines[i : i + 3]))
                if match:
                    found.append((int(match.group(1)), int(match.group(2))))
        return found

    async def wait_for_presses(self, count: int, timeout: float = 5.0) -> list[tuple[int, int]]:
        async with asyncio.timeout(timeout):
            while len(self.presses()) < count:  # a press is complete once its lines follow
                self.pressed.clear()
                await self.pressed.wait()
        return self.presses()

    async def stop(self) -> None:
        await desktop_reap(self.proc)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@pytest.fixture
async def clicks(desktop_1080: Desktop) -> AsyncIterator[ClickWatcher]:
    proc = await desktop_1080.spawn(
        ["stdbuf", "-oL", "xev", "-geometry", "600x400+200+150", "-event", "button",
         "-event", "structure", "-event", "expose"]
    )  # fmt: skip
    watcher = ClickWatcher(proc)
    async with asyncio.timeout(10):
        await watcher.mapped.wait()
    yield watcher
    await watcher.stop()


@pytest.fixture
async def tools_1080(desktop_1080: Desktop) -> AsyncIterator[SessionTools]:
    session_tools = SessionTools(desktop_1080, bash_timeout=5.0, settle_timeout=0.3)
    yield session_tools
    await session_tools.aclose()


def script(toolset: bool, zoom: bool = True) -> list[Reply]:
    def act(name: str, **params: Any) -> ToolUse:
        return member(name, **params) if toolset else computer(name, **params)

    turns = [
        say("Looking, then clicking.", act("screenshot"), act("left_click", coordinate=list(CLICK)),
            thinking="Screenshot and click in one batch."),
        say("", act("left_click", coordinate=[5000, 10]),
            act("left_click", coordinate=list(HALTED))),
    ]  # fmt: skip
    if zoom:
        turns.append(say("A closer look.", act("zoom", region=[0, 0, 200, 100])))
    turns.append(say("Done."))
    return turns


def png_size(block: dict[str, Any]) -> tuple[int, int]:
    image = next(c for c in block["content"] if c["type"] == "image")
    with Image.open(io.BytesIO(base64.b64decode(image["source"]["data"]))) as png:
        return png.size


async def test_batched_member_calls_run_in_order_and_stop_after_a_failure(
    tools_1080: SessionTools, clicks: ClickWatcher
) -> None:
    hooks = RecordingHooks()
    async with LoopbackModelServer(script(toolset=True)) as server:
        result = await run(server, tools_1080, hooks, model="claude-sonnet-5-5")

    assert server.rejections == [] and result.stop_reason == "end_turn"
    first = server.requests[0]
    assert [t["type"] for t in first.tools] == [
        "computer_toolset_20260801",
        "bash_20250124",
        "text_editor_20250728",
        "custom",  # ask_person
    ]
    assert first.tools[0] == {"type": "computer_toolset_20260801"}
    assert all(r.betas == [] for r in server.requests)  # GA: no beta header, no beta tool
    assert first.body["thinking"] == {"type": "adaptive", "display": "summarized"}

    # Turn 1: a screenshot (an image at the scaled size) and a click, answered in order.
    shot, click = server.requests[1].last_tool_results()
    calls = server.requests[1].messages[-2]["content"]
    uses = [b for b in calls if b["type"] == "tool_use"]
    assert [u["toolset_name"] for u in uses] == ["computer", "computer"]
    assert [shot["tool_use_id"], click["tool_use_id"]] == [u["id"] for u in uses]
    assert shot["toolset_name"] == click["toolset_name"] == "computer"
    assert png_size(shot) == (SCALING.api_width, SCALING.api_height) == (1429, 804)
    assert click["content"] == [{"type": "text", "text": "Clicked."}]
    # The click really happened, at the screen point the screenshot point maps to.
    presses = await clicks.wait_for_presses(1)
    assert abs(presses[0][0] - SCREEN_CLICK[0]) <= 1 and abs(presses[0][1] - SCREEN_CLICK[1]) <= 1

    # Turn 2: the off-screen click fails; the next one is not run.
    failed, halted = server.requests[2].last_tool_results()
    assert failed["is_error"] and "outside the screen" in failed["content"][0]["text"]
    assert halted["is_error"] and halted["content"] == [{"type": "text", "text": NOT_EXECUTED}]
    assert failed["toolset_name"] == halted["toolset_name"] == "computer"
    assert len(clicks.presses()) == 1  # the halted click never reached the screen

    # Turn 3: zoom, captured at the screen's resolution (200x100 in the screenshot = 269x134).
    (zoomed,) = server.requests[3].last_tool_results()
    assert zoomed["toolset_name"] == "computer" and png_size(zoomed) == (269, 134)

    # Events: member calls read like actions, and carry their toolset.
    uses_events = hooks.of("tool_use")
    assert [e["description"] for e in uses_events] == [
        "take a screenshot",
        f"click at ({CLICK[0]}, {CLICK[1]})",
        "click at (5000, 10)",
        f"click at ({HALTED[0]}, {HALTED[1]})",
        "zoom into [0, 0, 200, 100]",
    ]
    assert {e["toolset_name"] for e in uses_events} == {"computer"}
    results = hooks.of("tool_result")
    assert [r["is_error"] for r in results] == [False, False, True, True, False]
    assert results[0]["image_url"] and results[4]["image_url"]
    # Stored history rebuilds the exact requests (toolset_name included) for the next message.
    assert await history.to_api(hooks.messages, hooks.load_image) == result.messages


@pytest.mark.parametrize(
    ("model", "tool", "beta", "zoom"),
    [
        ("claude-sonnet-4-6", "computer_20251124", "computer-use-2025-11-24", True),
        ("claude-haiku-4-5", "computer_20250124", "computer-use-2025-01-24", False),
        ("claude-sonnet-4-20250514", "computer_20250124", "computer-use-2025-01-24", False),
    ],
)
async def test_older_models_keep_their_beta_computer_tool(
    tools_1080: SessionTools, model: str, tool: str, beta: str, zoom: bool
) -> None:
    hooks = RecordingHooks()
    async with LoopbackModelServer(script(toolset=False, zoom=zoom)) as server:
        result = await run(server, tools_1080, hooks, model=model)
    assert server.rejections == [] and result.stop_reason == "end_turn"
    assert all(r.computer_tool_type == tool and r.betas == [beta] for r in server.requests)
    # The beta tool answers each call with a screenshot: no toolset_name anywhere.
    assert all("toolset_name" not in r for q in server.requests for r in q.last_tool_results())


async def test_a_beta_tool_call_on_the_toolset_is_an_error_not_a_crash(
    tools_1080: SessionTools,
) -> None:
    """A model on the toolset path that sends old-style calls, or unknown members."""
    versions_result = await tools_1080.run_member("toolu_1", "computer", "teleport", {})
    assert versions_result.error == "Error: unknown computer toolset member 'teleport'"
    other = await tools_1080.run_member("toolu_2", "browser", "navigate", {"url": "x"})
    assert other.is_error and "browser" in (other.error or "")
    bad = await tools_1080.run_member("toolu_3", "computer", "left_click", {"coordinate": "x"})
    assert bad.is_error and "invalid input for computer member 'left_click'" in (bad.error or "")


async def test_the_session_approver_is_asked_before_every_member_call(
    tools_1080: SessionTools, desktop_1080: Desktop
) -> None:
    asked: list[str] = []

    async def refuse_typing(context: BetaComputerConfirmContext) -> bool:
        asked.append(context.member)
        return context.member != "type"

    tools_1080.approver.decide = refuse_typing  # type: ignore[method-assign]
    moved = await tools_1080.run_member(
        "toolu_1", "computer", "mouse_move", {"coordinate": [10, 20]}
    )
    typed = await tools_1080.run_member("toolu_2", "computer", "type", {"text": "rm -rf ~"})
    assert asked == ["mouse_move", "type"]
    assert moved.output == "Moved the mouse."
    assert await desktop_1080.cursor_position() == SCALING.to_screen(10, 20)
    assert typed.is_error and "did not grant permission" in (typed.error or "")


def test_interrupted_member_calls_are_answered_with_their_toolset_name() -> None:
    stored = [
        {"role": "user", "content": [{"type": "text", "text": "go"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "t1", "name": "screenshot", "input": {},
                 "toolset_name": "computer"},
                {"type": "tool_use", "id": "t2", "name": "bash", "input": {"command": "ls"}},
            ],
        },
    ]  # fmt: skip
    repaired = history.repair(stored)
    answers = repaired[-1]["content"]
    assert [a.get("toolset_name") for a in answers] == ["computer", None]
    assert all(a["is_error"] for a in answers)
