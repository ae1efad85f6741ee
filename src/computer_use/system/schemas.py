from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    """With API_TOKENS set, a request without a valid token gets `status` and
    `auth_required` only."""

    status: Literal["ok"]
    auth_required: bool = Field(
        description="Whether API_TOKENS is set: requests need `Authorization: Bearer <token>`."
    )
    version: str | None = None
    database: Literal["sqlite", "postgresql"] | None = None
    desktops: dict[str, Any] | None = Field(
        default=None,
        description="Desktop backend: isolation mode, quota enforcement, capacity (null if off).",
    )
    warnings: list[str] | None = Field(
        default=None,
        description="Isolation measures that fell back to off on this host, one sentence each.",
    )


class Readiness(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str]


class ConfigPublic(BaseModel):
    api_provider: str
    aws_region: str | None = Field(description="AWS_REGION (Bedrock); null = the AWS default.")
    cloud_ml_region: str | None = Field(description="CLOUD_ML_REGION (Vertex).")
    anthropic_vertex_project_id: str | None = Field(
        description="ANTHROPIC_VERTEX_PROJECT_ID (Vertex)."
    )
    default_model: str = Field(description="Used when a session names no model (never retired).")
    agent_effort: str | None = Field(
        description="AGENT_EFFORT: output_config.effort sent to adaptive-thinking models; "
        "null = each model's default."
    )
    server_api_key_configured: bool = Field(
        description="Whether ANTHROPIC_API_KEY is set on the server (never the key itself)."
    )
    secret_key_configured: bool = Field(
        description="Whether SECRET_KEY is set (never the key itself); when not, URL tokens are "
        "signed with a key generated once and kept in DATA_DIR/secret_key."
    )
    auth_required: bool = Field(
        description="Whether API_TOKENS is set: requests need `Authorization: Bearer <token>`."
    )
    database: Literal["sqlite", "postgresql"]
    event_bus: Literal["local", "postgres"] = Field(
        description="EVENT_BUS: `local` fans events out within this process; `postgres` across "
        "every API process on the same PostgreSQL database (LISTEN/NOTIFY)."
    )
    session_ttl_seconds: int
    cleanup_interval_seconds: int
    mcp_enabled: bool
    mcp_task_wait_seconds: float
    max_displays: int
    filesystem_isolation_enabled: bool
    session_disk_quota_mb: int
    screen_width: int
    screen_height: int
    max_message_chars: int
    agent_max_steps: int
    stuck_repeats: int = Field(description="STUCK_REPEATS (0: off).")
    stuck_steps: int = Field(description="STUCK_STEPS (0: off).")
    session_memory_limit_mb: int
    session_max_processes: int
    browser_eager: bool = Field(
        description="Whether Firefox starts with each desktop rather than on first use."
    )
    ksm_merge: bool = Field(
        description="Whether sessions' processes are offered to kernel same-page merging "
        "(effective when the host runs KSM; see /api/v1/health desktops.ksm)."
    )
    ksm_start_host: bool = Field(
        description="Whether the service switches the host's KSM on at startup (host-wide)."
    )
    ksm_disable_aslr: bool = Field(
        description="Whether merged session programs run without address-space "
        "randomisation (more pages merge; a weaker exploit mitigation)."
    )
    warm_pool_size: int = Field(
        description="Desktops kept prepared ahead for new sessions (they count against "
        "max_displays)."
    )
    warm_pool_browser: bool = Field(
        description="Whether the pooled desktops have Firefox up already (a browser's memory each)."
    )
    session_cpu_limit: float
    session_egress_allow: str
    session_egress_deny: str
    max_request_bytes: int
    rate_limit_sessions: str
    rate_limit_messages: str
    rate_limit_storage: Literal["memory", "redis"] = Field(
        description="Where the rate limits are counted: this process's memory, or Redis "
        "(RATE_LIMIT_STORAGE_URL, shared by every API process using it; the URL is not shown)."
    )
    allowed_hosts: str
    allow_unauthenticated: bool
    auto_migrate: bool
    max_upload_mb: int = Field(description="Largest file PUT .../files/{path} accepts, in MiB.")
    record_sessions: bool = Field(description='Default of "record" when creating a session.')
    recording_fps: int
    recordings_on_expiry: Literal["keep", "delete"]
    debug: bool
