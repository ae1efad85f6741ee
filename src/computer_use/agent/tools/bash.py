"""The bash tool: one long-lived shell per session, kept across messages.

Each command goes to the shell's stdin followed by a line that prints a unique marker and the
exit status; output is read up to that marker. stderr is merged into stdout (as in a terminal),
commands read stdin from /dev/null (so they cannot eat the marker line), and a command that
outlives the timeout takes the shell down with it: the shell is restarted and the model told.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Mapping
from typing import Any

from computer_use.agent.tools.base import ToolError, ToolResult
from computer_use.agent.versions import ToolVersions
from computer_use.desktop_port import DesktopPort

SHELL = ("/bin/bash", "--noprofile", "--norc")
SHELL_ENV = {"TERM": "dumb", "PAGER": "cat", "GIT_PAGER": "cat", "SYSTEMD_PAGER": ""}
READ_CHUNK = 65536


class _ShellExited(Exception):
    def __init__(self, output: bytes) -> None:
        super().__init__("the shell exited")
        self.output = output


def _truncate(data: bytes, limit: int, dropped: int) -> str:
    text = data.decode(errors="replace")
    if len(text) <= limit and not dropped:
        return text
    half = limit // 2
    omitted = dropped + max(0, len(text) - 2 * half)
    return (
        f"{text[:half]}\n\n[... {omitted} characters of output truncated; redirect to a file "
        f"and read parts of it with head/tail/grep if you need them ...]\n\n{text[-half:]}"
    )


class BashSession:
    """A persistent bash process started through the desktop as the session's user."""

    def __init__(
        self,
        desktop: DesktopPort,
        *,
        timeout: float = 120.0,
        output_limit: int = 16 * 1024,
        start_timeout: float = 10.0,
    ) -> None:
        self._desktop = desktop
        self.timeout = timeout
        self._limit = output_limit
        self._start_timeout = start_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def run(self, command: str) -> ToolResult:
        async with self._lock:
            try:
                if not self.running:
                    await self._start()
                return await self._run(command)
            except BaseException:
                # Cancelled or failed mid-command: the shell's state is unknown, start afresh.
                self._kill()
                raise

    async def restart(self) -> None:
        async with self._lock:
            self._kill()
            await self._start()

    async def aclose(self) -> None:
        self._kill()

    async def _start(self) -> None:
        self._proc = await self._desktop.spawn(SHELL, env=SHELL_ENV)
        try:
            async with asyncio.timeout(self._start_timeout):
                await self._exchange('exec 2>&1; cd "$HOME" 2>/dev/null; true')
        except (TimeoutError, _ShellExited) as exc:
            self._kill()
            raise ToolError(f"could not start the bash shell: {exc!s}") from exc

    async def _run(self, command: str) -> ToolResult:
        try:
            async with asyncio.timeout(self.timeout):
                output, status, dropped = await self._exchange(command)
        except TimeoutError:
            self._kill()
            return ToolResult(
                error=(
                    f"The command timed out after {self.timeout:g} s and was stopped; the shell "
                    "was restarted (working directory, variables and background jobs are reset). "
                    "Run long commands in the background: `cmd > /tmp/cmd.log 2>&1 &`."
                )
            )
        except _ShellExited as exc:
            self._kill()
            text = _truncate(exc.output, self._limit, 0)
            return ToolResult(
                error=f"{text}\nThe shell exited; a new one starts with the next command.".lstrip()
            )
        # Output usually ends with a newline; the model reads it better without.
        text = _truncate(output, self._limit, dropped).removesuffix("\n")
        if status != 0:
            text = f"{text}\n[exit status {status}]" if text else f"[exit status {status}]"
        return ToolResult(output=text or "(no output)")

    async def _exchange(self, command: str) -> tuple[bytes, int, int]:
        """Send one command; return (output, exit status, bytes dropped from the middle)."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        marker = f"__CU_DONE_{uuid.uuid4().hex}__".encode()
        script = f"{{\n{command}\n}} </dev/null\nprintf '\\n%s%s\\n' {marker.decode()} \"$?\"\n"
        try:
            proc.stdin.write(script.encode())
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _ShellExited(b"") from exc
        buf = bytearray()
        searched = dropped = 0
        while True:
            chunk = await proc.stdout.read(READ_CHUNK)
            if not chunk:
                raise _ShellExited(bytes(buf))
            buf += chunk
            index = buf.find(marker, max(0, searched - len(marker)))
            if index >= 0:
                end = buf.find(b"\n", index)
                if end >= 0:
                    status = int(buf[index + len(marker) : end] or b"0")
                    output = bytes(buf[:index])
                    # The marker line starts with a newline of ours: drop it.
                    return output[:-1] if output.endswith(b"\n") else output, status, dropped
                searched = index
                continue
            searched = len(buf)
            if len(buf) > 4 * self._limit:
                # Keep memory bounded on huge outputs: only the head and tail are shown anyway.
                head, tail = self._limit // 2, self._limit // 2 + len(marker)
                dropped += len(buf) - head - tail
                del buf[head : len(buf) - tail]
                searched = len(buf)

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        try:
            # The shell leads its own process group: take its children down with it.
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        # asyncio's child watcher reaps it; nothing to await.


class BashTool:
    name = "bash"

    def __init__(self, session: BashSession) -> None:
        self.session = session

    def definition(self, versions: ToolVersions) -> dict[str, Any]:
        return {"type": versions.bash, "name": self.name}

    async def __call__(self, params: Mapping[str, Any]) -> ToolResult:
        if params.get("restart"):
            await self.session.restart()
            return ToolResult(output="The bash shell was restarted.")
        command = params.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolError("command is required (a non-empty string), or restart: true")
        return await self.session.run(command)
