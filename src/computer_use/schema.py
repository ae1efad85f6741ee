"""The database schema at start-up: migrate it (AUTO_MIGRATE, the default) or check it.

Migrations run under one lock per database, so replicas starting together do not race: a
PostgreSQL advisory lock (held by the migrating connection), or for SQLite an exclusive
`flock` on a file beside the database. The second replica waits, then finds nothing to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import AsyncIterator
from pathlib import Path

from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

from computer_use.config import Settings
from computer_use.database import create_engine, migrate, migrations_dir
from computer_use.startup import StartupRefused

# pg_advisory_lock's 64-bit key: any constant no other application on the database uses.
ADVISORY_LOCK_KEY = 0x6375_6D69_6772_6174  # "cumigrat"


class SchemaNotReady(StartupRefused):
    """The schema is missing or behind and AUTO_MIGRATE is off: the one line to show."""


def alembic_config(settings: Settings) -> Config:
    config = Config()  # the migrations ship in the package (database.migrations_dir)
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings, revision: str = "head", *, quiet: bool = False) -> None:
    """Applies migrations (blocking; env.py takes the lock). `quiet`: keep the app's logging."""
    migrate(settings, revision, quiet=quiet)


def sqlite_lock_path(settings: Settings) -> Path | None:
    path = settings.async_database_url.split(":///", 1)[1]
    if not path or path == ":memory:":
        return None
    return Path(f"{path}.migrate.lock")


@contextlib.asynccontextmanager
async def migration_lock(connection: AsyncConnection, settings: Settings) -> AsyncIterator[None]:
    """Held while migrations run on `connection` (used by migrations/env.py)."""
    if connection.dialect.name == "postgresql":
        key = {"key": ADVISORY_LOCK_KEY}
        await connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
        try:
            yield
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
        return
    lock_path = sqlite_lock_path(settings)
    if lock_path is None:
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        # In a thread: another process may hold it for as long as its migrations take.
        await asyncio.to_thread(fcntl.flock, handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def head_revision(settings: Settings) -> str | None:
    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()


async def current_revision(settings: Settings) -> str | None:
    engine = create_engine(settings)

    def read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(read)
    finally:
        await engine.dispose()


async def prepare(settings: Settings) -> None:
    """Start-up: migrate to head, or (AUTO_MIGRATE=false) refuse a schema that is not there."""
    if settings.auto_migrate:
        await asyncio.to_thread(upgrade, settings, quiet=True)
        return
    found, head = await current_revision(settings), head_revision(settings)
    if found != head:
        state = "has no schema" if found is None else f"is at revision {found}"
        raise SchemaNotReady(
            f"The database {state}; this version needs {head}. Run `computer-use migrate` "
            "first, or unset AUTO_MIGRATE (AUTO_MIGRATE=false skips migrating at start-up)."
        )
