"""Session budgets through REST: set at creation, changed with PATCH, validated, held across
runs and across a restart; live totals in the stream. On SQLite and PostgreSQL, real desktops,
the loopback model (which takes a screenshot at every step, so only a cap ends a run)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from computer_use.loopback import LoopbackModelServer, RecordedRequest, Reply, member, say
from tests.agent.test_service import read_events
from tests.conftest import server_env
from tests.helpers import ServerProcess, wait_for_async
from tests.sessions.conftest import AUTH, MODEL_KEY

MODEL = "claude-sonnet-5-5"  # $2 / $10 per million input / output tokens


def looking(request: RecordedRequest) -> Reply:
    return say("", member("screenshot"))


def list_price(usage: dict[str, int]) -> float:
    """The pricing page for MODEL: input $2/M, cache writes 1.25x and reads 0.1x of it,
    output $10/M."""
    return (
        usage["input_tokens"] * 2
        + usage["cache_creation_input_tokens"] * 2 * 1.25
        + usage["cache_read_input_tokens"] * 2 * 0.1
        + usage["output_tokens"] * 10
    ) / 1_000_000


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[LoopbackModelServer]:
    async with LoopbackModelServer(looking, api_key=MODEL_KEY) as server:
        yield server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(name, DATABASE_URL); resolved outside the event loop (postgres_url runs its own)."""
    if request.param == "postgresql":
        return "postgresql", str(request.getfixturevalue("postgres_url"))
    return "sqlite", ""


@pytest.fixture(scope="module")
async def budget_server(
    database: tuple[str, str],
    model: LoopbackModelServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ServerProcess]:
    name, database_url = database
    data_dir = tmp_path_factory.mktemp(f"budget-{name}")
    base, prefix = {"sqlite": ("1860", "cu-bs"), "postgresql": ("1870", "cu-bp")}[name]
    env = server_env(
        data_dir,
        DATABASE_URL=database_url,
        ANTHROPIC_BASE_URL=model.base_url,
        AGENT_MAX_STEPS="30",
        MAX_DISPLAYS="2",
        DESKTOP_DISPLAY_BASE=base,
        DESKTOP_USER_PREFIX=prefix,
    )
    proc = ServerProcess(env, data_dir / "server.log")
    # Off the loop: the loopback model shares this event loop and must keep serving.
    await asyncio.to_thread(proc.start)
    try:
        yield proc
    finally:
        await asyncio.to_thread(proc.stop)


@pytest.fixture
async def http(budget_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=budget_server.base_url, timeout=30) as client:
        yield client


