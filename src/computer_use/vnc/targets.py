"""How the VNC routes find a session's x11vnc port and report activity, without knowing sessions.

The app puts a `VncTargets` on `app.state.vnc_targets`. `SessionVncTargets` adapts anything
shaped like `SessionService` (a `desktop(id)` with a `vnc_port`, and `touch(session_id=...)`),
so this package imports neither sessions nor desktops.
"""

from __future__ import annotations

from typing import Protocol


class VncTargets(Protocol):
    def vnc_port(self, session_id: str) -> int | None:
        """The session's x11vnc port on 127.0.0.1, or None if it has no running desktop."""

    async def touch(self, session_id: str) -> None:
        """Records user activity on the session (VNC input counts towards its TTL)."""


class _HasVncPort(Protocol):
    @property
    def vnc_port(self) -> int | None: ...


class _SessionServiceLike(Protocol):
    def desktop(self, session_id: str) -> _HasVncPort | None: ...

    async def touch(self, *, session_id: str) -> None: ...


class SessionVncTargets:
    def __init__(self, sessions: _SessionServiceLike) -> None:
        self._sessions = sessions

    def vnc_port(self, session_id: str) -> int | None:
        desktop = self._sessions.desktop(session_id)
        return desktop.vnc_port if desktop is not None else None

    async def touch(self, session_id: str) -> None:
        await self._sessions.touch(session_id=session_id)
