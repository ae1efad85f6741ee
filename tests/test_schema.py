"""The schema at start-up: `computer-use serve` and `uvicorn computer_use.main:app` migrate a
new database by themselves, under a lock replicas wait on; AUTO_MIGRATE=false refuses a
database without the schema in one line."""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from computer_use import schema
from computer_use.config import Settings
from tests.conftest import PG_ADMIN_DSN, _pg_admin, server_env
from tests.helpers import REPO, ServerProcess, wait_for

DESKTOPS = {"MAX_DISPLAYS": "1", "DESKTOP_USER_PREFIX": "cu-sc"}
TABLES = {"sessions", "messages", "images", "events", "alembic_version"}


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """An empty database of its own (the suite's shared one is already migrated)."""
    name = f"cu_schema_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    yield f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def tables_of(settings: Settings) -> set[str]:
    from sqlalchemy import inspect

    from computer_use.database import create_engine

    async def read() -> set[str]:
        engine = create_engine(settings)
        try:
            async with engine.connect() as conn:
                return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(read())


COMMANDS = {
    "computer-use serve": [sys.executable, "-m", "computer_use", "serve", "--port", "{port}"],
    "uvicorn": [sys.executable, "-m", "uvicorn", "computer_use.main:app", "--port", "{port}"],
}


@pytest.mark.parametrize("command", COMMANDS, ids=["serve", "uvicorn"])
def test_a_new_data_dir_is_migrated_at_start_up(command: str, tmp_path: Path) -> None:
    env = server_env(tmp_path, DESKTOP_DISPLAY_BASE="1760", **DESKTOPS)
    server = ServerProcess(env, tmp_path / "server.log", argv=COMMANDS[command])
    server.start()
    try:
        with server.client() as http:
            listed = http.get("/api/v1/sessions")
        assert listed.status_code == 200, listed.text
        assert listed.json()["total"] == 0
    finally:
        server.stop()
    assert "Traceback" not in server.log_path.read_text()


def test_replicas_starting_together_on_a_new_postgresql_database_both_serve(
    tmp_path: Path, fresh_postgres: str
) -> None:
    servers = [
        ServerProcess(
            server_env(
                tmp_path / name,
                DATABASE_URL=fresh_postgres,
                DESKTOP_DISPLAY_BASE=base,
                MAX_DISPLAYS="1",
                DESKTOP_USER_PREFIX=f"cu-s{name}",
            ),
            tmp_path / f"{name}.log",
            argv=COMMANDS["computer-use serve"],
        )
        for name, base in (("a", "1764"), ("b", "1768"))
    ]
    for server in servers:
        Path(server.env["DATA_DIR"]).mkdir()
    errors: list[BaseException] = []

    def start(server: ServerProcess) -> None:
        try:
            server.start(timeout=150)  # two servers starting at once on a loaded machine
        except BaseException as exc:  # reported below, after both had their chance
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        assert errors == [], errors
        for server in servers:
            with server.client() as http:
                assert http.get("/api/v1/sessions").status_code == 200
    finally:
        for server in servers:
            server.stop()
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url=fresh_postgres)
    assert tables_of(settings) >= TABLES


@pytest.mark.parametrize("command", COMMANDS, ids=["serve", "uvicorn"])
def test_auto_migrate_false_refuses_a_missing_schema_in_one_line(
    command: str, tmp_path: Path
) -> None:
    env = server_env(tmp_path, AUTO_MIGRATE="false", DESKTOP_DISPLAY_BASE="1760", **DESKTOPS)
    argv = [a.replace("{port}", "0") for a in COMMANDS[command]]
    result = subprocess.run(
        argv, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if "computer-use migrate" in line]
    assert len(lines) == 1 and "AUTO_MIGRATE" in lines[0], output
    assert not (tmp_path / "sessions").exists() or not any((tmp_path / "sessions").iterdir())


def _upgrade_in_background(settings: Settings) -> tuple[threading.Thread, list[BaseException]]:
    failures: list[BaseException] = []

    def run() -> None:
        try:
            schema.upgrade(settings, quiet=True)
        except BaseException as exc:  # surfaced by the test
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, failures


async def _advisory_waiters(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()"
        )
        return count
    finally:
        await conn.close()


def test_postgresql_migrations_wait_for_the_advisory_lock(
    tmp_path: Path, fresh_postgres: str
) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url=fresh_postgres)

    async def hold() -> asyncpg.Connection:
        conn = await asyncpg.connect(fresh_postgres)
        await conn.execute("SELECT pg_advisory_lock($1)", schema.ADVISORY_LOCK_KEY)
        return conn

    loop = asyncio.new_event_loop()
    holder = loop.run_until_complete(hold())
    try:
        thread, failures = _upgrade_in_background(settings)
        wait_for(
            lambda: asyncio.run(_advisory_waiters(fresh_postgres)) == 1,
            timeout=30,
            what="the migration waiting on the advisory lock",
        )
        assert thread.is_alive() and "sessions" not in tables_of(settings)
    finally:
        loop.run_until_complete(holder.close())  # releases the lock
        loop.close()
    thread.join(60)
    assert not thread.is_alive() and failures == []
    assert tables_of(settings) >= TABLES


def _blocked_flocks_on(path: Path) -> int:
    inode = path.stat().st_ino
    count = 0
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and "FLOCK" in fields:
            device_inode = fields[fields.index("FLOCK") + 4]
            if int(device_inode.rsplit(":", 1)[1]) == inode:
                count += 1
    return count


def test_sqlite_migrations_wait_for_the_file_lock(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    lock_path = schema.sqlite_lock_path(settings)
    assert lock_path is not None
    with lock_path.open("a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        thread, failures = _upgrade_in_background(settings)
        try:
            wait_for(
                lambda: _blocked_flocks_on(lock_path) == 1,
                timeout=30,
                what="the migration waiting on the file lock",
            )
            assert thread.is_alive() and "sessions" not in tables_of(settings)
        finally:
            fcntl.flock(held.fileno(), fcntl.LOCK_UN)
    thread.join(60)
    assert not thread.is_alive() and failures == []
    assert tables_of(settings) >= TABLES
