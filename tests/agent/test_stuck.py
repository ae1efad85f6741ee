"""Stuck detection end to end: the real SDK against the loopback server, a real session
desktop (tests/agent/conftest.py).

A left click on the desktop's bare background does nothing (jwm's menu is on the right
button), so every click there "changes nothing"; an xterm shows typing, so typing there changes
the screen.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from computer_use.agent.tools import SessionTools
from computer_use.desktops import Desktop
from computer_use.loopback import (
    LoopbackModelServer,
    RecordedRequest,
    Reply,
    computer,
    member,
    say,
)
from tests.agent.fakes import RecordingHooks, run
from tests.desktop_fixtures import desktop_reap
from tests.helpers import wait_for_async

BETA_MODEL = "claude-opus-4-6"  # the beta computer tool
TOOLSET_MODEL = "claude-sonnet-5-5"  # the computer toolset


def steps(make: Any, until: int = 100) -> Any:
    """A model whose step n (from 0) is `make(n)`, until `until` requests, then "Done."."""

    def responder(request: RecordedRequest) -> Reply:
        done = sum(1 for m in request.messages if m["role"] == "assistant")
        return say("Done.") if done >= until else make(done)

    return responder


def assert_every_tool_use_answered(hooks: RecordingHooks) -> None:
    asked = [d["id"] for d in hooks.of("tool_use")]
    assert asked == [d["tool_use_id"] for d in hooks.of("tool_result")]


async def test_the_same_click_on_an_unchanged_screen_is_stuck_well_before_the_step_cap(
    tools: SessionTools,
) -> None:
    hooks = RecordingHooks()
    clicking = steps(lambda n: say("", computer("left_click", coordinate=[40, 40])))
    async with LoopbackModelServer(clicking) as server:
        result = await run(server, tools, hooks, model=BETA_MODEL, max_steps=50)
        assert (result.stop_reason, result.steps) == ("stuck", 5)  # STUCK_REPEATS' default
        complete = hooks.of("message_complete")[0]
        assert complete["stop_reason"] == "stuck"
        assert "the same left_click on an unchanged screen 5 times" in complete["detail"]
        assert_every_tool_use_answered(hooks)
        await run(server, tools, hooks, prompt="go on", model=BETA_MODEL, max_steps=1)
    assert server.rejections == []


async def test_toolset_actions_that_change_nothing_are_stuck_after_stuck_steps(
    tools: SessionTools,
) -> None:
    hooks = RecordingHooks()
    # a different place each time: only the "nothing changes" rule can see it
    roaming = steps(lambda n: say("", member("left_click", coordinate=[30 + 20 * n, 60])))
    async with LoopbackModelServer(roaming) as server:
        result = await run(server, tools, hooks, model=TOOLSET_MODEL, stuck_steps=4)
    assert (result.stop_reason, result.steps) == ("stuck", 4)
    assert (
        "4 steps in a row whose actions changed nothing"
        in (hooks.of("message_complete")[0]["detail"])
    )
    assert server.rejections == []


async def test_stuck_mid_turn_answers_the_rest_of_the_turn_as_not_run(
    tools: SessionTools,
) -> None:
    hooks = RecordingHooks()
    batch = say("", *[member("key", text="F13") for _ in range(4)])
    async with LoopbackModelServer([batch, say("Done.")]) as server:
        result = await run(server, tools, hooks, model=TOOLSET_MODEL, stuck_repeats=3)
        assert (result.stop_reason, result.steps) == ("stuck", 1)
        outputs = [(d["is_error"], d["output"]) for d in hooks.of("tool_result")]
        assert [error for error, _ in outputs] == [False, False, False, True]
        assert outputs[-1][1].startswith("Not run: Stopped: stuck, the same key")
        assert_every_tool_use_answered(hooks)
        await run(server, tools, hooks, prompt="go on", model=TOOLSET_MODEL)
    assert server.rejections == []


@pytest.mark.parametrize("model", [BETA_MODEL, TOOLSET_MODEL])
async def test_a_run_that_only_looks_is_never_stuck(tools: SessionTools, model: str) -> None:
    toolset = model == TOOLSET_MODEL
    observe: list[tuple[str, dict[str, Any]]] = [
        ("screenshot", {}),
        ("zoom", {"region": [0, 0, 200, 100]}),
        ("wait", {"duration": 0}),
        ("cursor_position", {}),
    ]

    def look(n: int) -> Reply:
        name, params = observe[n % len(observe)]
        return say("", member(name, **params) if toolset else computer(name, **params))

    hooks = RecordingHooks()
    async with LoopbackModelServer(steps(look, until=12)) as server:
        result = await run(server, tools, hooks, model=model, stuck_repeats=2, stuck_steps=2)
    assert (result.stop_reason, result.steps) == ("end_turn", 13)
    assert not any(d["is_error"] for d in hooks.of("tool_result"))


@pytest.fixture
async def xterm(desktop: Desktop) -> AsyncIterator[None]:
    blank = await desktop.fingerprint()  # without the tray, whose clock may tick meanwhile
    term = await desktop.spawn(["xterm", "-geometry", "60x10+0+0"])

    async def shown() -> bool:
        return await desktop.fingerprint() != blank

    try:
        await wait_for_async(shown, timeout=15, what="the xterm on screen")
        yield
    finally:
        await desktop_reap(term)


async def test_typing_that_shows_on_screen_is_not_stuck(tools: SessionTools, xterm: None) -> None:
    def type_letter(n: int) -> Reply:
        if n == 0:  # jwm gives the keyboard to the window clicked (FocusModel click)
            return say("", computer("left_click", coordinate=[60, 40]))
        return say("", computer("type", text="a"))

    hooks = RecordingHooks()
    async with LoopbackModelServer(steps(type_letter, until=8)) as server:
        result = await run(server, tools, hooks, model=BETA_MODEL, stuck_repeats=2, stuck_steps=2)
    assert (result.stop_reason, result.steps) == ("end_turn", 9)
