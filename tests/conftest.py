"""Shared fixtures: databases (SQLite and the machine's PostgreSQL) and a running server."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ServerProcess

PG_ADMIN_DSN = os.environ.get(
    "TEST_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    name = f"cu_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(__file__).parent / "artifacts"
    path.mkdir(exist_ok=True)
    return path


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": "",
        "ANTHROPIC_API_KEY": "",
        "SESSION_TTL_SECONDS": "3600",
        # Suites fire requests faster than any client should; tests/test_security.py checks
        # the limits themselves.
        "RATE_LIMIT_SESSIONS": "100000/minute",
        "RATE_LIMIT_MESSAGES": "100000/minute",
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The service on SQLite and on PostgreSQL: tests using it run once per backend."""
    data_dir = tmp_path_factory.mktemp(f"data-{request.param}")
    database_url = ""
    if request.param == "postgresql":
        database_url = request.getfixturevalue("postgres_url")
    # Each server module gets its own displays and session users: tests run one after another,
    # but a server's start-up reclaims every display and user of its range.
    base, prefix = {"sqlite": ("600", "cu-ts"), "postgresql": ("640", "cu-tp")}[request.param]
    env = server_env(
        data_dir,
        DATABASE_URL=database_url,
        MAX_DISPLAYS="4",
        DESKTOP_DISPLAY_BASE=base,
        DESKTOP_USER_PREFIX=prefix,
    )
    proc = ServerProcess(env, data_dir / "server.log").start()
    try:
        yield proc
    finally:
        proc.stop()
