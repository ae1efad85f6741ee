"""REST routes of sessions: translate HTTP to service calls and back, nothing more."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status

from computer_use import errors
from computer_use.agent import catalogue
from computer_use.auth import CallerDep, stream_tokens_of
from computer_use.deps import AgentRunnerDep, SessionServiceDep
from computer_use.runtime import installed_runtime
from computer_use.sessions.models import Message, Session, SessionStatus
from computer_use.sessions.records import image_url
from computer_use.sessions.schemas import (
    MAX_OFFSET,
    CancelResult,
    MessageAccepted,
    MessageCreate,
    MessagePublic,
    SessionCreate,
    SessionDetail,
    SessionPublic,
    SessionsPublic,
    SessionUpdate,
    budget_caps,
)
from computer_use.sessions.service import SessionService
from computer_use.vnc.viewer import vnc_minter_of

router = APIRouter(prefix="/api/v1/sessions", tags=["sessions"])


def _public_blocks(session_id: str, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Storage-form image sources become URLs; nested tool_result content too."""
    out: list[dict[str, Any]] = []
    for block in blocks:
        block = dict(block)
        source = block.get("source")
        if block.get("type") == "image" and isinstance(source, dict) and "image_id" in source:
            block["source"] = {"type": "url", "url": image_url(session_id, source["image_id"])}
        if isinstance(block.get("content"), list):
            block["content"] = _public_blocks(session_id, block["content"])
        out.append(block)
    return out


def stream_url(request: Request, session_id: str, owner: str | None) -> str:
    """With authentication on, signed (EventSource cannot send the Authorization header)."""
    url = f"/api/v1/sessions/{session_id}/stream"
    stream_tokens = stream_tokens_of(request.app)
    if owner is None or stream_tokens is None:
        return url
    return f"{url}?token={stream_tokens.mint(session_id, owner)}"


async def to_public(
    service: SessionService, session: Session, request: Request, *, interactive: bool = False
) -> dict[str, Any]:
    """Only ever for the session's owner: it carries the VNC and stream tokens."""
    return (await to_publics(service, [session], request, interactive=interactive))[0]


async def to_publics(
    service: SessionService,
    sessions: Sequence[Session],
    request: Request,
    *,
    interactive: bool = False,
) -> list[dict[str, Any]]:
    runtime = installed_runtime(request.app)
    if runtime is None:  # still starting
        return [_public(service, s, request, {}, {}, interactive) for s in sessions]
    live = await runtime.runner.live_fields(sessions)  # where each desktop and run is
    people = runtime.runner.people
    return [
        _public(service, s, request, fields, people.public(s), interactive)
        for s, fields in zip(sessions, live, strict=True)
    ]


def _public(
    service: SessionService,
    session: Session,
    request: Request,
    live: dict[str, Any],
    person: dict[str, Any],
    interactive: bool,
) -> dict[str, Any]:
    vnc_url = vnc_interactive_url = None
    vnc_minter = vnc_minter_of(request.app)
    if service.viewable(session) and vnc_minter is not None:
        vnc_url = vnc_minter(session.id)
        if interactive:
            vnc_interactive_url = vnc_minter(session.id, interactive=True)
    return {
        "id": session.id,
        "title": session.title,
        "model": session.model,
        "model_notice": catalogue.notice(session.model),
        "status": session.status,
        "status_detail": session.status_detail,
        "host": session.host,
        "processing": session.processing,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
        "last_activity_at": session.last_activity_at,
        "ttl_remaining_seconds": service.ttl_remaining(session),
        "display": live.get("display"),
        "vnc_port": None,  # x11vnc listens on a unix socket only (vnc/targets.py)
        "browser": live.get("browser"),
        "vnc_url": vnc_url,
        "vnc_interactive_url": vnc_interactive_url,
        "stream_url": stream_url(request, session.id, session.owner),
        "recording": bool(live.get("recording")),
        "budget": session.budget,
        "spent": session.spent or {},
        **person,  # approval, paused, held_by
        "pending_approval_id": live.get("pending_approval_id"),
    }


def _message_public(session_id: str, message: Message) -> MessagePublic:
    return MessagePublic(
        id=message.id,
        role=message.role,
        content=_public_blocks(session_id, message.content),
        usage=message.usage,
        created_at=message.created_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionPublic,
    responses=errors.error_responses(400, 422, 429, 503),
    summary="Create a session with its own desktop",
)
async def create_session(
    body: SessionCreate,
    service: SessionServiceDep,
    caller: CallerDep,
    request: Request,
) -> dict[str, Any]:
    session = await service.open(
        title=body.title,
        model=body.model,
        owner=caller,
        record=body.record,
        budget=budget_caps(body.budget),
        approval=body.approval,
    )
    return await to_public(service, session, request)


