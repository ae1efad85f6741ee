"""Test helpers: a real server process, and waiting on conditions with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import httpx

from computer_use.desktops.process import live_pids_of_uid
from tests import slots

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]


class StopWaiting(Exception):
    """Raised by a condition when what it waits for can no longer happen (the server exited):
    the wait fails at once with this error instead of retrying until the timeout."""


class ServerDied(StopWaiting):
    pass


class _Deadline:
    """The one polling policy of the suite: what to retry, and what the timeout error says."""

    def __init__(self, timeout: float, what: str) -> None:
        self.timeout, self.what = timeout, what
        self.end = time.monotonic() + timeout
        self.last_error: Exception | None = None

    def open(self) -> bool:
        return time.monotonic() < self.end

    def failed(self, exc: Exception) -> None:
        if isinstance(exc, StopWaiting):
            raise exc
        self.last_error = exc  # the condition may fail until the thing is up

    def expired(self) -> TimeoutError:
        detail = f": {self.last_error!r}" if self.last_error else ""
        return TimeoutError(f"timed out after {self.timeout} s waiting for {self.what}{detail}")


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """Polls `condition` until it returns something truthy, or fails after `timeout` seconds.
    An exception from `condition` counts as "not yet", except StopWaiting, which ends the wait."""
    deadline = _Deadline(timeout, what or repr(condition))
    while deadline.open():
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:
            deadline.failed(exc)
        time.sleep(interval)  # polling interval of a condition, not a synchronisation sleep
    raise deadline.expired()


async def wait_for_async(
    condition: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """wait_for with an async `condition`, polled without blocking the event loop."""
    deadline = _Deadline(timeout, what or repr(condition))
    while deadline.open():
        try:
            result = await condition()
            if result:
                return result
        except Exception as exc:
            deadline.failed(exc)
        await asyncio.sleep(interval)
    raise deadline.expired()


def pids_named(uid: int, comm: str) -> set[int]:
    """Live processes of `uid` whose command name (/proc/PID/comm) is `comm`."""
    found = set()
    for pid in live_pids_of_uid(uid):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                found.add(pid)
        except OSError:
            continue  # exited while we looked
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """`python -m computer_use serve --migrate` in a subprocess, on an ephemeral port."""

    def __init__(
        self, env: Mapping[str, str], log_path: Path, *, argv: Sequence[str] | None = None
    ) -> None:
        """`argv`: the command to run instead of `serve --migrate`; `{port}` is replaced."""
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = slots.env({**os.environ, **env})
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        default = [sys.executable, "-m", "computer_use", "serve", "--migrate", "--port", "{port}"]
        self.argv = [arg.replace("{port}", str(self.port)) for arg in argv or default]

    def start(self, timeout: float = 120.0) -> ServerProcess:
        """Waits for /api/v1/health; fails at once (ServerDied, with its log) if the process
        exits. The timeout only covers a slow start on a busy machine."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = self.log_path.read_text(errors="replace")[-3000:]
                raise ServerDied(
                    f"the server exited with status {self.proc.returncode} while starting; "
                    f"the end of {self.log_path}:\n{log}"
                )
            return httpx.get(f"{self.base_url}/api/v1/health", timeout=2).status_code == 200

        try:
            wait_for(healthy, timeout=timeout, interval=0.1, what="server health")
        except BaseException:
            # A server that never got healthy is not left running (SIGTERM, then SIGKILL).
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.stop(timeout=10)
            raise
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)


@contextlib.contextmanager
def running_server(data_dir: Path, **env: str) -> Iterator[ServerProcess]:
    """A started server on `data_dir` with the test defaults (tests.conftest.server_env) plus
    `env`, stopped afterwards."""
    from tests.conftest import server_env

    proc = ServerProcess(server_env(data_dir, **env), data_dir / "server.log").start()
    try:
        yield proc
    finally:
        proc.stop()
