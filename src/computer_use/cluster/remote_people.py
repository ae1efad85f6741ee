"""The person's controls on an API replica with RAY_ADDRESS: the run they act on is in the
session's actor, so pause / take control, resume and the answer to an approval are carried
out there (by the same PersonControls, with the same rules and errors). A session without an
actor (expired, its host lost) gets the one-process answers: a pause of an expired session
is refused, an approval no run waits for is 404/409. (A new approval policy is stored by the
replica and followed by the actor's run: RayAgentRunner.update.)
"""

from __future__ import annotations

from typing import Any, cast

from computer_use.agent.approvals_gate import Decision
from computer_use.agent.controls import Holder
from computer_use.agent.people import PersonControls
from computer_use.cluster.calls import call
from computer_use.cluster.naming import find_session_actor

_NO_ACTOR = object()


class RayPersonControls(PersonControls):
    async def pause(self, session_id: str, by: Holder, *, owner: str | None) -> dict[str, Any]:
        await self._runner.sessions.get(session_id=session_id, owner=owner)
        state = await self._on_host(session_id, "pause", by, owner=owner)
        if state is _NO_ACTOR:
            return await super().pause(session_id, by, owner=owner)
        return dict(state)

    async def resume(self, session_id: str, *, owner: str | None) -> dict[str, Any]:
        await self._runner.sessions.get(session_id=session_id, owner=owner)
        state = await self._on_host(session_id, "resume", owner=owner)
        if state is _NO_ACTOR:
            return await super().resume(session_id, owner=owner)
        return dict(state)

    async def answer(
        self,
        session_id: str,
        approval_id: str,
        decision: Decision,
        *,
        remember: bool,
        owner: str | None,
    ) -> None:
        await self._runner.sessions.get(session_id=session_id, owner=owner)
        done = await self._on_host(
            session_id, "answer", approval_id, decision, remember=remember, owner=owner
        )
        if done is _NO_ACTOR:
            await super().answer(session_id, approval_id, decision, remember=remember, owner=owner)

    async def pending_approval(self, session_id: str) -> str | None:
        actor = find_session_actor(session_id)
        if actor is None:
            return None
        fields = await call(actor.live_fields.remote())
        return cast(str | None, fields["pending_approval_id"])

    async def interrupt_pending(self) -> None:
        """Nothing: the runs, and the approvals they wait for, live in the actors."""

    @staticmethod
    async def _on_host(session_id: str, action: str, *args: Any, **kwargs: Any) -> Any:
        actor = find_session_actor(session_id)
        if actor is None:
            return _NO_ACTOR
        return await call(actor.person.remote(action, *args, **kwargs))
