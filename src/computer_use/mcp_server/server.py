"""The MCPServer: the tools with truthful annotations, the live desktop app, and clear errors.

Tools bound to the live desktop app (create_session, execute_task, wait_for_task) carry
`_meta.ui.resourceUri` (MCP Apps); clients without Apps see the same tools and results.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from fastapi import FastAPI
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult, ToolAnnotations
from pydantic import ValidationError

from computer_use import __version__
from computer_use.auth import ApiTokens
from computer_use.config import Settings
from computer_use.mcp_server import file_tools, task_tools, tools
from computer_use.mcp_server.apps import LIVE_DESKTOP_URI, live_desktop_app, ui_meta
from computer_use.mcp_server.deps import MCPDeps, http_request
from computer_use.mcp_server.errors import argument_problems

INSTRUCTIONS = """\
Runs Claude computer-use agents, each session on its own Linux desktop with Firefox.
Typical flow: create_session -> execute_task -> (if its status is "running") wait_for_task,
again until done -> follow-up execute_task calls as needed -> destroy_session when done.
Status "waiting_for_approval": answer_approval; "waiting_for_answer": the agent asked a
question, answer it with execute_task.
A task is not a call: a cancelled or timed-out call only stops waiting, the agent keeps
working; cancel_task stops it. The Anthropic API key comes from the X-Anthropic-API-Key
header of the MCP connection, never from tool arguments."""


def _hints(read_only: bool, destructive: bool, idempotent: bool, open_world: bool) -> Any:
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=open_world,
    )


# The annotations the tools share.
_LOOKS = _hints(True, False, True, False)  # reads only
# Ends or replaces something; a repeat changes nothing more.
_ENDS_OR_REPLACES = _hints(False, True, True, False)
# The agent may delete files or submit forms, browses the web and calls the Anthropic API.
_AGENT_ACTS = _hints(False, True, False, True)

# name: (function, title, annotations, bound to the live desktop app)
TOOLS: list[tuple[Callable[..., Any], str, ToolAnnotations, bool]] = [
    # Every call starts another desktop: not idempotent.
    (tools.create_session, "Create a desktop session", _hints(False, False, False, False), True),
    (task_tools.execute_task, "Run a task with the agent", _AGENT_ACTS, True),
    (task_tools.wait_for_task, "Wait for a task", _LOOKS, True),
    (task_tools.cancel_task, "Cancel a running task", _ENDS_OR_REPLACES, False),
    # Lets the agent act (or refuses it); a second answer is refused.
    (task_tools.answer_approval, "Approve or decline an action", _AGENT_ACTS, True),
    (tools.get_session_status, "Get a session's status", _LOOKS, False),
    # A second destroy changes nothing (it reports the unknown id).
    (tools.destroy_session, "Destroy a session", _ENDS_OR_REPLACES, False),
    (tools.take_screenshot, "Screenshot the desktop", _LOOKS, False),
    # A second upload of the same name replaces the file.
    (file_tools.upload_file, "Upload a file into a session", _ENDS_OR_REPLACES, False),
    (file_tools.list_files, "List a session's files", _LOOKS, False),
]
LIST_SESSIONS = (tools.list_sessions, "List your sessions", _LOOKS, False)


def description(fn: Callable[..., Any]) -> str:
    """The docstring as one paragraph: no source indentation or hard line breaks."""
    return " ".join(inspect.cleandoc(fn.__doc__ or "").split())


class ComputerUseMCP(MCPServer[MCPDeps]):
    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[MCPDeps, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """Tool errors say what to change: argument problems in the tool's own terms, and a
        tool's own error text without the SDK's "Error executing tool" prefix."""
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                tool = self._tool_manager.get_tool(name)
                schema = tool.parameters if tool is not None else {}
                raise ToolError(argument_problems(name, cause, schema)) from None
            if type(cause) is ToolError:
                raise ToolError(str(cause)) from None
            raise

    async def read_resource(
        self, uri: Any, context: Context[MCPDeps, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        """The live desktop app with the CSP of the origin this client reached us at."""
        contents = await super().read_resource(uri, context)
        request = http_request(context) if context is not None else None
        if (
            str(uri) != LIVE_DESKTOP_URI
            or request is None
            or isinstance(contents, InputRequiredResult)
        ):
            return contents
        meta = {"ui": ui_meta(str(request.base_url))}
        return [replace(item, meta=meta) for item in contents]


def create_mcp_server(app: FastAPI, settings: Settings) -> MCPServer[MCPDeps]:
    @asynccontextmanager
    async def lifespan(_: MCPServer[MCPDeps]) -> AsyncIterator[MCPDeps]:
        # Entered by the app's lifespan once its Runtime exists; tools read app.state per call.
        yield MCPDeps(app)

    apps = live_desktop_app()
    entries = list(TOOLS)
    if ApiTokens.from_settings(settings).enabled:
        entries.append(LIST_SESSIONS)  # without tokens every session is everyone's: no list
    for fn, title, hints, bound in entries:
        kwargs: dict[str, Any] = {
            "title": title,
            "annotations": hints,
            "description": description(fn),
        }
        if bound:
            # The flat key is what hosts read before the nested `ui` object existed.
            meta = {"ui/resourceUri": LIVE_DESKTOP_URI}
            apps.tool(resource_uri=LIVE_DESKTOP_URI, meta=meta, **kwargs)(fn)
    server = ComputerUseMCP(
        "computer-use",
        title="Computer Use Backend",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        extensions=[apps],
        subscriptions=False,  # no resource or list changes to announce
    )
    for fn, title, hints, bound in entries:
        if not bound:
            server.add_tool(fn, title=title, annotations=hints, description=description(fn))
    # MCPServer always installs prompt handlers; this server has no prompts, so it must not
    # advertise the capability (clients would list an empty set for nothing).
    for method in ("prompts/list", "prompts/get"):
        server._lowlevel_server._request_handlers.pop(method, None)
    return server
