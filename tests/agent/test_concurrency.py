"""Two sessions at once: independent streams, and cancelling one leaves the other running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from computer_use.loopback import LoopbackModelServer
from computer_use.loopback.script import RecordedRequest, Reply, bash, say
from tests.agent.test_service import KEY, read_events
from tests.helpers import ServerProcess, running_server


def respond(request: RecordedRequest) -> Reply:
    """Each session's prompt names its own task; the second request of a run ends it."""
    prompts = [m for m in request.messages if m["role"] == "user"]
    first = prompts[0]["content"]
    prompt = first if isinstance(first, str) else first[0]["text"]
    if request.messages[-1]["role"] == "user" and len(request.messages) > 1:
        return say(f"Finished: {prompt}")
    return say("Working.", bash("sleep 30" if prompt == "slow" else "sleep 1; echo quick"))


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[LoopbackModelServer]:
    async with LoopbackModelServer(respond, chunk_size=64) as server:
        yield server


@pytest.fixture(scope="module")
def two_session_server(
    model: LoopbackModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with running_server(
        tmp_path_factory.mktemp("concurrency"),
        ANTHROPIC_BASE_URL=model.base_url,
        MAX_DISPLAYS="2",
        DESKTOP_DISPLAY_BASE="840",
        DESKTOP_USER_PREFIX="cu-ac",
    ) as proc:
        yield proc


async def test_cancelling_one_session_leaves_the_other_running(
    two_session_server: ServerProcess,
) -> None:
    headers = {"X-Anthropic-API-Key": KEY}
    async with httpx.AsyncClient(base_url=two_session_server.base_url, timeout=30) as http:
        slow, quick = [
            (await http.post("/api/v1/sessions", json={"title": t})).json()["id"]
            for t in ("slow", "quick")
        ]
        for sid, prompt in ((slow, "slow"), (quick, "quick")):
            posted = await http.post(
                f"/api/v1/sessions/{sid}/messages", json={"content": prompt}, headers=headers
            )
            assert posted.status_code == 202
        await read_events(http, slow, until="tool_use")
        assert (await http.post(f"/api/v1/sessions/{slow}/cancel")).json()["cancelled"] is True

        slow_events, quick_events = await asyncio.gather(
            read_events(http, slow, timeout=20), read_events(http, quick, timeout=30)
        )
        assert slow_events[-1][2]["stop_reason"] == "cancelled"
        assert quick_events[-1][2]["stop_reason"] == "end_turn"
        quick_result = next(d for _, t, d in quick_events if t == "tool_result")
        assert quick_result["output"] == "quick" and quick_result["is_error"] is False
        # each stream carries only its own session's work
        assert not any("quick" in str(d) for _, _, d in slow_events)
        assert not any("slow" in str(d) for _, _, d in quick_events)
        for sid in (slow, quick):
            assert (await http.delete(f"/api/v1/sessions/{sid}")).status_code == 204
