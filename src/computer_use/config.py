"""Settings, read from the environment and `.env`. Every variable of the README's table."""

from __future__ import annotations

import importlib.util
import re
import socket
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# "localhost" in CORS_ORIGINS means any port on these two hosts (the UI is often served elsewhere
# during development, e.g. `python -m http.server 8080`).
_LOCALHOST_ORIGIN_REGEX = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?"
MIN_SECRET_KEY_CHARS = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # `VAR=` (as in a copied env.example) means "use the default", e.g. no server key.
        env_ignore_empty=True,
    )

    anthropic_api_key: SecretStr | None = Field(
        default=None, description="Server default Claude API key (clients may bring their own)."
    )
    api_provider: Literal["anthropic", "bedrock", "vertex"] = "anthropic"
    # The providers' own settings (agent/providers.py): Bedrock's region (its credentials come
    # from the AWS chain), Vertex's region and project (both needed with API_PROVIDER=vertex).
    aws_region: str | None = Field(default=None, description="Bedrock: the AWS region.")
    cloud_ml_region: str | None = Field(default=None, description="Vertex: the region.")
    anthropic_vertex_project_id: str | None = Field(
        default=None, description="Vertex: the Google Cloud project id."
    )
    # Comma-separated; empty = no authentication (fine on localhost only). See auth.py.
    api_tokens: SecretStr | None = Field(
        default=None, description="API tokens clients must send (Authorization: Bearer ...)."
    )
    # Signs the VNC and event-stream URL tokens (signing.py). Unset: generated once and kept in
    # DATA_DIR/secret_key (0600). Set it to share one key between processes on several hosts.
    secret_key: SecretStr | None = Field(
        default=None, description="Key that signs VNC and stream URL tokens (>= 32 characters)."
    )
    database_url: str = Field(
        default="", description="sqlite:///path, postgresql://... or postgres://...; empty = SQLite"
    )
    # How events reach the SSE streams: `local` within this process; `postgres` across every
    # process on the same PostgreSQL database (LISTEN/NOTIFY, streaming/pgbus.py).
    event_bus: Literal["local", "postgres"] = "local"
    # A Ray cluster's head (host:port): sessions live in session actors on its desktop hosts
    # (cluster/); unset: this process runs the desktops (docs/SCALING.md).
    ray_address: str = Field(default="", max_length=255)
    session_ttl_seconds: int = Field(default=3600, gt=0)
    cleanup_interval_seconds: int = Field(default=300, gt=0)
    mcp_enabled: bool = True
    # How long execute_task and wait_for_task wait for a task before answering "still running"
    # (below the 60 s after which common MCP clients give up on a call).
    mcp_task_wait_seconds: float = Field(default=40.0, gt=0, lt=60)
    max_displays: int = Field(default=20, ge=1, le=200)
    filesystem_isolation_enabled: bool = True
    session_disk_quota_mb: int = Field(default=500, ge=16)
    # Per-session cgroup caps (memory, and tasks: processes plus their threads).
    session_memory_limit_mb: int = Field(default=2048, ge=64)
    session_max_processes: int = Field(default=512, ge=32)
    # Start Firefox with the desktop (the old way) instead of on first use: ~10x the memory
    # of an idle session (bench/density.py).
    browser_eager: bool = False
    # Kernel same-page merging of the sessions' processes (desktops/ksm.py): on when the host
    # runs KSM; KSM_START_HOST=true lets the service switch the host's KSM on (host-wide).
    ksm_merge: bool = True
    ksm_start_host: bool = False
    # Merged session programs run without ASLR: more identical pages, a weaker exploit
    # mitigation (desktops/ksm.py).
    ksm_disable_aslr: bool = False
    # Desktops prepared ahead (desktops/warm_pool.py); they hold slots of MAX_DISPLAYS.
    warm_pool_size: int = Field(default=0, ge=0, le=50)
    # Pooled desktops with Firefox already up: the first step of a pooled session does not
    # wait for the browser's start, at a browser's memory for each desktop in the pool.
    warm_pool_browser: bool = False
    # x11vnc runs while someone watches a session (desktops/viewing.py): it is stopped this
    # many seconds after its last viewer left (a reload or reconnect within them finds it up).
    vnc_linger_seconds: float = Field(default=30.0, ge=0, le=86400)
    # Every this many seconds browsers idle since the last sweep are asked to minimize their
    # memory (desktops/minimize.py) and the pages the sessions' browsers freed (MADV_FREE) but
    # still hold are paged out (desktops/reclaim.py; off on a host with swap); 0 = never.
    memory_reclaim_interval: float = Field(default=60.0, ge=0)
    # CPUs each session may use at most (cgroup cpu quota); 0 = no cap, equal shares only.
    session_cpu_limit: float = Field(default=1.0, ge=0, le=256)
    # Egress of sessions (desktops/netrules.py): comma-separated CIDRs. Loopback, link-local,
    # private and reserved ranges are denied by default; DENY adds ranges, ALLOW opens some.
    session_egress_allow: str = ""
    session_egress_deny: str = ""
    debug: bool = False
    cors_origins: str = "localhost"

    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    default_model: str = "claude-sonnet-5-5"
    # output_config.effort for models with adaptive thinking; unset = each model's own default.
    agent_effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    screen_width: int = Field(default=1024, ge=320, le=3840)
    screen_height: int = Field(default=768, ge=240, le=2160)
    max_message_chars: int = Field(default=100_000, ge=1)
    agent_max_steps: int = Field(default=50, ge=1, le=1000)
    # Stuck detection (agent/stuck.py): the same input action on an unchanged screen this many
    # times, or this many steps of input actions that change nothing, end a run; 0 = off.
    stuck_repeats: int = Field(default=5, ge=0, le=1000)
    stuck_steps: int = Field(default=10, ge=0, le=1000)
    # How long an action that needs a person's approval waits before the run ends
    # (stop reason approval_expired).
    approval_timeout_seconds: float = Field(default=600, gt=0, le=86400)
    # Several instances on one host (or the test suite) need disjoint displays and users.
    desktop_display_base: int = Field(default=100, ge=1, le=60000)
    desktop_user_prefix: str = Field(default="cu-s", pattern=r"^[a-z][a-z0-9-]{0,15}$")
    # This process among the replicas sharing a database: its sessions' `host`. Unset: the
    # machine's name and DESKTOP_USER_PREFIX (one live instance per prefix per machine).
    instance_name: str = Field(default="", max_length=255)
    # DNS-rebinding protection of every route (hostguard.py): Host names served besides
    # localhost, 127.0.0.1, [::1] and HOST. MCP_ALLOWED_HOSTS is its old name.
    allowed_hosts: str = Field(
        default="",
        validation_alias=AliasChoices("allowed_hosts", "mcp_allowed_hosts"),
        description="Extra Host names served, comma-separated (name, name:port, *.domain, *).",
    )
    # Start-up rules (startup.py, schema.py).
    allow_unauthenticated: bool = False
    auto_migrate: bool = True
    # HTTP hardening (security.py): the largest request body, and per-client-IP rate limits
    # on session creation and message posting ("N/second|minute|hour|day", the `limits` syntax).
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    rate_limit_sessions: str = "30/minute"
    rate_limit_messages: str = "60/minute"
    # Where those limits are counted: "" = this process's memory; redis://host:port/db = shared
    # by every process that names the same Redis database.
    rate_limit_storage_url: str = ""
    # Files API and recordings (sessions/files_router.py, desktops/recorder.py).
    max_upload_mb: int = Field(default=100, ge=1, le=100_000)
    record_sessions: bool = False
    recording_fps: int = Field(default=5, ge=1, le=30)
    recordings_on_expiry: Literal["keep", "delete"] = "keep"

    @field_validator("rate_limit_sessions", "rate_limit_messages")
    @classmethod
    def _parsable_rate(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError("must look like 30/minute (N per second/minute/hour/day)") from None
        return value

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and not re.match(r"^(redis|rediss|redis\+unix)://", value):
            raise ValueError("must be redis://host:port/db (or rediss://, redis+unix://), or empty")
        if value and importlib.util.find_spec("redis") is None:
            raise ValueError("needs the redis package: pip install 'computer-use[cluster]'")
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < MIN_SECRET_KEY_CHARS:
            raise ValueError(
                f"must be at least {MIN_SECRET_KEY_CHARS} characters (e.g. `openssl rand -hex 32`),"
                " or unset to keep a generated key in DATA_DIR/secret_key"
            )
        return value

    @field_validator("session_egress_allow", "session_egress_deny")
    @classmethod
    def _cidr_list(cls, value: str) -> str:
        import ipaddress

        for item in value.split(","):
            if item.strip():
                try:
                    ipaddress.ip_network(item.strip(), strict=False)
                except ValueError:
                    raise ValueError(
                        f"{item.strip()!r} is not a CIDR; use e.g. 10.0.0.5/32,fd00::/8"
                    ) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database_scheme(cls, value: str) -> str:
        if value and not re.match(r"^(sqlite|postgres|postgresql)(\+\w+)?://", value):
            raise ValueError("must start with sqlite:///, postgresql:// or postgres://")
        return value

    @field_validator("default_model")
    @classmethod
    def _usable_model(cls, value: str) -> str:
        from computer_use.agent.catalogue import RetiredModel, check_usable

        if not value.strip():
            raise ValueError("must name a model, e.g. claude-sonnet-5-5")
        try:
            check_usable(value.strip())
        except RetiredModel as exc:
            raise ValueError(str(exc)) from None
        return value.strip()

    @model_validator(mode="after")
    def _stuck_below_step_cap(self) -> Settings:
        # Only values set on purpose: a small AGENT_MAX_STEPS alone leaves the defaults idle.
        for name in ("stuck_repeats", "stuck_steps"):
            value = getattr(self, name)
            if name in self.model_fields_set and value >= self.agent_max_steps:
                raise ValueError(
                    f"{name.upper()}={value} must be below AGENT_MAX_STEPS="
                    f"{self.agent_max_steps} (or 0 to turn it off), else the step cap always "
                    "comes first"
                )
        return self

    @model_validator(mode="after")
    def _expand_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser()
        return self

    @model_validator(mode="after")
    def _postgres_bus_needs_postgres(self) -> Settings:
        if self.event_bus == "postgres" and self.is_sqlite:
            raise ValueError(
                "EVENT_BUS=postgres needs DATABASE_URL=postgresql://... (every process on the"
                " same PostgreSQL database); with SQLite use EVENT_BUS=local"
            )
        if self.ray_address and self.event_bus != "postgres":
            raise ValueError(
                "RAY_ADDRESS needs EVENT_BUS=postgres and DATABASE_URL=postgresql://...: the"
                " session actors on the desktop hosts publish the events every API replica"
                " streams"
            )
        return self

    @cached_property
    def async_database_url(self) -> str:
        """DATABASE_URL with the async driver chosen for it."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'computer_use.db').as_posix()}"
        scheme, rest = url.split("://", 1)
        base = scheme.split("+", 1)[0]
        if base == "sqlite":
            return f"sqlite+aiosqlite://{rest}"
        # libpq spells it sslmode=..., asyncpg ssl=...; hosted databases hand out the former.
        rest = re.sub(r"([?&])sslmode=", r"\1ssl=", rest)
        return f"postgresql+asyncpg://{rest}"

    @property
    def instance(self) -> str:
        return self.instance_name or f"{socket.gethostname()}:{self.desktop_user_prefix}"

    @property
    def is_sqlite(self) -> bool:
        return self.async_database_url.startswith("sqlite")

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip() and o != "localhost"]

    @property
    def cors_origin_regex(self) -> str | None:
        items = [o.strip() for o in self.cors_origins.split(",")]
        return _LOCALHOST_ORIGIN_REGEX if "localhost" in items else None


def format_settings_error(exc: Exception) -> str:
    """A start-up message naming each bad variable, e.g. `SESSION_TTL_SECONDS: ...`."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = ["Invalid configuration:"]
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]).upper() or "settings"
        secret = any(part in name for part in ("KEY", "TOKEN", "URL"))  # URLs hold passwords
        shown = "" if secret else f" (got {err.get('input')!r})"
        lines.append(f"  {name}: {err['msg']}{shown}")
    return "\n".join(lines)
