"""GET /api/v1/sessions/{id}/stream: the session's events as Server-Sent Events."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from computer_use import errors
from computer_use.auth import CallerDep
from computer_use.deps import RuntimeDep
from computer_use.streaming.sse import MAX_EVENT_ID, SSE_HEADERS, parse_last_event_id, sse_stream

router = APIRouter(prefix="/api/v1/sessions", tags=["streaming"])


@router.get(
    "/{session_id}/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Events: `id:` (increasing per session), `event:` type, `data:` JSON.",
        },
        **errors.error_responses(404, 422),
    },
    summary="Stream the session's events (SSE); resume with Last-Event-ID",
)
async def stream(
    session_id: uuid.UUID,
    runtime: RuntimeDep,
    caller: CallerDep,
    last_event_id: Annotated[
        str | None, Header(description="Resume after this event id (set by EventSource).")
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_EVENT_ID, description="Resume after this event id (query form)."),
    ] = None,
    last_event_id_query: Annotated[
        int | None,
        Query(
            alias="last_event_id",
            ge=0,
            le=MAX_EVENT_ID,
            description="Same as `after` (for EventSource users).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        Query(description="Signed stream token (API_TOKENS set): use the session's stream_url."),
    ] = None,
) -> StreamingResponse:
    sid = str(session_id)
    await runtime.sessions.get(session_id=sid, owner=caller)
    queried = after if after is not None else last_event_id_query
    resume = parse_last_event_id(last_event_id, None if queried is None else str(queried))
    events = runtime.bus.subscribe(sid, resume)
    return StreamingResponse(
        sse_stream(events), media_type="text/event-stream", headers=SSE_HEADERS
    )
