"""Async engine, session factory and the declarative Base (with a naming convention)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Dialect, MetaData, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from computer_use.config import Settings
from computer_use.datadir import private_file

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite returns naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (SSE replay, list) run beside the single writer; the busy timeout makes
    # a writer wait for the lock instead of failing with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.async_database_url
    if settings.is_sqlite:
        path = url.split(":///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:" and not path.startswith("file:"):
            private_file(Path(path))  # 0600 before SQLite creates it (and its WAL) 0644
        engine = create_async_engine(url, connect_args={"timeout": 10})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# SQLite has a single writer. Writers queue here, in asyncio, rather than in SQLite's busy
# handler: a transaction that holds the lock across event-loop turns under heavy load could
# otherwise keep another writer waiting past busy_timeout ("database is locked").
_sqlite_write_locks: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


@contextlib.asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A write transaction, committed on success. Do not nest them."""
    engine = factory.kw.get("bind")
    if isinstance(engine, AsyncEngine) and engine.dialect.name == "sqlite":
        lock = _sqlite_write_locks.setdefault(engine, asyncio.Lock())
        async with lock, factory() as db, db.begin():
            yield db
    else:
        async with factory() as db, db.begin():
            yield db


def migrations_dir() -> Path:
    """The Alembic environment and revisions, shipped inside the package."""
    return Path(__file__).resolve().parent / "migrations"


def migrate(settings: Settings, revision: str = "head", *, quiet: bool = False) -> None:
    """Applies the migrations to DATABASE_URL (Alembic `upgrade`), from an installed wheel as
    from a checkout. Runs its own event loop: call it before the app's loop starts (or in a
    thread). `quiet`: without Alembic's "Running upgrade ..." lines on stderr."""
    from alembic import command
    from alembic.config import Config

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    config = Config()  # no alembic.ini: an installed package has none
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["settings"] = settings
    config.attributes["skip_logging"] = True
    with contextlib.nullcontext() if quiet else _alembic_progress_on_stderr():
        command.upgrade(config, revision)


@contextlib.contextmanager
def _alembic_progress_on_stderr() -> Iterator[None]:
    logger = logging.getLogger("alembic")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)-5.5s [%(name)s] %(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
