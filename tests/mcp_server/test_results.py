"""Tool results clients can rely on: every structured result fits the tool's declared output
schema, capabilities name only what exists, list_sessions (with API_TOKENS) lists the caller's
own sessions, and a task's outcome outlives a server restart."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import anyio
import jsonschema
import pytest
from mcp import Client

from computer_use.loopback import member, say
from tests.helpers import ServerProcess
from tests.mcp_server.conftest import Gate, Model, mcp_client, running_server, text_of

KEY = "sk-ant-results"
TOKEN_A, TOKEN_B = "token-of-alice-0123456789", "token-of-bob-0123456789"
WAIT = 3  # MCP_TASK_WAIT_SECONDS of this module's server


@pytest.fixture(scope="module")
async def server(
    model: Model, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("mcp-results")
    env = {"DESKTOP_DISPLAY_BASE": "780", "DESKTOP_USER_PREFIX": "cu-mr", "MAX_DISPLAYS": "4"}
    async with running_server(
        data_dir,
        ANTHROPIC_BASE_URL=model.server.base_url,
        API_TOKENS=f"{TOKEN_A},{TOKEN_B}",
        MCP_TASK_WAIT_SECONDS=str(WAIT),
        **env,
    ) as proc:
        yield proc


async def call(client: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    assert not result.is_error, text_of(result)
    structured: dict[str, Any] | None = result.structured_content
    assert structured is not None, name
    return structured


async def test_every_tool_result_fits_its_output_schema(
    server: ServerProcess, model: Model
) -> None:
    quick = model.scripted.script(
        "A quick look", say("Looking.", member("screenshot")), say("Fine.")
    )
    gate = Gate(then=say("Slow one done."))
    slow = model.scripted.script("A slow look", say("Looking.", member("screenshot")), gate)
    results: dict[str, list[dict[str, Any]]] = {}
    async with mcp_client(server, key=KEY, token=TOKEN_A) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}

        async def record(name: str, **args: Any) -> dict[str, Any]:
            structured = await call(client, name, args)
            results.setdefault(name, []).append(structured)
            return structured

        sid = (await record("create_session", title="schemas"))["session_id"]
        assert (await record("execute_task", session_id=sid, task=quick))["status"] == "completed"
        assert (await record("wait_for_task", session_id=sid))["status"] == "completed"
        # an action waiting for approval, and its answer
        ask_sid = (await record("create_session", approval=["type"]))["session_id"]
        asking = model.scripted.script(
            "A typed word", say("Typing.", member("type", text="x")), say("Typed.")
        )
        waiting = await record("execute_task", session_id=ask_sid, task=asking)
        # A loaded host may start the session's browser for longer than this server's 3 s.
        for _ in range(20):
            if waiting["status"] != "running":
                break
            waiting = await record("wait_for_task", session_id=ask_sid)
        assert waiting["status"] == "waiting_for_approval"
        answer = {"approval_id": waiting["approval"]["approval_id"], "decision": "approve"}
        answered = await record("answer_approval", session_id=ask_sid, **answer)
        assert answered["status"] in ("running", "completed") and answered["approval"] is None
        await record("get_session_status", session_id=sid)
        await record("take_screenshot", session_id=sid)
        await record("list_sessions")
        payload = base64.b64encode(b"a,b\n1,2\n").decode()
        await record("upload_file", session_id=sid, filename="t.csv", content_base64=payload)
        listed = await record("list_files", session_id=sid, path="Uploads")
        assert [e["name"] for e in listed["entries"]] == ["t.csv"]
        # Not done within this server's 3 s: "running" is a result like any other.
        running = await record("execute_task", session_id=sid, task=slow)
        assert running["status"] == "running" and running["done"] is False
        assert (await record("wait_for_task", session_id=sid, max_wait_seconds=1))["status"] == (
            "running"
        )
        assert (await record("cancel_task", session_id=sid))["status"] == "cancelled"
        await record("destroy_session", session_id=ask_sid)
        await record("destroy_session", session_id=sid)
    gate.release.set()
    assert set(results) == set(tools)
    for name, structured_results in results.items():
        schema = tools[name].output_schema
        assert schema is not None, name
        for structured in structured_results:
            jsonschema.validate(structured, schema)


async def test_capabilities_name_only_what_exists(server: ServerProcess) -> None:
    for mode in ("legacy", "auto"):
        async with mcp_client(server, token=TOKEN_A, mode=mode) as client:
            capabilities = client.server_capabilities
            resources = (await client.list_resources()).resources
        assert capabilities.prompts is None, mode
        assert capabilities.tools is not None and not capabilities.tools.list_changed, mode
        assert capabilities.resources is not None and resources, mode  # the live desktop app
        assert not capabilities.resources.subscribe and not capabilities.resources.list_changed
        assert capabilities.logging is None and capabilities.completions is None, mode
        if mode == "auto":  # the 2025 revisions have no capabilities.extensions on the wire
            assert capabilities.extensions is not None
            assert "io.modelcontextprotocol/ui" in capabilities.extensions


async def test_list_sessions_shows_only_the_callers_own(server: ServerProcess) -> None:
    async with (
        mcp_client(server, token=TOKEN_A) as alice,
        mcp_client(server, token=TOKEN_B) as bob,
    ):
        mine = (await call(alice, "create_session", {"title": "Alice's"}))["session_id"]
        theirs = (await call(bob, "create_session", {"title": "Bob's"}))["session_id"]
        try:
            listed = await call(alice, "list_sessions", {})
            ids = [s["session_id"] for s in listed["sessions"]]
            assert mine in ids and theirs not in ids
            assert listed["total"] == len(ids)
            bobs = await call(bob, "list_sessions", {"limit": 100})
            assert [s["session_id"] for s in bobs["sessions"]] == [theirs]
            assert bobs["sessions"][0]["title"] == "Bob's"
            other = await bob.call_tool("wait_for_task", {"session_id": mine})
            assert other.is_error and "Unknown session id" in text_of(other)
        finally:
            await call(alice, "destroy_session", {"session_id": mine})
            await call(bob, "destroy_session", {"session_id": theirs})


async def test_the_outcome_of_a_task_outlives_a_restart(
    server: ServerProcess, model: Model
) -> None:
    done_prompt = model.scripted.script("Finish before the restart", say("Finished."))
    gate = Gate(then=say("Never used."))
    cut_prompt = model.scripted.script(
        "Cut short by the restart", say("Looking.", member("screenshot")), gate
    )
    async with mcp_client(server, key=KEY, token=TOKEN_A) as client:
        finished = (await call(client, "create_session", {}))["session_id"]
        cut = (await call(client, "create_session", {}))["session_id"]
        result = await call(client, "execute_task", {"session_id": finished, "task": done_prompt})
        assert result["status"] == "completed"
        result = await call(client, "execute_task", {"session_id": cut, "task": cut_prompt})
        assert result["status"] == "running"
        with anyio.fail_after(20):
            await gate.entered.wait()
    await asyncio.to_thread(server.stop)  # SIGTERM: stops the run, records how it ended
    await asyncio.to_thread(server.start)
    gate.release.set()
    async with mcp_client(server, key=KEY, token=TOKEN_A) as client:
        kept = await call(client, "wait_for_task", {"session_id": finished})
        assert kept["status"] == "completed" and kept["answer"] == "Finished."
        interrupted = await call(client, "wait_for_task", {"session_id": cut})
        assert interrupted["done"] is True and interrupted["status"] == "cancelled"
        assert interrupted["steps"] == 1 and interrupted["last_action"] == "take a screenshot"
        for session_id in (finished, cut):
            await call(client, "destroy_session", {"session_id": session_id})
