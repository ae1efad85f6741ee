"""Typed dependencies: long-lived things created by the lifespan, reached per request."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from computer_use import errors
from computer_use.agent.service import AgentRunner
from computer_use.auth import CallerDep
from computer_use.config import Settings
from computer_use.desktops import Desktop
from computer_use.lifespan import Runtime
from computer_use.sessions.models import SessionStatus
from computer_use.sessions.service import SessionService


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


def get_session_service(runtime: RuntimeDep) -> SessionService:
    return runtime.sessions


def get_agent_runner(runtime: RuntimeDep) -> AgentRunner:
    return runtime.runner


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionServiceDep = Annotated[SessionService, Depends(get_session_service)]
AgentRunnerDep = Annotated[AgentRunner, Depends(get_agent_runner)]


async def get_desktop(
    session_id: uuid.UUID, service: SessionServiceDep, caller: CallerDep
) -> Desktop:
    """The running desktop of a session (404 unknown or not the caller's, 409 expired, 503 not
    running)."""
    session = await service.get(session_id=str(session_id), owner=caller)
    if session.status == SessionStatus.EXPIRED:
        raise errors.Conflict("This session has expired; its desktop is gone.")
    desktop = service.require_desktop(session)
    await service.touch(session_id=session.id)
    return desktop


DesktopDep = Annotated[Desktop, Depends(get_desktop)]
