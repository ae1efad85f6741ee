"""Budgets end to end: the real SDK against the loopback server, tools on a real Xvfb.

Each kind of cap stops a run with stop reason `budget` at the cap, with a valid history, and
the live totals (the `usage` events) price exactly the usage the stand-in reported.
"""

from __future__ import annotations

from typing import Any

import pytest

from computer_use.agent.budget import Budget, BudgetMeter, Totals
from computer_use.agent.tools import SessionTools
from computer_use.loopback import LoopbackModelServer, RecordedRequest, Reply, computer, say
from tests.agent.fakes import RecordingHooks, run

MODEL = "claude-opus-4-6"  # $5 / $25 per million input / output tokens


def looking(steps: int = 100, action: str = "screenshot", **params: Any) -> Any:
    """A model that takes `action` until it has made `steps` requests, then says it is done."""

    def responder(request: RecordedRequest) -> Reply:
        done = sum(1 for m in request.messages if m["role"] == "assistant")
        return say("Done.") if done >= steps else say("", computer(action, **params))

    return responder


def list_price(usage: dict[str, int]) -> float:
    """The pricing page's arithmetic for MODEL: input $5/M, cache writes 1.25x and cache reads
    0.1x of that, output $25/M."""
    return (
        usage["input_tokens"] * 5
        + usage["cache_creation_input_tokens"] * 5 * 1.25
        + usage["cache_read_input_tokens"] * 5 * 0.1
        + usage["output_tokens"] * 25
    ) / 1_000_000


def reported(server: LoopbackModelServer) -> list[dict[str, int]]:
    return [r.extras["response"]["usage"] for r in server.requests if "response" in r.extras]


def assert_every_tool_use_answered(hooks: RecordingHooks) -> None:
    asked = {d["id"] for d in hooks.of("tool_use")}
    answered = {d["tool_use_id"] for d in hooks.of("tool_result")}
    assert asked == answered


async def test_step_budget_stops_the_run_with_budget_and_a_valid_history(
    tools: SessionTools,
) -> None:
    hooks = RecordingHooks()
    meter = BudgetMeter(model=MODEL, run_budget=Budget(max_steps=3))
    async with LoopbackModelServer(looking()) as server:
        result = await run(server, tools, hooks, model=MODEL, meter=meter)
        assert (result.stop_reason, result.steps) == ("budget", 3)
        complete = hooks.of("message_complete")[0]
        assert complete["stop_reason"] == "budget"
        assert "budget max_steps of 3 model requests" in complete["detail"]
        assert complete["totals"]["run"]["steps"] == 3
        assert_every_tool_use_answered(hooks)
        # the next message goes on from a valid history
        await run(server, tools, hooks, prompt="go on", model=MODEL, max_steps=1)
    assert server.rejections == []


async def test_token_budget_stops_at_the_cap_and_leaves_the_last_calls_unrun(
    tools: SessionTools,
) -> None:
    hooks = RecordingHooks()
    cap = 6000
    meter = BudgetMeter(model=MODEL, run_budget=Budget(max_tokens=cap))
    async with LoopbackModelServer(looking()) as server:
        result = await run(server, tools, hooks, model=MODEL, meter=meter)
    assert result.stop_reason == "budget"
    tokens = [e["totals"]["run"]["tokens"] for e in hooks.of("usage")]
    assert tokens[-1] >= cap > tokens[-2], tokens  # stopped at the first step over the cap
    # the step that crossed the cap does not get its tools run
    last = hooks.of("tool_result")[-1]
    assert last["is_error"] and "budget max_tokens of 6000 tokens" in last["output"]
    assert "max_tokens" in hooks.of("message_complete")[0]["detail"]
    assert_every_tool_use_answered(hooks)
    assert tokens[-1] == sum(sum(u.values()) for u in reported(server))


