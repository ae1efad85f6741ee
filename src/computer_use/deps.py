"""Typed dependencies: long-lived things created by the lifespan, reached per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from computer_use import errors
from computer_use.agent.service import AgentRunner
from computer_use.config import Settings
from computer_use.runtime import Runtime, installed_runtime
from computer_use.sessions.service import SessionService


def get_runtime(request: Request) -> Runtime:
    runtime = installed_runtime(request.app)
    if runtime is None:  # a request before the lifespan has built it
        raise errors.ServiceUnavailable("The server is still starting; try again in a moment.")
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