@router.get(
    "",
    response_model=SessionsPublic,
    responses=errors.error_responses(422),
    summary="List sessions, newest first",
)
async def list_sessions(
    service: SessionServiceDep,
    caller: CallerDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")] = 0,
) -> dict[str, Any]:
    rows, total = await service.get_all(limit=limit, offset=offset, owner=caller)
    return {
        "items": await to_publics(service, rows, request),
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get(
    "/{session_id}",
    response_model=SessionDetail,
    responses=errors.error_responses(404, 422),
    summary="Get a session with its message history",
)
async def get_session(
    session_id: uuid.UUID,
    service: SessionServiceDep,
    caller: CallerDep,
    request: Request,
    interactive: Annotated[
        bool, Query(description="Also mint `vnc_interactive_url` (viewer with control).")
    ] = False,
) -> dict[str, Any]:
    session = await service.get(session_id=str(session_id), with_messages=True, owner=caller)
    body = await to_public(service, session, request, interactive=interactive)
    body["messages"] = [_message_public(session.id, m) for m in session.messages]
    body["last_event_id"] = max((m.last_event_id or 0 for m in session.messages), default=0)
    return body


@router.patch(
    "/{session_id}",
    response_model=SessionPublic,
    responses=errors.error_responses(400, 404, 422),
    summary="Change a session's settings: its budget, its approval policy",
)
async def update_session(
    session_id: uuid.UUID,
    body: SessionUpdate,
    service: SessionServiceDep,
    runner: AgentRunnerDep,
    caller: CallerDep,
    request: Request,
) -> dict[str, Any]:
    sid = str(session_id)
    changes: dict[str, Any] = {}
    if "budget" in body.model_fields_set:
        changes["budget"] = budget_caps(body.budget)
    session = await runner.update(session_id=sid, owner=caller, approval=body.approval, **changes)
    return await to_public(service, session, request)


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors.error_responses(404, 409, 422),
    summary="Delete a session, its desktop, files and history",
)
async def delete_session(
    session_id: uuid.UUID, service: SessionServiceDep, caller: CallerDep
) -> Response:
    await service.close(session_id=str(session_id), owner=caller)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{session_id}/messages",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MessageAccepted,
    responses=errors.error_responses(400, 404, 409, 413, 422, 503),
    summary="Send a message: the agent starts working on the session's desktop",
)
async def post_message(
    session_id: uuid.UUID,
    body: MessageCreate,
    runner: AgentRunnerDep,
    caller: CallerDep,
    request: Request,
    x_anthropic_api_key: Annotated[
        str | None,
        Header(description="Your Anthropic API key for this run (else the server's is used)."),
    ] = None,
) -> dict[str, Any]:
    sid = str(session_id)
    session = await runner.start(
        session_id=sid,
        content=body.content,
        api_key=x_anthropic_api_key or None,
        owner=caller,
        budget=budget_caps(body.budget),
    )
    return {
        "session_id": sid,
        "status": SessionStatus.PROCESSING,
        "stream_url": stream_url(request, sid, session.owner),
    }


@router.post(
    "/{session_id}/cancel",
    response_model=CancelResult,
    responses=errors.error_responses(404, 409, 422),
    summary="Cancel the agent's current run",
)
async def cancel(
    session_id: uuid.UUID, service: SessionServiceDep, runner: AgentRunnerDep, caller: CallerDep
) -> dict[str, Any]:
    sid = str(session_id)
    service.check_held_here(await service.get(session_id=sid, owner=caller))
    cancelled = await runner.cancel(session_id=sid)
    return {"session_id": sid, "cancelled": cancelled}


@router.get(
    "/{session_id}/images/{image_id}",
    response_class=Response,
    responses=errors.file_responses("image/png", 404, 422),
    summary="A screenshot the agent took (referenced from history and events)",
)
async def get_image(
    session_id: uuid.UUID,
    image_id: uuid.UUID,
    service: SessionServiceDep,
    runner: AgentRunnerDep,
    caller: CallerDep,
) -> Response:
    if caller is not None:
        await service.get(session_id=str(session_id), owner=caller)
    data = await runner.load_image(str(session_id), str(image_id))
    # Images never change once stored: let the browser keep them.
    return Response(
        data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"}
    )


@router.get(
    "/{session_id}/screenshot",
    response_class=Response,
    responses=errors.file_responses("image/png", 404, 409, 422, 503),
    summary="A PNG of the session's desktop, now",
)
async def screenshot(
    session_id: uuid.UUID, service: SessionServiceDep, caller: CallerDep
) -> Response:
    png = await service.screenshot(session_id=str(session_id), owner=caller)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
