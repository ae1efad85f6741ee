"""The session tools of MCP: thin adapters over the session and desktop services (the task
tools are in task_tools).

Each translates its arguments, calls the same service functions REST uses, and translates the
result or the domain error (errors.tool_errors). Docstrings and Field descriptions are what a
model reads to use the tools, so they say what each one is for and what it returns.
"""

from __future__ import annotations

import io
from typing import Annotated

from mcp.server.mcpserver import Image
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ContentBlock
from PIL import Image as PILImage
from pydantic import Field

from computer_use.desktops import DesktopError
from computer_use.mcp_server import content
from computer_use.mcp_server.deps import MCPContext, caller, deps, http_request
from computer_use.mcp_server.errors import tool_errors
from computer_use.mcp_server.schemas import (
    Screenshot,
    SessionCreated,
    SessionDestroyed,
    SessionList,
    SessionStatusPublic,
    SessionSummary,
)
from computer_use.sessions.controls_schemas import APPROVAL_DESCRIPTION, ApprovalPolicy
from computer_use.sessions.schemas import (
    BUDGET_DESCRIPTION,
    BudgetSpec,
    SessionCreate,
    budget_caps,
)

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
    approval: Annotated[
        ApprovalPolicy,
        Field(
            description="Which of the agent's actions wait for your approval (answer_approval): "
            + APPROVAL_DESCRIPTION
        ),
    ] = "auto",
    budget: Annotated[
        BudgetSpec | None,
        Field(
            description="Caps on what the session's tasks may spend together: " + BUDGET_DESCRIPTION
        ),
    ] = None,
) -> Annotated[CallToolResult, SessionCreated]:
    """Create a new computer-use session: its own Linux desktop with Firefox, ready for
    execute_task. Returns the session_id to pass to the other tools, a vnc_url a human
    can open to watch the desktop live, and ttl_seconds: the session expires after that long
    without activity. Sessions cost server resources: destroy_session when done."""
    mcp = deps(ctx)
    runtime = mcp.runtime
    with tool_errors():
        body = SessionCreate(
            title=title or "MCP session", model=model, approval=approval, budget=budget
        )
        session = await runtime.sessions.open(
            title=body.title,
            model=body.model,
            owner=caller(ctx),
            budget=budget_caps(body.budget),
            approval=body.approval,
        )
    created = SessionCreated(
        session_id=session.id,
        title=session.title,
        model=session.model,
        status=session.status,
        vnc_url=mcp.vnc_url(session, http_request(ctx)),
        ttl_seconds=runtime.settings.session_ttl_seconds,
    )
    summary = (
        f"Session {session.id} is ready ({session.status}). Pass session_id to execute_task. "
        f"It expires after {created.ttl_seconds} s without activity."
    )
    return content.result(ctx, created, _with_viewer(summary, created.vnc_url), session=session)


async def get_session_status(
    ctx: MCPContext, session_id: SessionId
) -> Annotated[CallToolResult, SessionStatusPublic]:
    """Look up a session: its status (active, processing while a task runs, expired, ...),
    whether a task is running, the seconds left before it expires from inactivity, and a fresh
    vnc_url to watch its desktop. Does not count as activity."""
    mcp = deps(ctx)
    runtime = mcp.runtime
    with tool_errors(session_id):
        session = await runtime.sessions.get(session_id=session_id, owner=caller(ctx))
    status = SessionStatusPublic(
        session_id=session.id,
        title=session.title,
        model=session.model,
        status=session.status,
        status_detail=session.status_detail,
        processing=session.processing,
        ttl_remaining_seconds=runtime.sessions.ttl_remaining(session),
        vnc_url=mcp.vnc_url(session, http_request(ctx)),
    )
    summary = f"Session {session.id}: {session.status}" + (
        " (a task is running; wait_for_task follows it)." if status.processing else "."
    )
    return content.result(ctx, status, _with_viewer(summary, status.vnc_url), session=session)


async def destroy_session(
    ctx: MCPContext, session_id: SessionId
) -> Annotated[CallToolResult, SessionDestroyed]:
    """Destroy a session now: stops any running task, shuts its desktop down and deletes its
    files and its history. Cannot be undone. Idle sessions also expire on their own."""
    runtime = deps(ctx).runtime
    with tool_errors(session_id):
        await runtime.sessions.close(session_id=session_id, owner=caller(ctx))
    done = SessionDestroyed(session_id=session_id, destroyed=True)
    return content.result(ctx, done, [content.text(f"Session {session_id} is destroyed.")])


async def take_screenshot(
    ctx: MCPContext, session_id: SessionId
) -> Annotated[CallToolResult, Screenshot]:
    """Capture the session's desktop as it is right now (a PNG image, 1024x768 by default).
    Works while a task is running too. Counts as activity (resets the expiry countdown)."""
    runtime = deps(ctx).runtime
    try:
        with tool_errors(session_id):
            png = await runtime.sessions.screenshot(session_id=session_id, owner=caller(ctx))
    except DesktopError as exc:
        raise ToolError(f"Could not capture the desktop: {exc}") from None
    with PILImage.open(io.BytesIO(png)) as image:
        width, height = image.size
    shot = Screenshot(
        session_id=session_id,
        width=width,
        height=height,
        mime_type="image/png",
        url=content.screenshot_url(ctx, session_id),
    )
    blocks: list[ContentBlock] = [
        Image(data=png, format="png").to_image_content(),
        content.screenshot_link(ctx, session_id),
    ]
    return content.result(ctx, shot, blocks)


async def list_sessions(
    ctx: MCPContext,
    limit: Annotated[
        int, Field(description="How many sessions to list, newest first (1 to 100).", ge=1, le=100)
    ] = 20,
) -> Annotated[CallToolResult, SessionList]:
    """List your own sessions (those created with your API token), newest first, with their
    status and whether a task is running. Only offered when the server requires API tokens."""
    runtime = deps(ctx).runtime
    rows, total = await runtime.sessions.get_all(limit=limit, offset=0, owner=caller(ctx))
    listing = SessionList(
        sessions=[
            SessionSummary(
                session_id=row.id,
                title=row.title,
                model=row.model,
                status=row.status,
                processing=row.processing,
                created_at=row.created_at.isoformat(),
            )
            for row in rows
        ],
        total=total,
    )
    lines = [f"{s.session_id}  {s.status}  {s.title}" for s in listing.sessions]
    summary = f"{total} session(s)" + (":\n" + "\n".join(lines) if lines else ".")
    return content.result(ctx, listing, [content.text(summary)])


def _with_viewer(summary: str, vnc_url: str | None) -> list[ContentBlock]:
    if not vnc_url:
        return [content.text(summary)]
    watch = f"{summary}\nWatch the desktop live (view-only, the link expires soon): {vnc_url}"
    return [content.text(watch), content.viewer_link(vnc_url)]
