from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    auth_required: bool = Field(
        description="Whether API_TOKENS is set: requests need `Authorization: Bearer <token>`."
    )
    database: Literal["sqlite", "postgresql"]
    desktops: dict[str, Any] | None = Field(
        description="Desktop backend: isolation mode, quota enforcement, capacity (null if off)."
    )


class Readiness(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str]


class ConfigPublic(BaseModel):
    api_provider: str
    default_model: str
    server_api_key_configured: bool = Field(
        description="Whether ANTHROPIC_API_KEY is set on the server (never the key itself)."
    )
    auth_required: bool = Field(
        description="Whether API_TOKENS is set: requests need `Authorization: Bearer <token>`."
    )
    database: Literal["sqlite", "postgresql"]
    session_ttl_seconds: int
    cleanup_interval_seconds: int
    mcp_enabled: bool
    max_displays: int
    filesystem_isolation_enabled: bool
    session_disk_quota_mb: int
    screen_width: int
    screen_height: int
    max_message_chars: int
    agent_max_steps: int
    session_memory_limit_mb: int
    session_max_processes: int
    session_cpu_limit: float
    session_egress_allow: str
    session_egress_deny: str
    max_request_bytes: int
    rate_limit_sessions: str
    rate_limit_messages: str
    debug: bool
