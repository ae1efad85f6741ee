"""Alembic migrations apply and roll back on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from computer_use.config import Settings
from computer_use.database import Base, create_engine

REPO = Path(__file__).resolve().parents[1]


def _alembic_config(settings: Settings) -> Config:
    """The developers' alembic.ini (what `alembic upgrade` and `revision` use)."""
    config = Config(str(REPO / "alembic.ini"))
    config.attributes["settings"] = settings
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


def test_migrate_runs_from_an_installed_wheel(tmp_path: Path) -> None:
    """The wheel carries its migrations: `computer-use migrate` in a fresh venv, away from the
    checkout (no alembic.ini, no src/ on the path), creates every table."""
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, _mkdir(source) / name)
    shutil.copytree(
        REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(source)], cwd=tmp_path)
    (wheel,) = wheels.glob("computer_use_backend-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    _run([*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", str(wheel)])
    # The dependencies come from this interpreter's site-packages (a path line, so its
    # editable install of the checkout is not activated there); the package from the wheel.
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "elsewhere"
    data_dir = _mkdir(work) / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DATABASE_URL")}
    env.update(DATA_DIR=str(data_dir))
    python = str(venv / "bin" / "python")
    where = _run([python, "-c", "import computer_use; print(computer_use.__file__)"], work, env)
    assert where.startswith(str(site)), where
    _run([str(venv / "bin" / "computer-use"), "migrate"], cwd=work, env=env)

    with sqlite3.connect(data_dir / "computer_use.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        (version,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {"sessions", "messages", "images", "events", "alembic_version"} <= tables
    heads = sorted(p.name for p in (REPO / "src/computer_use/migrations/versions").glob("2*.py"))
    assert heads[-1].split("_")[3] == version  # the newest revision is applied


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout.strip()
