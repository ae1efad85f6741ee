"""Tasks far longer than a client's call: the official TypeScript client with its default
options (60 s timeout), the official Python client in both protocol modes, and mcp-remote over
stdio each follow a 95 s task (one model call of 60 s, one 28 s command) to its end with
execute_task and wait_for_task; all four run at once, so the module takes about as long as
one task."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import REQUEST_TIMEOUT

from computer_use.loopback import bash, member, say
from tests.helpers import ServerProcess
from tests.mcp_server.conftest import Gate, Model, ProgressLog, Slow, mcp_client, running_server

JS_DIR = Path(__file__).with_name("js")
KEY = "sk-ant-long-tasks"
KINDS = ["typescript", "python-legacy", "python-auto", "mcp-remote"]
MODEL_CALL_SECONDS = 60.0
COMMAND_SECONDS = 28
HEARTBEAT_LIMIT = 15.0

pytestmark = pytest.mark.skipif(
    not (JS_DIR / "node_modules").is_dir(), reason="run `npm ci` in tests/mcp_server/js"
)


@dataclass
class Followed:
    """One client's view of a long task: every tool result and every progress time."""

    results: list[dict[str, Any]] = field(default_factory=list)
    call_seconds: list[float] = field(default_factory=list)
    progress_times: list[float] = field(default_factory=list)  # seconds since the start
    progress_messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0


