"""Typed dependencies: long-lived things created by the lifespan, reached per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from computer_use.config import Settings
from computer_use.lifespan import Runtime
from computer_use.sessions.service import SessionService


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


def get_session_service(runtime: RuntimeDep) -> SessionService:
    return runtime.sessions


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionServiceDep = Annotated[SessionService, Depends(get_session_service)]
