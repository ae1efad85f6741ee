"""The MCPServer: the five tools with truthful annotations, and how they reach the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

from computer_use import __version__
from computer_use.mcp_server import tools
from computer_use.mcp_server.deps import MCPDeps
from computer_use.mcp_server.file_tools import register_file_tools

INSTRUCTIONS = """\
Runs Claude computer-use agents, each session on its own Linux desktop with Firefox.
Typical flow: create_session -> execute_task (repeat for follow-ups; it waits for the agent
and reports each action as progress) -> take_screenshot / get_session_status as needed ->
destroy_session when done. The Anthropic API key comes from the X-Anthropic-API-Key header
of the MCP connection, never from tool arguments."""


def create_mcp_server(app: FastAPI) -> MCPServer[MCPDeps]:
    @asynccontextmanager
    async def lifespan(_: MCPServer[MCPDeps]) -> AsyncIterator[MCPDeps]:
        # Entered by the app's lifespan once its Runtime exists; tools read app.state per call.
        yield MCPDeps(app)

    server: MCPServer[MCPDeps] = MCPServer(
        "computer-use",
        title="Computer Use Backend",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
    )
    server.add_tool(
        tools.create_session,
        title="Create a desktop session",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,  # every call starts another desktop
            open_world_hint=False,
        ),
    )
    server.add_tool(
        tools.execute_task,
        title="Run a task with the computer-use agent",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,  # the agent may delete files, submit forms, ...
            idempotent_hint=False,
            open_world_hint=True,  # it browses the web and calls the Anthropic API
        ),
    )
    server.add_tool(
        tools.get_session_status,
        title="Get a session's status",
        annotations=ToolAnnotations(
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    server.add_tool(
        tools.destroy_session,
        title="Destroy a session",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=True,  # a second call changes nothing (it reports the unknown id)
            open_world_hint=False,
        ),
    )
    server.add_tool(
        tools.take_screenshot,
        title="Screenshot a session's desktop",
        annotations=ToolAnnotations(
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    register_file_tools(server)
    return server
