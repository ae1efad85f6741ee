"""Alembic migrations apply and roll back on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from computer_use import schema
from computer_use.config import Settings
from computer_use.database import Base, create_engine


def _alembic_config(settings: Settings) -> Config:
    config = schema.alembic_config(settings)
    config.attributes["skip_logging"] = True
    return config


async def _inspect(settings: Settings) -> tuple[set[str], list[object]]:
    engine = create_engine(settings)

    def run(conn: Connection) -> tuple[set[str], list[object]]:
        tables = set(inspect(conn).get_table_names())
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        return tables, diff

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(run)
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(_env_file=None, data_dir=tmp_path)
    url: str = request.getfixturevalue("postgres_url")
    return Settings(_env_file=None, data_dir=tmp_path, database_url=url)


def test_upgrade_matches_models_and_downgrade_removes_all(db_settings: Settings) -> None:
    config = _alembic_config(db_settings)
    command.upgrade(config, "head")
    tables, diff = asyncio.run(_inspect(db_settings))
    assert {"sessions", "messages", "images", "events", "alembic_version"} <= tables
    assert diff == [], f"models and migrations differ: {diff}"
    command.downgrade(config, "base")
    tables, _ = asyncio.run(_inspect(db_settings))
    assert tables <= {"alembic_version"}
    command.upgrade(config, "head")  # leave it usable for the other tests sharing the database
