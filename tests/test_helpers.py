"""The suite's own waiting: a server that dies while starting fails its test at once, with its
log; a condition that is merely not ready yet is retried until the deadline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import server_env
from tests.helpers import ServerDied, ServerProcess, StopWaiting, wait_for, wait_for_async


def test_a_server_dying_at_start_up_fails_at_once_with_its_log(tmp_path: Path) -> None:
    env = server_env(tmp_path, SESSION_TTL_SECONDS="-5")  # refused by Settings: exit status 2
    server = ServerProcess(env, tmp_path / "server.log")
    started = time.monotonic()
    with pytest.raises(ServerDied) as failure:
        server.start(timeout=300)
    assert time.monotonic() - started < 60, "waited for the timeout instead of the exit"
    message = str(failure.value)
    assert "exited with status 2" in message
    assert "SESSION_TTL_SECONDS" in message  # the log's own explanation, in the failure


def test_a_server_not_healthy_in_time_is_stopped_not_left_running(tmp_path: Path) -> None:
    server = ServerProcess(server_env(tmp_path), tmp_path / "server.log")
    with pytest.raises(TimeoutError, match="server health"):
        server.start(timeout=0.3)  # far too short for a real start-up
    assert server.proc is not None and server.proc.poll() is not None


def test_wait_for_retries_errors_until_ready_and_names_the_last_one() -> None:
    attempts: list[int] = []

    def ready() -> int | None:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("not listening yet")
        return len(attempts)

    assert wait_for(ready, timeout=10, interval=0.01) == 3

    def never() -> None:
        raise ConnectionError("never")

    with pytest.raises(TimeoutError, match=r"the moon: ConnectionError\('never'\)"):
        wait_for(never, timeout=0.2, what="the moon")


async def test_stop_waiting_ends_the_wait_at_once() -> None:
    async def gone() -> None:
        raise StopWaiting("it can no longer happen")

    started = time.monotonic()
    with pytest.raises(StopWaiting, match="no longer"):
        await wait_for_async(gone, timeout=30)

    def exited() -> None:
        raise ServerDied("exited")

    with pytest.raises(ServerDied):
        wait_for(exited, timeout=30)
    assert time.monotonic() - started < 5
