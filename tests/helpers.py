"""Test helpers: a real server process, and waiting on conditions with a deadline."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import httpx

from tests import slots

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """Polls `condition` until it returns something truthy, or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:  # the condition may fail until the thing is up
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what or condition}: {last_error}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
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

    def start(self, timeout: float = 60.0) -> ServerProcess:
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
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            return httpx.get(f"{self.base_url}/api/v1/health", timeout=2).status_code == 200

        wait_for(healthy, timeout=timeout, interval=0.1, what="server health")
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
