"""How the VNC routes find a session's x11vnc socket and report activity, without knowing
sessions.

x11vnc listens on a unix socket in the session's 0700 runtime directory, never on TCP, so only
the service reaches it; it runs while someone watches (desktops/viewing.py), so connecting
counts a viewer and may start it. The app puts a `VncTargets` on `app.state.vnc_targets`.
`SessionVncTargets` adapts anything shaped like `SessionService` (a `desktop(id)` with
`open_vnc()`/`close_vnc()` and `request_browser()`, and `touch(session_id=...)`), so this
package imports neither sessions nor desktops.
"""

from __future__ import annotations

import asyncio
from asyncio import StreamReader, StreamWriter
from pathlib import Path
from typing import Any, Protocol, cast

from computer_use import appstate
from computer_use.vnc.proxy import READ_CHUNK


class VncTargets(Protocol):
    async def available(self, session_id: str) -> bool:
        """Whether the session has a running desktop to view."""

    async def connect(self, session_id: str) -> tuple[StreamReader, StreamWriter] | None:
        """A byte stream to the session's x11vnc (RFB from its first byte), or None if it has
        no running desktop; OSError or TimeoutError when it cannot be reached. A stream
        returned is a viewer until `disconnected()`, called once for it."""

    def disconnected(self, session_id: str) -> None:
        """The stream of a connect() is closed: one viewer fewer."""

    async def touch(self, session_id: str) -> None:
        """Records user activity on the session (VNC input counts towards its TTL)."""

    def viewer_opened(self, session_id: str) -> None:
        """A viewer connected: someone is about to watch or use the desktop."""


class UnixSocketTargets:
    """VncTargets' `available`, `connect` and `disconnected` for an x11vnc on a unix socket
    of this machine, given `vnc_socket` (None: no running desktop) and, for an x11vnc
    started on demand, `open_socket`/`close_socket`."""

    def vnc_socket(self, session_id: str) -> Path | None:
        raise NotImplementedError

    async def open_socket(self, session_id: str) -> Path | None:
        """A viewer comes: the socket once x11vnc listens on it."""
        return self.vnc_socket(session_id)

    def close_socket(self, session_id: str) -> None:
        """The viewer of an open_socket() that returned a path has gone."""

    async def available(self, session_id: str) -> bool:
        return self.vnc_socket(session_id) is not None

    async def connect(self, session_id: str) -> tuple[StreamReader, StreamWriter] | None:
        path = await self.open_socket(session_id)
        if path is None:
            return None
        try:
            return await asyncio.open_unix_connection(str(path), limit=READ_CHUNK)
        except BaseException:
            self.close_socket(session_id)
            raise

    def disconnected(self, session_id: str) -> None:
        self.close_socket(session_id)


class _Viewable(Protocol):
    @property
    def vnc_socket(self) -> Path: ...

    async def open_vnc(self) -> Path: ...

    def close_vnc(self) -> None: ...

    def request_browser(self) -> bool: ...


class _SessionServiceLike(Protocol):
    def desktop(self, session_id: str) -> _Viewable | None: ...

    async def touch(self, *, session_id: str) -> None: ...


class SessionVncTargets(UnixSocketTargets):
    def __init__(self, sessions: _SessionServiceLike) -> None:
        self._sessions = sessions
        # session -> its desktop, for each viewer: the one that counted it is the one told
        # it left, even if the session got another desktop since
        self._viewing: dict[str, list[_Viewable]] = {}

    def vnc_socket(self, session_id: str) -> Path | None:
        desktop = self._sessions.desktop(session_id)
        return desktop.vnc_socket if desktop is not None else None

    async def open_socket(self, session_id: str) -> Path | None:
        desktop = self._sessions.desktop(session_id)
        if desktop is None:
            return None
        try:
            path = await desktop.open_vnc()
        except OSError:
            raise
        except Exception as exc:  # the desktop's own errors: this package does not know them
            raise ConnectionError(f"x11vnc did not start: {exc}") from exc
        self._viewing.setdefault(session_id, []).append(desktop)
        return path

    def close_socket(self, session_id: str) -> None:
        viewing = self._viewing.get(session_id)
        if viewing:
            viewing.pop().close_vnc()
            if not viewing:
                del self._viewing[session_id]

    async def touch(self, session_id: str) -> None:
        await self._sessions.touch(session_id=session_id)

    def viewer_opened(self, session_id: str) -> None:
        # Start the browser (desktops/browser.py) before the first message: the console opens
        # the viewer when a session is created or selected, so Firefox is usually up by the
        # time the person has typed, and the agent's first screenshot does not wait for it.
        desktop = self._sessions.desktop(session_id)
        if desktop is not None:
            desktop.request_browser()


def vnc_targets_of(app: Any) -> VncTargets | None:
    """The app's VNC targets (the lifespan puts them on app.state.vnc_targets)."""
    # A Protocol: isinstance cannot check it, so any object is taken as one.
    return cast("VncTargets | None", appstate.read(app, "vnc_targets", object))
