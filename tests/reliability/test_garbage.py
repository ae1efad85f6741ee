"""Garbage in: generated requests from the OpenAPI schema, malformed resume ids, huge and odd
messages, deleting a session mid-run. A clear 4xx or a clean end, never a 500 or a stuck
session."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from computer_use.desktops.process import live_pids_of_uid
from computer_use.loopback import LoopbackModelServer
from computer_use.loopback.script import bash, say
from computer_use.sessions.schemas import MAX_OFFSET
from computer_use.streaming.sse import MAX_EVENT_ID
from tests.helpers import ServerProcess, wait_for_async
from tests.reliability.conftest import (
    AUTH,
    SseReader,
    footprint,
    is_type,
    make_server,
    mounts_under,
    post_message,
    start,
    uid_of,
    wait_status,
)

SCHEMATHESIS_EXAMPLES = 50
SCHEMATHESIS_CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


@pytest.fixture(scope="module")
async def garbage_server(
    model: LoopbackModelServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("garbage")
    server = make_server(
        data_dir,
        display_base=1040,
        letter="e",
        ANTHROPIC_BASE_URL=model.base_url,
        MAX_MESSAGE_CHARS="1000",
    )
    await start(server)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


def assert_error_shape(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text)
    error: dict[str, Any] = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    return error


async def test_generated_requests_get_no_500_and_only_documented_answers(
    model: LoopbackModelServer, tmp_path: Path
) -> None:
    # Its own server: the sessions it creates must not take the other tests' desktops.
    server = make_server(tmp_path, display_base=1050, letter="f", max_displays=1)
    await start(server)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{server.base_url}/openapi.json",
        "--checks",
        SCHEMATHESIS_CHECKS,
        # coverage: each bound and one past it; stateful: calls chained through the links
        # schemathesis infers (create, read, delete).
        "--phases",
        "examples,coverage,fuzzing,stateful",
        # 50 per operation: on the code before integer bounds, 25 already found the 500 of
        # GET /api/v1/sessions?offset=10000000000000000001; 10 (the old figure) did not.
        "--max-examples",
        str(SCHEMATHESIS_EXAMPLES),
        "--generation-deterministic",
        "--request-timeout",
        "20",
        # The stream never ends by design, and each accepted message starts an agent run:
        # both are fuzzed by hand below (resume ids, message bodies).
        "--exclude-path-regex",
        "/(stream|messages)$",
    ]
    try:
        result = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=300, check=False
        )
    finally:
        await asyncio.to_thread(server.stop)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "❌" not in result.stdout


async def test_malformed_resume_ids_are_a_clear_4xx_or_a_full_replay(
    garbage_server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=garbage_server.base_url, timeout=10) as http:
        sid = (await http.post("/api/v1/sessions", json={"title": "resume"})).json()["id"]
        try:
            odd_ids = ["abc", "-5", "1e9", "", "²", "١٢", "99999999999999999999999", "0x10"]
            for raw in odd_ids:
                headers = {b"Last-Event-ID": raw.encode()}
                async with http.stream(
                    "GET", f"/api/v1/sessions/{sid}/stream", headers=headers
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        assert_error_shape(response, 400, 422)
                        continue
                    first = await anext(response.aiter_bytes())
                    assert first.startswith(b"retry:"), (raw, first)
            for query in ["-1", "abc", "1.5", "", "1;2"]:
                response = await http.get(f"/api/v1/sessions/{sid}/stream?after={query}")
                assert_error_shape(response, 422)
            url = f"/api/v1/sessions/{sid}/stream?after={MAX_EVENT_ID}"
            async with http.stream("GET", url) as response:  # beyond the last event: just live
                assert response.status_code == 200
                assert (await anext(response.aiter_bytes())).startswith(b"retry:")
            response = await http.get(f"/api/v1/sessions/{sid}/stream?after=99999999999999999999")
            assert str(MAX_EVENT_ID) in assert_error_shape(response, 422)["message"]
        finally:
            await http.delete(f"/api/v1/sessions/{sid}")


async def test_numbers_past_their_bounds_are_a_422_naming_the_bound(
    garbage_server: ServerProcess,
) -> None:
    huge = "279209994463397203422671273984"
    async with httpx.AsyncClient(base_url=garbage_server.base_url, timeout=10) as http:
        for query in (f"offset={huge}", f"offset={MAX_OFFSET + 1}", f"limit={huge}"):
            error = assert_error_shape(await http.get(f"/api/v1/sessions?{query}"), 422)
            assert query.split("=")[0] in error["message"], error
        assert str(MAX_OFFSET) in error_message_of(
            await http.get(f"/api/v1/sessions?offset={huge}")
        )
        at_bound = await http.get(f"/api/v1/sessions?offset={MAX_OFFSET}")
        assert at_bound.status_code == 200, at_bound.text
        assert at_bound.json()["items"] == []


def error_message_of(response: httpx.Response) -> str:
    return str(assert_error_shape(response, 422)["message"])


async def test_huge_odd_and_nul_messages_are_refused_or_kept_exactly(
    garbage_server: ServerProcess, model: LoopbackModelServer
) -> None:
    async with httpx.AsyncClient(base_url=garbage_server.base_url, timeout=30) as http:
        odd = "Ω 👩🏽‍💻 مرحبا بالعالم \u200f שלום e\u0301 \U0001f1e8\U0001f1f1 \ufeff"
        created = await http.post("/api/v1/sessions", json={"title": odd})
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        try:
            assert (await http.get(f"/api/v1/sessions/{sid}")).json()["title"] == odd
            url = f"/api/v1/sessions/{sid}/messages"
            huge = await http.post(url, json={"content": "x" * 1001}, headers=AUTH)
            assert_error_shape(huge, 413, 422)
            megabytes = await http.post(url, json={"content": "x" * 5_000_000}, headers=AUTH)
            assert_error_shape(megabytes, 413, 422)
            for bad in ["nul \x00 inside", "\x00"]:
                assert_error_shape(await http.post(url, json={"content": bad}, headers=AUTH), 422)
            nul_title = await http.post("/api/v1/sessions", json={"title": "a\x00b"})
            assert_error_shape(nul_title, 422)
            not_json = await http.post(
                url, content=b"\xff\xfe{", headers={**AUTH, "Content-Type": "application/json"}
            )
            assert_error_shape(not_json, 400, 422)

            model.add(say(odd))
            stream = SseReader(http, sid).start()
            await post_message(http, sid, odd)
            await stream.until(is_type("message_complete"))
            await stream.close()
            assert next(d for _, t, d in stream.events if t == "text")["text"] == odd
            sent = model.requests[-1].messages[0]["content"]
            assert any(block.get("text") == odd for block in sent)
            await wait_status(http, sid, "active")
        finally:
            await http.delete(f"/api/v1/sessions/{sid}")


async def test_delete_during_a_run_ends_it_cleanly_and_frees_the_desktop(
    garbage_server: ServerProcess, model: LoopbackModelServer
) -> None:
    async with httpx.AsyncClient(base_url=garbage_server.base_url, timeout=30) as http:
        sid = (await http.post("/api/v1/sessions", json={"title": "doomed"})).json()["id"]
        held = footprint(garbage_server, sid, "e")
        model.add(say("Working.", bash("sleep 60")))
        stream = SseReader(http, sid).start()
        await post_message(http, sid, "work")
        await stream.until(is_type("tool_use"))

        deleted = await asyncio.wait_for(http.delete(f"/api/v1/sessions/{sid}"), 15)
        assert deleted.status_code == 204
        await asyncio.wait_for(stream.ended.wait(), 10)
        assert (await http.get(f"/api/v1/sessions/{sid}")).status_code == 404
        assert_error_shape(await http.post(f"/api/v1/sessions/{sid}/cancel"), 404)
        uid = uid_of(held.user)
        session_dir = Path(garbage_server.env["DATA_DIR"]) / "sessions" / sid

        async def released() -> bool:
            return not live_pids_of_uid(uid) and not mounts_under(session_dir)

        await wait_for_async(released, timeout=10, what="the deleted session's desktop gone")
        # its desktop slot is free again: both can be taken
        again = [(await http.post("/api/v1/sessions", json={"title": f"n{i}"})) for i in (1, 2)]
        assert [r.status_code for r in again] == [201, 201], [r.text for r in again]
        for response in again:
            assert (
                await http.delete(f"/api/v1/sessions/{response.json()['id']}")
            ).status_code == 204


GARBAGE_VALUES: list[object] = [
    None,
    "",
    "not-a-uuid",
    "00000000-0000-0000-0000-000000000000",
    "a\x00b",
    "👩🏽‍💻" * 500,
    "x" * 200_000,
    -1,
    2**70,
    1.5,
    True,
    [],
    {"nested": {"deep": [1, 2, 3]}},
]
MCP_ARGUMENTS = ["session_id", "title", "task", "model", "max_steps", "timeout"]


async def test_mcp_tools_answer_garbage_arguments_with_errors_and_the_server_lives_on(
    garbage_server: ServerProcess,
) -> None:
    from mcp import MCPError

    from tests.mcp_server.conftest import mcp_client

    answered = 0
    async with mcp_client(garbage_server, key=AUTH["X-Anthropic-API-Key"]) as client:
        tools = [t.name for t in (await client.list_tools()).tools]
        assert "execute_task" in tools
        for tool in tools:
            calls: list[dict[str, object]] = [{}, {"unknown": 1}]
            calls += [{name: value} for name in MCP_ARGUMENTS for value in GARBAGE_VALUES]
            for arguments in calls:
                if tool == "create_session" and not _invalid_for_create(arguments):
                    continue  # a valid create makes a desktop: that is not garbage
                try:
                    result = await client.call_tool(tool, arguments)
                except MCPError:
                    answered += 1
                    continue
                assert result.is_error, (tool, arguments, result)
                answered += 1
    assert answered > 100
    async with httpx.AsyncClient(base_url=garbage_server.base_url, timeout=10) as http:
        assert (await http.get("/api/v1/health")).status_code == 200
        listed = (await http.get("/api/v1/sessions")).json()
        assert listed["total"] == 0, "garbage created sessions"
    log = garbage_server.log_path.read_text()
    assert "Traceback" not in log, log[-4000:]


def _invalid_for_create(arguments: dict[str, object]) -> bool:
    """create_session's arguments are all optional strings: only a wrong type or an
    oversized string is sure to be refused (anything else would create a desktop)."""
    if len(arguments) != 1 or next(iter(arguments)) not in ("title", "model"):
        return False
    value = next(iter(arguments.values()))
    return (value is not None and not isinstance(value, str)) or (
        isinstance(value, str) and len(value) > 200
    )