async def test_cost_budget_prices_the_reported_usage_at_the_catalogue_prices(
    tools: SessionTools,
) -> None:
    hooks = RecordingHooks()
    meter = BudgetMeter(model=MODEL, run_budget=Budget(max_cost_usd=0.02))
    async with LoopbackModelServer(looking()) as server:
        result = await run(server, tools, hooks, model=MODEL, meter=meter)
    assert result.stop_reason == "budget"
    usages = reported(server)
    costs = [e["totals"]["run"]["cost_usd"] for e in hooks.of("usage")]
    assert len(costs) == len(usages) >= 2
    for step, cost in enumerate(costs, start=1):
        assert cost == pytest.approx(sum(list_price(u) for u in usages[:step]), abs=1e-6)
    assert costs[-1] >= 0.02 > costs[-2]
    complete = hooks.of("message_complete")[0]
    assert "budget max_cost_usd of $0.02" in complete["detail"]
    assert complete["totals"]["run"]["cost_usd"] == pytest.approx(costs[-1], abs=1e-6)


async def test_time_budget_stops_the_run_after_max_seconds(tools: SessionTools) -> None:
    hooks = RecordingHooks()
    meter = BudgetMeter(model=MODEL, run_budget=Budget(max_seconds=1.5))
    async with LoopbackModelServer(looking(action="wait", duration=1)) as server:
        result = await run(server, tools, hooks, model=MODEL, meter=meter)
    assert result.stop_reason == "budget"
    complete = hooks.of("message_complete")[0]
    assert complete["totals"]["run"]["seconds"] >= 1.5
    assert result.steps in (2, 3)  # each step waits 1 s: the cap is reached in the second
    assert "budget max_seconds of 1.5 s" in complete["detail"]
    assert server.rejections == []


async def test_session_budget_counts_what_earlier_runs_spent(tools: SessionTools) -> None:
    hooks = RecordingHooks()
    earlier = Totals(steps=4, input_tokens=100, output_tokens=10, cost_usd=0.001, seconds=3.0)
    meter = BudgetMeter(model=MODEL, session_budget=Budget(max_steps=6), session_spent=earlier)
    async with LoopbackModelServer(looking()) as server:
        result = await run(server, tools, hooks, model=MODEL, meter=meter)
    assert (result.stop_reason, result.steps) == ("budget", 2)
    detail = hooks.of("message_complete")[0]["detail"]
    assert "The session's budget max_steps of 6 model requests (6 made)" in detail
    assert "PATCH /api/v1/sessions/{id}" in detail
    totals = hooks.of("message_complete")[0]["totals"]
    assert (totals["run"]["steps"], totals["session"]["steps"]) == (2, 6)
    assert totals["session"]["seconds"] >= 3.0 + totals["run"]["seconds"] - 0.01
    assert totals["session"]["cost_usd"] == pytest.approx(
        0.001 + totals["run"]["cost_usd"], abs=1e-6
    )


async def test_usage_events_follow_each_response_with_the_budgets(tools: SessionTools) -> None:
    hooks = RecordingHooks()
    meter = BudgetMeter(
        model=MODEL, session_budget=Budget(max_tokens=10**9), run_budget=Budget(max_steps=9)
    )
    async with LoopbackModelServer(looking(steps=2)) as server:
        result = await run(server, tools, hooks, model=MODEL, meter=meter)
    assert result.stop_reason == "end_turn"
    usage = hooks.of("usage")
    assert len(usage) == 3 == len(server.requests)
    assert usage[0]["budget"] == {"run": {"max_steps": 9}, "session": {"max_tokens": 10**9}}
    assert [u["totals"]["run"]["steps"] for u in usage] == [1, 2, 3]
    first = reported(server)[0]
    assert {k: usage[0]["totals"]["run"][k] for k in first} == first


async def test_a_model_without_prices_reports_no_cost(tools: SessionTools) -> None:
    hooks = RecordingHooks()
    meter = BudgetMeter(model="my-fine-tuned-model", run_budget=Budget(max_tokens=10**9))
    async with LoopbackModelServer([say("Hello.")]) as server:
        await run(server, tools, hooks, model="my-fine-tuned-model", meter=meter)
    totals = hooks.of("message_complete")[0]["totals"]
    assert totals["run"]["cost_usd"] is None and totals["run"]["tokens"] > 0
