"""Settings: defaults, URL normalisation, CORS, and start-up errors that name the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from computer_use.config import Settings, format_settings_error
from tests.helpers import REPO


def test_defaults_match_the_readme_table(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = Settings(_env_file=None)
    assert settings.api_provider == "anthropic"
    assert settings.session_ttl_seconds == 3600
    assert settings.cleanup_interval_seconds == 300
    assert settings.mcp_enabled is True
    assert settings.mcp_task_wait_seconds == 40
    assert settings.max_displays == 20
    assert settings.filesystem_isolation_enabled is True
    assert settings.session_disk_quota_mb == 500
    assert settings.debug is False
    assert settings.cors_origins == "localhost"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.default_model == "claude-sonnet-5-5"
    assert settings.agent_effort is None
    assert (settings.stuck_repeats, settings.stuck_steps) == (5, 10)
    assert (settings.screen_width, settings.screen_height) == (1024, 768)
    assert settings.async_database_url == f"sqlite+aiosqlite:///{Path('data/computer_use.db')}"
    assert settings.event_bus == "local"


def test_the_postgres_event_bus_needs_a_postgres_database() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, event_bus="postgres")
    assert "EVENT_BUS=postgres needs DATABASE_URL=postgresql://" in format_settings_error(
        info.value
    )
    url = "postgresql://u@h/db"
    assert Settings(_env_file=None, event_bus="postgres", database_url=url).event_bus == "postgres"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_database_url_picks_the_async_driver(given: str, expected: str) -> None:
    assert Settings(_env_file=None, database_url=given).async_database_url == expected


def test_cors_localhost_means_any_port_on_loopback() -> None:
    settings = Settings(_env_file=None, cors_origins="localhost,https://app.example.com")
    assert settings.cors_origin_list == ["https://app.example.com"]
    assert settings.cors_origin_regex is not None
    import re

    assert re.fullmatch(settings.cors_origin_regex, "http://127.0.0.1:8080")
    assert re.fullmatch(settings.cors_origin_regex, "http://localhost")
    assert not re.fullmatch(settings.cors_origin_regex, "http://evil.example.com")


def test_invalid_values_name_the_variable() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, session_ttl_seconds=-1, database_url="mysql://x")
    message = format_settings_error(info.value)
    assert "SESSION_TTL_SECONDS" in message and "DATABASE_URL" in message


def test_server_refuses_to_start_with_invalid_settings(tmp_path: Path) -> None:
    env = {**os.environ, "DATA_DIR": str(tmp_path), "MAX_DISPLAYS": "lots"}
    result = subprocess.run(
        [sys.executable, "-m", "computer_use", "serve"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "MAX_DISPLAYS" in result.stderr and "Traceback" not in result.stderr


def test_empty_variables_mean_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "")
    monkeypatch.setenv("SESSION_TTL_SECONDS", "")
    settings = Settings(_env_file=None)
    assert settings.anthropic_api_key is None
    assert settings.session_ttl_seconds == 3600


def test_libpq_sslmode_becomes_asyncpg_ssl() -> None:
    url = "postgres://u@h/db?sslmode=require&application_name=x"
    assert Settings(_env_file=None, database_url=url).async_database_url == (
        "postgresql+asyncpg://u@h/db?ssl=require&application_name=x"
    )


@pytest.mark.parametrize("value", ["60", "0", "soon"])
def test_mcp_task_wait_stays_below_the_60_s_clients_give_a_call(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, mcp_task_wait_seconds=value)
    assert "mcp_task_wait_seconds" in str(info.value)


@pytest.mark.parametrize("name", ["STUCK_REPEATS", "STUCK_STEPS"])
def test_stuck_limits_must_stay_below_the_step_cap(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_MAX_STEPS", "8")
    monkeypatch.setenv(name, "8")
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    assert f"{name}=8 must be below AGENT_MAX_STEPS=8" in format_settings_error(info.value)
    monkeypatch.setenv(name, "0")  # off
    assert getattr(Settings(_env_file=None), name.lower()) == 0


def test_a_small_step_cap_alone_leaves_the_stuck_defaults_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STUCK_REPEATS", raising=False)
    monkeypatch.delenv("STUCK_STEPS", raising=False)
    monkeypatch.setenv("AGENT_MAX_STEPS", "3")
    assert Settings(_env_file=None).stuck_steps == 10