async def create(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await http.post("/api/v1/sessions", json={"title": "budget", **body})
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()
    return session


async def run(
    http: httpx.AsyncClient, sid: str, *, after: int, **body: Any
) -> tuple[dict[str, Any], list[tuple[int, str, dict[str, Any]]]]:
    """Posts a message, reads the stream after event `after` to its message_complete:
    (that event, all events read)."""
    last = after
    response = await http.post(
        f"/api/v1/sessions/{sid}/messages", json={"content": "look", **body}, headers=AUTH
    )
    assert response.status_code == 202, response.text
    events = await read_events(http, sid, last_event_id=last)
    return events[-1][2], events


async def test_bad_budgets_get_a_clear_422(http: httpx.AsyncClient) -> None:
    cases = [
        ({"max_steps": 0}, "budget.max_steps", "greater than or equal to 1"),
        ({"max_steps": "5"}, "budget.max_steps", "valid integer"),
        ({"max_tokens": 1.5}, "budget.max_tokens", "valid integer"),
        ({"max_cost_usd": -1}, "budget.max_cost_usd", "greater than 0"),
        ({"max_cost_usd": True}, "budget.max_cost_usd", "valid number"),
        ({"max_seconds": 0}, "budget.max_seconds", "greater than 0"),
        ({"max_minutes": 3}, "budget.max_minutes", "not permitted"),
        ("lots", "budget", "valid dictionary"),
    ]
    sid = (await create(http))["id"]
    for budget, field, words in cases:
        for response in (
            await http.post("/api/v1/sessions", json={"budget": budget}),
            await http.patch(f"/api/v1/sessions/{sid}", json={"budget": budget}),
            await http.post(
                f"/api/v1/sessions/{sid}/messages",
                json={"content": "x", "budget": budget},
                headers=AUTH,
            ),
        ):
            assert response.status_code == 422, (budget, response.text)
            error = response.json()["error"]
            assert error["code"] == "invalid_input"
            assert field in response.text and words in response.text, (budget, response.text)
    # A cost cap needs the model's prices.
    unpriced = await http.post(
        "/api/v1/sessions", json={"model": "my-fine-tuned-model", "budget": {"max_cost_usd": 1}}
    )
    assert unpriced.status_code == 422
    assert "max_cost_usd needs the model's prices" in unpriced.json()["error"]["message"]
    assert (await http.patch(f"/api/v1/sessions/{sid}", json={"colour": "red"})).status_code == 422
    missing = await http.patch(f"/api/v1/sessions/{uuid.uuid4()}", json={"budget": None})
    assert missing.status_code == 404
    assert (await http.delete(f"/api/v1/sessions/{sid}")).status_code == 204


async def test_patch_changes_the_budget(http: httpx.AsyncClient) -> None:
    session = await create(http, budget={"max_steps": 3, "max_seconds": 600})
    sid = session["id"]
    assert session["budget"] == {"max_steps": 3, "max_seconds": 600.0}
    assert session["spent"]["steps"] == 0
    changed = await http.patch(f"/api/v1/sessions/{sid}", json={"budget": {"max_cost_usd": 0.5}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["budget"] == {"max_cost_usd": 0.5}
    assert (await http.patch(f"/api/v1/sessions/{sid}", json={})).json()["budget"] == {
        "max_cost_usd": 0.5
    }  # nothing named, nothing changed
    assert (await http.get(f"/api/v1/sessions/{sid}")).json()["budget"] == {"max_cost_usd": 0.5}
    cleared = await http.patch(f"/api/v1/sessions/{sid}", json={"budget": None})
    assert cleared.json()["budget"] is None
    assert (await http.patch(f"/api/v1/sessions/{sid}", json={"budget": {}})).json()[
        "budget"
    ] is None
    assert (await http.delete(f"/api/v1/sessions/{sid}")).status_code == 204


async def test_session_budget_spans_runs_and_survives_a_restart(
    http: httpx.AsyncClient, budget_server: ServerProcess, model: LoopbackModelServer
) -> None:
    sid = (await create(http, budget={"max_steps": 3}))["id"]
    first_request = len(model.requests)

    # This message's own cap comes first.
    complete, events = await run(http, sid, after=0, budget={"max_steps": 2})
    assert (complete["stop_reason"], complete["steps"]) == ("budget", 2)
    assert "This message's budget max_steps of 2" in complete["detail"]
    usage = [d for _, t, d in events if t == "usage"]
    assert [u["totals"]["session"]["steps"] for u in usage] == [1, 2]
    assert usage[0]["budget"] == {"run": {"max_steps": 2}, "session": {"max_steps": 3}}

    # The session's cap counts the first run's steps too.
    complete, events = await run(http, sid, after=events[-1][0])
    assert (complete["stop_reason"], complete["steps"]) == ("budget", 1)
    assert "The session's budget max_steps of 3 model requests (3 made)" in complete["detail"]
    spent = (await http.get(f"/api/v1/sessions/{sid}")).json()["spent"]
    assert spent["steps"] == 3 == complete["totals"]["session"]["steps"]
    reported = [r.extras["response"]["usage"] for r in model.requests[first_request:]]
    assert len(reported) == 3
    assert spent["cost_usd"] == pytest.approx(sum(map(list_price, reported)), abs=1e-6)
    assert spent["tokens"] == sum(sum(u.values()) for u in reported)

    # Spent is spent: a new run ends at once, and after a restart too.
    complete, events = await run(http, sid, after=events[-1][0])
    assert (complete["stop_reason"], complete["steps"]) == ("budget", 0)
    await asyncio.to_thread(budget_server.stop)
    await asyncio.to_thread(budget_server.start)
    session = (await http.get(f"/api/v1/sessions/{sid}")).json()
    assert session["budget"] == {"max_steps": 3} and session["spent"]["steps"] == 3

    async def active() -> bool:
        status = (await http.get(f"/api/v1/sessions/{sid}")).json()["status"]
        return bool(status == "active")

    await wait_for_async(active, timeout=60, what="the desktop back after the restart")
    raised = await http.patch(f"/api/v1/sessions/{sid}", json={"budget": {"max_steps": 5}})
    assert raised.status_code == 200
    complete, _ = await run(http, sid, after=events[-1][0])
    assert (complete["stop_reason"], complete["steps"]) == ("budget", 2)
    assert complete["totals"]["session"]["steps"] == 5
    assert (await http.delete(f"/api/v1/sessions/{sid}")).status_code == 204


async def test_a_budget_patched_during_a_run_stops_it(http: httpx.AsyncClient) -> None:
    sid = (await create(http))["id"]
    last = 0
    posted = await http.post(
        f"/api/v1/sessions/{sid}/messages", json={"content": "look"}, headers=AUTH
    )
    assert posted.status_code == 202
    await read_events(http, sid, until="usage", last_event_id=last)
    patched = await http.patch(f"/api/v1/sessions/{sid}", json={"budget": {"max_steps": 2}})
    assert patched.status_code == 200
    events = await read_events(http, sid, last_event_id=last)
    complete = events[-1][2]
    assert complete["stop_reason"] == "budget", complete
    assert 2 <= complete["steps"] < 30
    assert "The session's budget max_steps of 2" in complete["detail"]
    assert (await http.delete(f"/api/v1/sessions/{sid}")).status_code == 204
