"""API replicas on the package's Ray cluster (RAY_ADDRESS, the package's PostgreSQL database,
EVENT_BUS=postgres, one SECRET_KEY), for the test modules that run them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import slots
from tests.cluster.conftest import ClusterSetup
from tests.conftest import server_env
from tests.helpers import ServerProcess
from tests.streaming.test_replicas import SECRET


def replica(data_dir: Path, setup: ClusterSetup, **extra: str) -> ServerProcess:
    """A replica (not started) on the cluster; `extra` adds to or overrides the test
    server's settings."""
    env = server_env(
        data_dir,
        DATABASE_URL=setup.database_url,
        EVENT_BUS="postgres",
        SECRET_KEY=SECRET,
        RAY_ADDRESS=setup.cluster.address,
        **setup.cluster.auth_env,  # RAY_AUTH_MODE=token and the cluster's token
        # Their own ranges, never used: with RAY_ADDRESS a replica takes no desktop lock.
        DESKTOP_DISPLAY_BASE=str(slots.display(1920)),
        DESKTOP_USER_PREFIX=slots.prefix("cu-rx"),
    )
    return ServerProcess({**env, **extra}, data_dir / "server.log")


@contextlib.contextmanager
def two_replicas(
    setup: ClusterSetup, tmp_path_factory: pytest.TempPathFactory, **extra: str
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Replicas A and B, started at once (on the same prefix and range), stopped at the end."""
    a, b = (replica(tmp_path_factory.mktemp(f"ray-replica-{n}"), setup, **extra) for n in "ab")
    try:
        with ThreadPoolExecutor(2) as starting:
            for started in [starting.submit(a.start), starting.submit(b.start)]:
                started.result()
        yield a, b
    finally:
        a.stop()
        b.stop()


async def create(http: httpx.AsyncClient, title: str) -> dict[str, Any]:
    """POST /sessions: 201 and `active`, or the test fails saying what came back."""
    created = await http.post("/api/v1/sessions", json={"title": title})
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    assert body["status"] == "active"
    return body
