"""REST routes that export a session's run: its trajectory (zip) and screen recording (MP4)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, StreamingResponse

from computer_use import errors
from computer_use.auth import CallerDep
from computer_use.deps import AgentRunnerDep, SessionServiceDep
from computer_use.sessions import trajectory
from computer_use.sessions.download_response import DownloadResponse
from computer_use.sessions.records import image_url

# Every route here is about one session: its id may be malformed (422) or name no session
# of the caller's (404).
router = APIRouter(
    prefix="/api/v1/sessions", tags=["exports"], responses=errors.error_responses(404, 422)
)


@router.get(
    "/{session_id}/trajectory",
    response_class=StreamingResponse,
    responses=errors.file_responses("application/zip"),
    summary="The run as a trajectory zip: steps.jsonl (one line per model turn) + screenshots",
)
async def get_trajectory(
    session_id: uuid.UUID, service: SessionServiceDep, runner: AgentRunnerDep, caller: CallerDep
) -> StreamingResponse:
    session = await service.get(session_id=str(session_id), with_messages=True, owner=caller)

    async def load(image_id: str) -> bytes:
        return await runner.load_image(session.id, image_id)

    archive = await trajectory.write_zip(session, session.messages, load)
    return StreamingResponse(
        trajectory.chunks(archive),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="trajectory-{session.id}.zip"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/{session_id}/recording",
    response_class=FileResponse,
    responses=errors.file_responses("video/mp4", 409),
    summary="The screen recording so far, as one MP4 (also while recording goes on)",
)
async def get_recording(
    session_id: uuid.UUID, service: SessionServiceDep, caller: CallerDep
) -> DownloadResponse:
    session = await service.get(session_id=str(session_id), owner=caller)
    return DownloadResponse(
        await service.recording_download(session.id),
        media_type="video/mp4",
        filename=f"recording-{session.id}.mp4",
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/{session_id}/recording/timeline",
    summary="Where each tool call falls in the recording, with its step's text and screenshot",
)
async def get_timeline(
    session_id: uuid.UUID, service: SessionServiceDep, caller: CallerDep
) -> dict[str, Any]:
    session = await service.get(session_id=str(session_id), with_messages=True, owner=caller)
    state = await service.recording_of(session.id)
    return {
        "recording": state.recording,
        "parts": state.parts,
        "markers": trajectory.markers(
            session,
            session.messages,
            state.video_seconds,
            lambda image_id: image_url(session.id, image_id),
        ),
    }
