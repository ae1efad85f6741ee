"""Serving the system's noVNC client, found at run time rather than vendored.

noVNC comes from the OS package (Debian `novnc`, 1.3.0 in bookworm). It is looked up on each
request until found, so installing it does not need a restart, and its absence is a clear 503
instead of a startup failure.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.staticfiles import StaticFiles
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

NOVNC_CANDIDATES = (
    Path("/usr/share/novnc"),  # Debian, Ubuntu, Fedora
    Path("/usr/share/webapps/novnc"),  # Arch
    Path("/usr/local/share/novnc"),
)


def find_novnc_dir(candidates: tuple[Path, ...] = NOVNC_CANDIDATES) -> Path | None:
    for directory in candidates:
        if (directory / "core" / "rfb.js").is_file():
            return directory
    return None


class NoVncFiles:
    """ASGI app: noVNC's static files, or 503 while noVNC is not installed."""

    def __init__(self, candidates: tuple[Path, ...] = NOVNC_CANDIDATES) -> None:
        self._candidates = candidates
        self._files: StaticFiles | None = None

    def directory(self) -> Path | None:
        return find_novnc_dir(self._candidates)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._files is None:
            directory = self.directory()
            if directory is None:
                response = PlainTextResponse(
                    "noVNC is not installed on this server; install the 'novnc' package.",
                    status_code=503,
                )
                await response(scope, receive, send)
                return
            self._files = StaticFiles(directory=directory)

        async def send_shareable(message: Message) -> None:
            # Public library files, no credentials: the MCP live desktop app imports them as
            # ES modules from its own (sandboxed, foreign) origin, which needs CORS.
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", b"*"),
                ]
            await send(message)

        await self._files(scope, receive, send_shareable)