@pytest.fixture(scope="module")
async def long_server(
    model: Model, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("mcp-long")
    # Seven sessions: the four long tasks, two TypeScript ones, the mcp-remote one (761-768).
    env = {"DESKTOP_DISPLAY_BASE": "760", "DESKTOP_USER_PREFIX": "cu-ml", "MAX_DISPLAYS": "8"}
    async with running_server(data_dir, ANTHROPIC_BASE_URL=model.server.base_url, **env) as proc:
        yield proc


async def node(*args: str) -> list[dict[str, Any]]:
    """Runs the TypeScript client script; its JSON lines."""
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(JS_DIR / "follow_task.mjs"),
        *args,
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


async def follow_typescript(url: str, session_id: str, task: str) -> Followed:
    seen = Followed()
    start = time.monotonic()
    last = 0.0
    for record in await node("follow", url, KEY, session_id, task):
        if "progress" in record:
            seen.progress_times.append(record["t"])
            seen.progress_messages.append(record.get("message") or "")
        elif "tool" in record:
            seen.results.append(record["structured"])
            seen.call_seconds.append(record["t"] - last)
            last = record["t"]
        else:
            seen.errors.append(f"{record.get('code')}: {record.get('error')}")
    seen.elapsed = time.monotonic() - start
    return seen


async def follow_python(client: Client, session_id: str, task: str) -> Followed:
    seen = Followed()
    start = time.monotonic()
    progress = ProgressLog()
    name, args = "execute_task", {"session_id": session_id, "task": task}
    while True:
        began = time.monotonic()
        result = await client.call_tool(name, args, progress_callback=progress)
        seen.call_seconds.append(time.monotonic() - began)
        if result.is_error or result.structured_content is None:
            seen.errors.append(str(result.content))
            break
        seen.results.append(result.structured_content)
        if result.structured_content["status"] != "running":
            break
        name, args = "wait_for_task", {"session_id": session_id}
    seen.elapsed = time.monotonic() - start
    seen.progress_times = [t - start for t in progress.times]
    seen.progress_messages = progress.messages
    return seen


async def create_session(server: ServerProcess) -> str:
    async with mcp_client(server, key=KEY) as client:
        created = await client.call_tool("create_session", {"title": "long task"})
    assert created.structured_content is not None, created.content
    return str(created.structured_content["session_id"])


def mcp_remote(server: ServerProcess) -> Client:
    """A client that reaches the server through `mcp-remote` over stdio, as desktop hosts do."""
    params = StdioServerParameters(
        command=str(JS_DIR / "node_modules" / ".bin" / "mcp-remote"),
        args=[
            f"{server.base_url}/mcp",
            *("--header", f"X-Anthropic-API-Key:{KEY}", "--transport", "http-only"),
        ],
        env={"PATH": os.environ["PATH"], "HOME": str(server.log_path.parent)},
    )
    return Client(stdio_client(params), mode="legacy")


async def follow(kind: str, server: ServerProcess, task: str) -> Followed:
    session_id = await create_session(server)
    url = f"{server.base_url}/mcp"
    if kind == "typescript":
        return await follow_typescript(url, session_id, task)
    if kind == "mcp-remote":
        async with mcp_remote(server) as client:
            return await follow_python(client, session_id, task)
    mode = kind.removeprefix("python-")
    async with mcp_client(server, key=KEY, mode=mode) as client:
        return await follow_python(client, session_id, task)


def long_script(model: Model, kind: str) -> tuple[str, str]:
    answer = f"Done after a long while ({kind})."
    prompt = model.scripted.script(
        f"A long task for {kind}",
        say("Starting.", member("screenshot")),
        Slow(MODEL_CALL_SECONDS, say("", member("mouse_move", coordinate=[100, 100]))),
        Slow(5.0, say("", bash(f"sleep {COMMAND_SECONDS}"))),
        say(answer),
    )
    return prompt, answer


@pytest.fixture(scope="module")
async def followed(long_server: ServerProcess, model: Model) -> dict[str, tuple[Followed, str]]:
    """The four clients, each following its own long task, all at once."""
    outcomes: dict[str, tuple[Followed, str]] = {}

    async def one(kind: str) -> None:
        prompt, answer = long_script(model, kind)
        outcomes[kind] = (await follow(kind, long_server, prompt), answer)

    with anyio.fail_after(400):
        async with anyio.create_task_group() as tasks:
            for kind in KINDS:
                tasks.start_soon(one, kind)
    return outcomes


@pytest.mark.parametrize("kind", KINDS)
def test_a_task_longer_than_90_s_is_followed_to_its_end(
    followed: dict[str, tuple[Followed, str]], kind: str
) -> None:
    seen, answer = followed[kind]
    assert seen.errors == []
    assert seen.elapsed > 90
    final = seen.results[-1]
    assert final["status"] == "completed" and final["done"] is True
    assert final["answer"] == answer
    assert final["steps"] == 3 and f"sleep {COMMAND_SECONDS}" in final["last_action"]
    running = seen.results[:-1]
    assert len(running) >= 2, "the task outlived at least two calls"
    assert all(r["status"] == "running" and "wait_for_task" in r["next_step"] for r in running)
    # Every call ended well before the 60 s after which clients give up on it.
    assert max(seen.call_seconds) < 50


@pytest.mark.parametrize("kind", KINDS)
def test_progress_comes_at_least_every_15_s_also_during_a_60_s_model_call(
    followed: dict[str, tuple[Followed, str]], kind: str
) -> None:
    seen, _ = followed[kind]
    times = [0.0, *seen.progress_times]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(seen.progress_times) >= 9  # 95 s at most 15 s apart
    assert max(gaps) <= HEARTBEAT_LIMIT, gaps
    assert any("the model is working on the next one" in m for m in seen.progress_messages)
    assert any(
        "still running" in m and f"sleep {COMMAND_SECONDS}" in m for m in seen.progress_messages
    ), "heartbeats during a long command say so"
    assert "Step 1: take a screenshot" in seen.progress_messages


async def test_typescript_call_that_times_out_leaves_the_run_and_a_new_connection_gets_it(
    long_server: ServerProcess, model: Model
) -> None:
    gate = Gate(then=say("Finished while nobody waited."))
    prompt = model.scripted.script(
        "A task whose caller gives up", say("Looking.", member("screenshot")), gate
    )
    session_id = await create_session(long_server)
    url = f"{long_server.base_url}/mcp"
    records = await node("timeout", url, KEY, session_id, prompt)
    (failure,) = [r for r in records if "error" in r]
    assert failure["code"] == -32001  # the SDK's own "Request timed out"; it sent cancelled
    with anyio.fail_after(20):
        await gate.entered.wait()
    gate.release.set()
    records = await node("wait", url, KEY, session_id)
    final = [r for r in records if "tool" in r][-1]["structured"]
    assert final["status"] == "completed"
    assert final["answer"] == "Finished while nobody waited."


async def test_typescript_cancel_task_stops_the_run(
    long_server: ServerProcess, model: Model
) -> None:
    gate = Gate(then=say("Never used."))
    prompt = model.scripted.script(
        "A task to cancel from TypeScript", say("Looking.", member("screenshot")), gate
    )
    session_id = await create_session(long_server)
    url = f"{long_server.base_url}/mcp"
    await node("timeout", url, KEY, session_id, prompt)
    with anyio.fail_after(20):
        await gate.entered.wait()
    records = await node("cancel", url, KEY, session_id)
    (result,) = [r for r in records if "tool" in r]
    assert result["isError"] is False
    assert result["structured"]["status"] == "cancelled"
    gate.release.set()


async def test_mcp_remote_call_that_times_out_leaves_the_run_and_cancel_task_stops_one(
    long_server: ServerProcess, model: Model
) -> None:
    gate = Gate(then=say("Finished behind mcp-remote."))
    prompt = model.scripted.script(
        "A task whose mcp-remote caller gives up", say("Looking.", member("screenshot")), gate
    )
    session_id = await create_session(long_server)
    async with mcp_remote(long_server) as client:
        with pytest.raises(MCPError) as timed_out:
            await client.call_tool(
                "execute_task", {"session_id": session_id, "task": prompt}, read_timeout_seconds=2
            )
        assert timed_out.value.error.code == REQUEST_TIMEOUT
    with anyio.fail_after(20):
        await gate.entered.wait()
    gate.release.set()
    async with mcp_remote(long_server) as later:  # a new stdio process and connection
        done = await later.call_tool("wait_for_task", {"session_id": session_id})
    assert done.structured_content is not None
    assert done.structured_content["status"] == "completed"
    assert done.structured_content["answer"] == "Finished behind mcp-remote."

    second = Gate(then=say("Never used."))
    prompt = model.scripted.script(
        "A task to cancel behind mcp-remote", say("Looking.", member("screenshot")), second
    )
    async with mcp_remote(long_server) as client:
        with pytest.raises(MCPError):
            await client.call_tool(
                "execute_task", {"session_id": session_id, "task": prompt}, read_timeout_seconds=2
            )
    with anyio.fail_after(20):
        await second.entered.wait()
    async with mcp_remote(long_server) as client:
        cancelled = await client.call_tool("cancel_task", {"session_id": session_id})
    assert cancelled.is_error is False and cancelled.structured_content is not None
    assert cancelled.structured_content["status"] == "cancelled"
    second.release.set()
