"""REST routes of the person in the loop: pause / resume (take control / hand back), answer
an approval (the approval policy changes with the session's PATCH, sessions/router.py). They
translate; agent/people.py decides."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from computer_use import errors
from computer_use.auth import CallerDep
from computer_use.deps import AgentRunnerDep
from computer_use.sessions.controls_schemas import (
    ApprovalAnswer,
    ApprovalAnswered,
    ControlState,
    PauseRequest,
)

# Every route here is about one session: its id may be malformed (422) or name no session
# of the caller's (404).
router = APIRouter(
    prefix="/api/v1/sessions", tags=["sessions"], responses=errors.error_responses(404, 422)
)


@router.post(
    "/{session_id}/pause",
    response_model=ControlState,
    responses=errors.error_responses(400, 409),
    summary="Pause the agent at its next step boundary (or take control of the desktop)",
)
async def pause(
    session_id: uuid.UUID,
    runner: AgentRunnerDep,
    caller: CallerDep,
    body: PauseRequest | None = None,
) -> dict[str, Any]:
    take = body is not None and body.take_control
    return await runner.people.pause(str(session_id), "person" if take else "api", owner=caller)


@router.post(
    "/{session_id}/resume",
    response_model=ControlState,
    summary="Resume the agent (hand the desktop back)",
)
async def resume(
    session_id: uuid.UUID, runner: AgentRunnerDep, caller: CallerDep
) -> dict[str, Any]:
    return await runner.people.resume(str(session_id), owner=caller)


@router.post(
    "/{session_id}/approvals/{approval_id}",
    response_model=ApprovalAnswered,
    responses=errors.error_responses(400, 409),
    summary="Approve or decline an action the agent waits to run",
)
async def answer_approval(
    session_id: uuid.UUID,
    approval_id: uuid.UUID,
    body: ApprovalAnswer,
    runner: AgentRunnerDep,
    caller: CallerDep,
) -> dict[str, Any]:
    sid, aid = str(session_id), str(approval_id)
    await runner.people.answer(sid, aid, body.decision, remember=body.remember, owner=caller)
    return {
        "session_id": sid,
        "approval_id": aid,
        "decision": "approved" if body.decision == "approve" else "declined",
        "remember": body.remember,
    }
