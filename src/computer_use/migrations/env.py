"""Alembic environment (async). The URL comes from Settings unless the caller set one."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

import computer_use.sessions.models
import computer_use.streaming.models  # noqa: F401  (registers the tables)
from computer_use.config import Settings
from computer_use.database import Base, create_engine
from computer_use.schema import migration_lock

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _settings() -> Settings:
    settings = config.attributes.get("settings")
    return settings if isinstance(settings, Settings) else Settings()


def run_migrations_offline() -> None:
    context.configure(
        url=_settings().async_database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    # Batch mode so ALTERs work on SQLite too.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    settings = _settings()
    engine = create_engine(settings)
    try:
        # One migrator at a time per database: replicas starting together wait here.
        async with engine.connect() as connection, migration_lock(connection, settings):
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
