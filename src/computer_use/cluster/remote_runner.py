"""The agent runner of an API replica on a Ray cluster (RAY_ADDRESS): the runs happen in the
session actors, so the replica hands them the message (with the API key it resolved), cancel,
a new budget or approval policy, and asks them what only they know of their session
(`live_fields`); the person's controls go there too (remote_people.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from computer_use import errors
from computer_use.agent.service import AgentRunner
from computer_use.cluster.calls import call
from computer_use.cluster.naming import actor_of, find_session_actor
from computer_use.cluster.remote_people import RayPersonControls
from computer_use.cluster.remote_recordings import recording_state
from computer_use.sessions.models import Session, SessionStatus

LIVE_TIMEOUT = 5.0  # a session's JSON waits this long at most for its actor's fields


class RayAgentRunner(AgentRunner):
    """Runs happen in the session actors; the replica hands over the message, cancel and the
    person's controls."""

    def __init__(self, **parts: Any) -> None:
        super().__init__(**parts)
        self.people = RayPersonControls(self)

    async def start(
        self,
        *,
        session_id: str,
        content: str,
        api_key: str | None,
        owner: str | None = None,
        budget: dict[str, Any] | None = None,
    ) -> Session:
        self.check_length(content)
        key = self._api_key(api_key)
        session = await self.sessions.get(session_id=session_id, owner=owner)
        self.sessions.check_not_expired(session)
        self._check_provider(key)
        await call(actor_of(session_id).run.remote(content, key, owner, budget))
        return session

    async def update(
        self,
        *,
        session_id: str,
        owner: str | None,
        approval: str | list[str] | None = None,
        **changes: Any,
    ) -> Session:
        """PATCH: stored here, followed by the run in the session's actor (if it has one)."""
        session = await self.sessions.update(
            session_id=session_id, owner=owner, approval=approval, **changes
        )
        actor = find_session_actor(session_id)
        if actor is not None:  # else nothing runs
            await call(actor.follow.remote())
        return session

    async def cancel(self, *, session_id: str) -> bool:
        return cast(bool, await call(actor_of(session_id).cancel.remote()))

    async def live_fields(self, sessions: Sequence[Session]) -> list[dict[str, Any]]:
        """Asked of the sessions' actors at once; a session without a running actor has
        none of them (as one process answers for a session without its desktop)."""
        return list(await asyncio.gather(*(self._live_fields(s) for s in sessions)))

    async def _live_fields(self, session: Session) -> dict[str, Any]:
        actor = find_session_actor(session.id) if self.sessions.viewable(session) else None
        if actor is None:
            return {**self.live_fields_here(session.id), "recording": await _kept(session)}
        try:
            return cast(
                dict[str, Any], await call(actor.live_fields.remote(), timeout=LIVE_TIMEOUT)
            )
        except errors.ServiceUnavailable:  # its host is slow or lost: the fields are unknown
            return self.live_fields_here(session.id)


async def _kept(session: Session) -> bool:
    """Whether an expired session's recording is kept on its host (kept_recordings.py)."""
    if session.status != SessionStatus.EXPIRED or session.host is None:
        return False
    try:
        await asyncio.wait_for(recording_state(session.id, session.host), LIVE_TIMEOUT)
    except (errors.NotFound, errors.ServiceUnavailable, TimeoutError):
        return False  # none, or its host cannot be reached now
    return True
