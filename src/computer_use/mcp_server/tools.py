"""The five MCP tools: thin adapters over the session, desktop and agent services.

Each translates its arguments, calls the same service functions REST uses, and translates the
result or the domain error (errors.tool_errors). Docstrings and Field descriptions are what a
model reads to use the tools, so they say what each one is for and what it returns.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

from mcp.server.mcpserver import Image
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ImageContent, TextContent
from pydantic import Field, ValidationError

from computer_use import errors
from computer_use.desktops import Desktop, DesktopError
from computer_use.mcp_server.deps import MCPContext, api_key, caller, deps, http_request
from computer_use.mcp_server.errors import (
    MISSING_KEY,
    busy_session,
    invalid_arguments,
    tool_errors,
)
from computer_use.mcp_server.runs import RunOutcome, SessionClosed, run_task
from computer_use.mcp_server.schemas import SessionCreated, SessionDestroyed, SessionStatusPublic
from computer_use.sessions.models import SessionStatus
from computer_use.sessions.schemas import MessageCreate, SessionCreate

if TYPE_CHECKING:
    from computer_use.lifespan import Runtime

logger = logging.getLogger(__name__)

SessionId = Annotated[
    str,
    Field(
        description="The session_id returned by create_session, e.g. "
        "'3f2b1c7e-8a4d-4e8f-9b6a-2d5c0e1f7a93'.",
        min_length=1,
        max_length=100,
    ),
]


async def create_session(
    ctx: MCPContext,
    title: Annotated[
        str | None,
        Field(description="A short name for the session, shown in the web UI.", max_length=200),
    ] = None,
    model: Annotated[
        str | None,
        Field(
            description="Claude model id for the agent, e.g. 'claude-sonnet-5-5' (current: "
            "claude-sonnet-5-5, claude-opus-5-5, claude-haiku-5-5, claude-fable-5-1; GET "
            "/api/v1/models lists all). Omit to use the server's default model. A retired model "
            "(e.g. claude-sonnet-4-5-20250929) is refused with its replacement named; other ids "
            "are passed to the API as given.",
            max_length=100,
        ),
    ] = None,
) -> SessionCreated:
    """Create a new computer-use session: its own Linux desktop with Firefox, ready for
    execute_task. Returns the session_id to pass to the other tools, a vnc_url a human
    can open to watch the desktop live, and ttl_seconds: the session expires after that long
    without activity. Sessions cost server resources: destroy_session when done."""
    mcp = deps(ctx)
    runtime = mcp.runtime
    with tool_errors():
        body = SessionCreate(title=title or "MCP session", model=model)
        session = await runtime.sessions.open(title=body.title, model=body.model, owner=caller(ctx))
    return SessionCreated(
        session_id=session.id,
        title=session.title,
        model=session.model,
        status=session.status,
        vnc_url=mcp.vnc_url(session.id, http_request(ctx)),
        ttl_seconds=runtime.settings.session_ttl_seconds,
    )


async def execute_task(
    ctx: MCPContext,
    session_id: SessionId,
    task: Annotated[
        str,
        Field(
            description="What the agent should do on the desktop, in plain language, e.g. "
            "'Search the weather in Santiago, Chile and tell me the forecast'. Follow-ups in "
            "the same session see the earlier tasks and the desktop as they left it.",
            min_length=1,
        ),
    ],
) -> list[TextContent | ImageContent]:
    """Run a task with the Claude computer-use agent on the session's desktop and wait until
    it is done (this can take minutes: it clicks, types and browses step by step). Progress
    notifications describe each action as it happens. Returns the agent's final answer as text
    and a screenshot of the desktop at the end. One task at a time per session: if a task is
    already running, this returns an error. Cancelling the call stops the agent. Uses the
    Anthropic API key from the X-Anthropic-API-Key header of the MCP connection (else the
    server's own key)."""
    runtime = deps(ctx).runtime
    key = api_key(ctx)
    with tool_errors(session_id):
        try:
            MessageCreate(content=task)  # the REST API's checks of a message
        except ValidationError as exc:
            raise ToolError(invalid_arguments(exc, names={"content": "task"})) from None
        if len(task) > runtime.settings.max_message_chars:
            raise ToolError(
                f"The task has {len(task)} characters; the limit is "
                f"{runtime.settings.max_message_chars}. Shorten it."
            )
        session = await runtime.sessions.get(session_id=session_id, owner=caller(ctx))
        if session.status == SessionStatus.PROCESSING:
            raise ToolError(busy_session(session_id))
        try:
            outcome = await run_task(
                runtime,
                session_id=session_id,
                task=task,
                api_key=key,
                progress=ctx.report_progress,
            )
        except errors.Conflict as exc:
            busy = runtime.runner.is_running(session_id)
            raise ToolError(busy_session(session_id) if busy else exc.message) from None
        except errors.DomainError as exc:
            if type(exc) is errors.DomainError and _needs_key(runtime, key):
                raise ToolError(MISSING_KEY) from None
            raise
        except SessionClosed:
            raise ToolError(
                f"Session {session_id} was destroyed while the task was running."
            ) from None
    content: list[TextContent | ImageContent] = [TextContent(type="text", text=_report(outcome))]
    desktop = runtime.sessions.desktop(session_id)
    if desktop is not None:
        screenshot = await _screenshot(desktop, session_id)
        if screenshot is not None:
            content.append(screenshot)
    return content


async def get_session_status(ctx: MCPContext, session_id: SessionId) -> SessionStatusPublic:
    """Look up a session: its status (active, processing while a task runs, expired, ...),
    whether a task is running, the seconds left before it expires from inactivity, and a fresh
    vnc_url to watch its desktop. Does not count as activity."""
    mcp = deps(ctx)
    runtime = mcp.runtime
    with tool_errors(session_id):
        session = await runtime.sessions.get(session_id=session_id, owner=caller(ctx))
    return SessionStatusPublic(
        session_id=session.id,
        title=session.title,
        model=session.model,
        status=session.status,
        status_detail=session.status_detail,
        processing=session.status == SessionStatus.PROCESSING,
        ttl_remaining_seconds=runtime.sessions.ttl_remaining(session),
        vnc_url=mcp.vnc_url(session.id, http_request(ctx)),
    )


async def destroy_session(ctx: MCPContext, session_id: SessionId) -> SessionDestroyed:
    """Destroy a session now: stops any running task, shuts its desktop down and deletes its
    files and its history. Cannot be undone. Idle sessions also expire on their own."""
    runtime = deps(ctx).runtime
    with tool_errors(session_id):
        await runtime.sessions.close(session_id=session_id, owner=caller(ctx))
    return SessionDestroyed(session_id=session_id, destroyed=True)


async def take_screenshot(ctx: MCPContext, session_id: SessionId) -> Image:
    """Capture the session's desktop as it is right now (a PNG image, 1024x768 by default).
    Works while a task is running too. Counts as activity (resets the expiry countdown)."""
    runtime = deps(ctx).runtime
    with tool_errors(session_id):
        session = await runtime.sessions.get(session_id=session_id, owner=caller(ctx))
        if session.status == SessionStatus.EXPIRED:
            raise ToolError(
                f"Session {session_id} has expired and its desktop is gone; create a new session."
            )
        desktop = runtime.sessions.desktop(session_id)
        if desktop is None:
            raise ToolError(
                f"The desktop of session {session_id} is not running right now "
                f"(status {session.status}); try again in a moment."
            )
        await runtime.sessions.touch(session_id=session_id)
    try:
        png = await desktop.screenshot()
    except DesktopError as exc:
        raise ToolError(f"Could not capture the desktop: {exc}") from None
    return Image(data=png, format="png")


def _needs_key(runtime: Runtime, key: str | None) -> bool:
    """True when the failure to build a model client can only be the missing key."""
    return key is None and runtime.settings.api_provider == "anthropic"


def _report(outcome: RunOutcome) -> str:
    if outcome.stop_reason == "error":
        message = (outcome.error or {}).get("message") or outcome.detail or "unknown error"
        raise ToolError(f"The agent run failed: {message}")
    if outcome.stop_reason == "cancelled":
        raise ToolError(
            f"The task was cancelled before it finished ({outcome.detail or 'stopped'}). "
            "The session is ready for a new task."
        )
    text = outcome.answer_text or "(The agent finished without a written answer.)"
    if outcome.stop_reason not in ("end_turn", "stop_sequence"):
        why = outcome.detail or f"stop reason: {outcome.stop_reason}"
        text += f"\n\n[The run stopped before the agent said it was done: {why}]"
    return text


async def _screenshot(desktop: Desktop, session_id: str) -> ImageContent | None:
    try:
        return Image(data=await desktop.screenshot(), format="png").to_image_content()
    except DesktopError:
        logger.warning("final screenshot of session %s failed", session_id, exc_info=True)
        return None
