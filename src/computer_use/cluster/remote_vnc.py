"""The VNC routes' targets on an API replica with RAY_ADDRESS: a session's x11vnc is on its
desktop host, reached through the relay its actor runs (vnc_relay.py)."""

from __future__ import annotations

import logging
from asyncio import StreamReader, StreamWriter

from computer_use.cluster.calls import call
from computer_use.cluster.naming import find_session_actor
from computer_use.cluster.vnc_relay import open_relay
from computer_use.sessions.service import SessionService

logger = logging.getLogger(__name__)


class RayVncTargets:
    def __init__(self, sessions: SessionService) -> None:
        self._sessions = sessions

    async def available(self, session_id: str) -> bool:
        return find_session_actor(session_id) is not None

    async def connect(self, session_id: str) -> tuple[StreamReader, StreamWriter] | None:
        actor = find_session_actor(session_id)
        if actor is None:
            return None
        address, port, secret = await call(actor.vnc_endpoint.remote())
        return await open_relay(address, port, secret)

    def disconnected(self, session_id: str) -> None:
        """Nothing to do here: the relay on the desktop's host counts the viewer."""

    async def touch(self, session_id: str) -> None:
        await self._sessions.touch(session_id=session_id)

    def viewer_opened(self, session_id: str) -> None:
        actor = find_session_actor(session_id)
        if actor is not None:
            actor.request_browser.remote()  # not awaited: the viewer does not wait for Firefox
