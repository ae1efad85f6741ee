"""Health, readiness, public configuration and /llms.txt."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text

from computer_use import __version__, errors
from computer_use.auth import ApiTokens, api_tokens_of
from computer_use.deps import RuntimeDep, SettingsDep
from computer_use.hostguard import FOREIGN_HOST_SCOPE_KEY
from computer_use.startup import isolation_warnings
from computer_use.streaming.pgbus import PostgresEventBus
from computer_use.system.llms import render_llms_txt
from computer_use.system.schemas import ConfigPublic, Health, Readiness

router = APIRouter(tags=["system"])


@router.get(
    "/api/v1/health",
    response_model=Health,
    response_model_exclude_unset=True,
    summary="Liveness; with a token (or without API_TOKENS) the isolation report too",
)
async def health(runtime: RuntimeDep, request: Request) -> dict[str, Any]:
    auth_required = ApiTokens.from_settings(runtime.settings).enabled
    if not _may_see_details(request, auth_required):
        return {"status": "ok", "auth_required": auth_required}
    report = runtime.sessions.desktops_health()
    return {
        "status": "ok",
        "version": __version__,
        "auth_required": auth_required,
        "database": "sqlite" if runtime.settings.is_sqlite else "postgresql",
        "desktops": report,
        "warnings": isolation_warnings(report),
    }


def _may_see_details(request: Request, auth_required: bool) -> bool:
    """A load balancer gets liveness only: the details (failed desktops, isolation) are for
    a caller with a token, or any local caller when there are no tokens."""
    if auth_required:
        tokens = api_tokens_of(request.app)
        assert tokens is not None  # install_auth ran: create_app always installs it
        headers = {k.lower(): v for k, v in request.headers.items()}
        return tokens.from_headers(headers) is not None
    return not request.scope.get(FOREIGN_HOST_SCOPE_KEY, False)


@router.get(
    "/api/v1/health/ready",
    response_model=Readiness,
    responses=errors.error_responses(503),
    summary="Readiness: the database (and desktop backend) answer",
)
async def ready(runtime: RuntimeDep) -> Any:
    checks: dict[str, str] = {}
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means "not ready"; the reason is reported
        checks["database"] = f"unavailable: {type(exc).__name__}"
    checks["desktops"] = runtime.sessions.desktops_readiness()
    if isinstance(runtime.bus, PostgresEventBus):  # EVENT_BUS=postgres
        checks["event_bus"] = "ok" if runtime.bus.listening else "unavailable: not listening"
    if any(v.startswith("unavailable") for v in checks.values()):
        body = errors.ErrorBody(
            error=errors.ErrorDetail(
                code="not_ready", message="A dependency is down.", details=checks
            )
        )
        return JSONResponse(body.model_dump(), status_code=503)
    return {"status": "ready", "checks": checks}


@router.get("/api/v1/config", response_model=ConfigPublic, summary="Non-secret configuration")
async def config(settings: SettingsDep) -> dict[str, Any]:
    return {
        "api_provider": settings.api_provider,
        "aws_region": settings.aws_region,
        "cloud_ml_region": settings.cloud_ml_region,
        "anthropic_vertex_project_id": settings.anthropic_vertex_project_id,
        "default_model": settings.default_model,
        "agent_effort": settings.agent_effort,
        "server_api_key_configured": settings.anthropic_api_key is not None,
        "secret_key_configured": settings.secret_key is not None,
        "auth_required": ApiTokens.from_settings(settings).enabled,
        "database": "sqlite" if settings.is_sqlite else "postgresql",
        "event_bus": settings.event_bus,
        "session_ttl_seconds": settings.session_ttl_seconds,
        "cleanup_interval_seconds": settings.cleanup_interval_seconds,
        "mcp_enabled": settings.mcp_enabled,
        "mcp_task_wait_seconds": settings.mcp_task_wait_seconds,
        "max_displays": settings.max_displays,
        "filesystem_isolation_enabled": settings.filesystem_isolation_enabled,
        "session_disk_quota_mb": settings.session_disk_quota_mb,
        "screen_width": settings.screen_width,
        "screen_height": settings.screen_height,
        "max_message_chars": settings.max_message_chars,
        "agent_max_steps": settings.agent_max_steps,
        "stuck_repeats": settings.stuck_repeats,
        "stuck_steps": settings.stuck_steps,
        "session_memory_limit_mb": settings.session_memory_limit_mb,
        "session_max_processes": settings.session_max_processes,
        "browser_eager": settings.browser_eager,
        "ksm_merge": settings.ksm_merge,
        "ksm_start_host": settings.ksm_start_host,
        "ksm_disable_aslr": settings.ksm_disable_aslr,
        "warm_pool_size": settings.warm_pool_size,
        "warm_pool_browser": settings.warm_pool_browser,
        "session_cpu_limit": settings.session_cpu_limit,
        "session_egress_allow": settings.session_egress_allow,
        "session_egress_deny": settings.session_egress_deny,
        "max_request_bytes": settings.max_request_bytes,
        "rate_limit_sessions": settings.rate_limit_sessions,
        "rate_limit_messages": settings.rate_limit_messages,
        "rate_limit_storage": "redis" if settings.rate_limit_storage_url else "memory",
        "allowed_hosts": settings.allowed_hosts,
        "allow_unauthenticated": settings.allow_unauthenticated,
        "auto_migrate": settings.auto_migrate,
        "max_upload_mb": settings.max_upload_mb,
        "record_sessions": settings.record_sessions,
        "recording_fps": settings.recording_fps,
        "recordings_on_expiry": settings.recordings_on_expiry,
        "debug": settings.debug,
    }


@router.get(
    "/llms.txt",
    response_class=PlainTextResponse,
    summary="A description of this API for LLMs, generated from the routes",
)
async def llms_txt(request: Request) -> PlainTextResponse:
    return PlainTextResponse(render_llms_txt(request.app))
