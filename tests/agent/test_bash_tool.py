from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from computer_use.agent.tools import SessionTools
from computer_use.agent.tools.bash import BashSession, BashTool
from computer_use.agent.versions import versions_for
from computer_use.desktops import Desktop
from tests.desktop_fixtures import in_session

VERSIONS = versions_for("claude-opus-4-6")


async def run(tools: SessionTools, **params: object) -> tuple[bool, str]:
    result = await tools.run("bash", params, VERSIONS)
    return result.is_error, result.text


async def test_state_persists_across_calls(tools: SessionTools, desktop: Desktop) -> None:
    assert await run(tools, command="pwd") == (False, "/home/user") == (False, desktop.spec.home)
    await run(tools, command="mkdir -p work && cd work && export GREETING=hola")
    assert await run(tools, command='echo "$GREETING from $(basename "$PWD")"') == (
        False,
        "hola from work",
    )


async def test_commands_run_in_the_sessions_sandbox(
    tools: SessionTools, desktop: Desktop, tmp_path: Path
) -> None:
    """The shell is the session's: its user, its cgroup, its own /tmp (not the host's)."""
    assert desktop.sandbox.cgroup is not None
    command = f"id -un; cat /proc/self/cgroup; test -e {tmp_path} || echo no-host-tmp"
    error, text = await run(tools, command=command)
    lines = text.splitlines()
    assert not error and lines[0] == desktop.user.name and lines[-1] == "no-host-tmp"
    groups = {line.split(":", 2)[2] for line in lines[1:-1]}
    for group in desktop.sandbox.cgroup.dirs:
        assert any(g.endswith(f"/{group.parent.name}/{group.name}") for g in groups), groups


async def test_output_merges_stderr_and_reports_the_exit_status(tools: SessionTools) -> None:
    error, text = await run(tools, command="echo out; echo err >&2; false")
    assert not error
    assert text == "out\nerr\n[exit status 1]"
    assert await run(tools, command="true") == (False, "(no output)")


async def test_commands_cannot_read_the_shells_stdin(tools: SessionTools) -> None:
    assert await run(tools, command="cat; echo after") == (False, "after")


async def test_timeout_restarts_the_shell_and_says_so(desktop: Desktop) -> None:
    tools = SessionTools(desktop, bash_timeout=0.5)
    try:
        await run(tools, command="export MARK=1")
        async with asyncio.timeout(5):
            error, text = await run(tools, command="sleep 30")
        assert error
        assert "timed out after 0.5 s" in text and "restarted" in text
        assert await run(tools, command='echo "mark=${MARK:-gone}"') == (False, "mark=gone")
    finally:
        await tools.aclose()


async def test_timeout_kills_the_commands_children_too(desktop: Desktop) -> None:
    session = BashSession(desktop, timeout=0.5)
    try:
        marker = f"{desktop.spec.home}/child-alive"
        await session.run(f"(sleep 1.5; touch {marker}) & sleep 30")
        await session.run("sleep 2")  # outlives the child's sleep, had it survived
        assert await in_session(desktop, 'test -e "$1" || echo gone', marker) == b"gone\n"
    finally:
        await session.aclose()


async def test_long_output_is_truncated_with_a_note(desktop: Desktop) -> None:
    session = BashSession(desktop, output_limit=1000)
    try:
        result = await session.run("seq 1 100000")
        assert len(result.text) < 1400
        assert result.text.startswith("1\n2\n3\n")
        assert result.text.endswith("99999\n100000")
        assert "characters of output truncated" in result.text
    finally:
        await session.aclose()


async def test_restart_gives_a_fresh_shell(tools: SessionTools) -> None:
    await run(tools, command="export KEEP=yes")
    assert await run(tools, restart=True) == (False, "The bash shell was restarted.")
    assert await run(tools, command='echo "${KEEP:-no}"') == (False, "no")


async def test_exit_in_a_command_is_reported_and_recovered(tools: SessionTools) -> None:
    error, text = await run(tools, command="echo bye; exit 3")
    assert error and "bye" in text and "shell exited" in text
    assert await run(tools, command="echo back") == (False, "back")


async def test_missing_command_is_an_error(tools: SessionTools) -> None:
    error, text = await run(tools)
    assert error and "command is required" in text


async def test_cancelling_a_command_stops_it(desktop: Desktop) -> None:
    tool = BashTool(BashSession(desktop))
    task = asyncio.create_task(tool({"command": "sleep 30"}))
    await asyncio.sleep(0)  # let it start; the assertion below has its own deadline
    task.cancel()
    async with asyncio.timeout(5):
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert not tool.session.running
    assert (await tool({"command": "echo ok"})).text == "ok"
    await tool.session.aclose()
