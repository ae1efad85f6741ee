"""The person in the loop, per session: approval policy, pause / take control / hand back,
answers to approvals, and replies to the agent's questions. REST and MCP call this; the runner
hands each run its session's controls.

State that must outlive the process is on the session row (`approval`, `paused_by`) and in the
approvals table; the in-memory part (a waiting approval, a held run) belongs to the run, which a
restart ends anyway (`interrupt_pending` closes what it left).
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from computer_use.agent import questions
from computer_use.agent.approvals_gate import ApprovalGate, ApprovalStore, Decision
from computer_use.agent.controls import Holder, SessionControls
from computer_use.agent.tools import SessionTools
from computer_use.agent.tools.approvals import parse_policy
from computer_use.config import Settings
from computer_use.database import transaction
from computer_use.sessions.models import Session
from computer_use.sessions.records import image_url
from computer_use.sessions.service import SessionService
from computer_use.streaming.bus import EventBus


class Runner(Protocol):
    """What the person's controls use of the AgentRunner that owns them."""

    settings: Settings
    sessions: SessionService
    bus: EventBus
    sessionmaker: async_sessionmaker[AsyncSession]

    async def save_image(self, session_id: str, png: bytes) -> str: ...


class PersonControls:
    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self.store = ApprovalStore(runner.sessionmaker)
        self._controls: dict[str, SessionControls] = {}

    def get(self, session_id: str) -> SessionControls | None:
        return self._controls.get(session_id)

    def waits(self, session_id: str) -> dict[str, Any]:
        """What the session's run waits for now, known where it runs: a resume (`waiting`),
        the answer to an approval (`pending_approval_id`)."""
        controls = self._controls.get(session_id)
        return {
            "waiting": bool(controls and controls.held),
            "pending_approval_id": controls.gate.pending_id if controls else None,
        }

    async def pending_approval(self, session_id: str) -> str | None:
        """The id of the approval the session's run waits for right now, if any."""
        return cast(str | None, self.waits(session_id)["pending_approval_id"])

    # --- for the runner ----------------------------------------------------------------

    def for_run(self, session: Session, tools: SessionTools) -> SessionControls:
        """The session's controls, ready for a new run (policy and holder as stored)."""
        controls = self._controls.get(session.id)
        if controls is None:
            controls = self._controls[session.id] = self._make(session, tools)
        controls.gate.reset(parse_policy(session.approval))
        tools.approver.gate = controls.gate
        return controls

    def follow_policy(self, session_id: str, approval: str | list[str]) -> None:
        """The session's approval policy is now `approval` (AgentRunner.update stored it): a run
        going on follows it from its next action."""
        controls = self._controls.get(session_id)
        if controls is not None:
            controls.gate.policy = parse_policy(approval)  # the schema checked it already

    def _make(self, session: Session, tools: SessionTools) -> SessionControls:
        runner, sid = self._runner, session.id

        async def publish(type: str, data: dict[str, Any]) -> None:
            await runner.bus.publish(sid, type, data)

        async def save(png: bytes) -> str:
            return await runner.save_image(sid, png)

        async def snapshot() -> tuple[str, str] | None:
            try:
                image_id = await save(await tools.computer.screenshot())
            except Exception:  # the approval is asked for all the same, without a picture
                return None
            return image_id, image_url(sid, image_id)

        gate = ApprovalGate(
            sid,
            store=self.store,
            publish=publish,
            snapshot=snapshot,
            timeout=runner.settings.approval_timeout_seconds,
        )
        holder = session.paused_by if session.paused_by in ("person", "api") else None
        return SessionControls(
            gate=gate,
            publish=publish,
            screenshot=tools.computer.screenshot,
            save_image=save,
            image_url=lambda image_id: image_url(sid, image_id),
            paused_by=holder,  # type: ignore[arg-type]
        )

    async def prompt_for(
        self, session_id: str, stored: list[dict[str, Any]], content: str
    ) -> tuple[list[dict[str, Any]], str | list[dict[str, Any]]]:
        """(history, prompt) for a new run. When the agent's last turn asked the person a
        question, the message is its answer: stored as that call's tool_result, no prompt."""
        asked = questions.pending_question(stored)
        if asked is None:
            return stored, content
        blocks = questions.answer_blocks(asked, content)
        await self._runner.sessions.add_message(
            session_id=session_id, role="user", content=list(blocks)
        )
        return [*stored, {"role": "user", "content": blocks}], []

    def forget(self, session_id: str) -> None:
        self._controls.pop(session_id, None)

    async def interrupt_pending(self) -> None:
        """At start-up: approvals the previous process left waiting can no longer be answered
        (those of the sessions held here: another replica's runs wait for theirs)."""
        held = await self._runner.sessions.get_live_ids()
        for session_id, approval_id in await self.store.interrupt_pending(held):
            await self._runner.bus.publish(
                session_id,
                "approval_resolved",
                {"approval_id": approval_id, "decision": "interrupted"},
            )

    # --- for REST and MCP --------------------------------------------------------------

    async def pause(self, session_id: str, by: Holder, *, owner: str | None) -> dict[str, Any]:
        session = await self._held_here(session_id, owner)
        self._runner.sessions.check_not_expired(session, "there is nothing to pause.")
        await self._write(session_id, paused_by=by)
        controls = self._controls.get(session_id)
        if controls is not None:
            controls.pause(by)
        await self._runner.bus.publish(session_id, "status", await self._status(session_id))
        return await self.state(session_id)

    async def resume(self, session_id: str, *, owner: str | None) -> dict[str, Any]:
        await self._held_here(session_id, owner)
        await self._write(session_id, paused_by=None)
        controls = self._controls.get(session_id)
        if controls is not None:
            controls.resume()
        await self._runner.bus.publish(session_id, "status", await self._status(session_id))
        return await self.state(session_id)

    async def answer(
        self,
        session_id: str,
        approval_id: str,
        decision: Decision,
        *,
        remember: bool,
        owner: str | None,
    ) -> None:
        await self._held_here(session_id, owner)
        controls = self._controls.get(session_id)
        if controls is None:  # nothing waits in this process: 404 or 409
            await self.store.refuse(session_id, approval_id)
        else:
            await controls.gate.answer(approval_id, decision, remember=remember)

    async def state(self, session_id: str) -> dict[str, Any]:
        session = await self._runner.sessions.get(session_id=session_id)
        return {"session_id": session_id, **self.public(session), **self.waits(session_id)}

    def public(self, session: Session) -> dict[str, Any]:
        """The session's stored fields about the person: the policy, who holds the desktop
        (what its run waits for is `waits`)."""
        holder = session.paused_by
        return {
            "approval": session.approval or "auto",
            "paused": holder is not None,
            "held_by": "person" if holder == "person" else "agent",
        }

    async def _status(self, session_id: str) -> dict[str, Any]:
        session = await self._runner.sessions.get(session_id=session_id)
        public = self.public(session)
        return {"status": session.status, "paused": public["paused"], "held_by": public["held_by"]}

    async def _held_here(self, session_id: str, owner: str | None) -> Session:
        """The caller's session (NotFound: unknown, or another `owner`'s), when this process
        holds its run: a run's controls live next to it (else Conflict naming the process
        that does, check_held_here)."""
        session = await self._runner.sessions.get(session_id=session_id, owner=owner)
        self._runner.sessions.check_held_here(session)
        return session

    async def _write(self, session_id: str, **values: Any) -> None:
        async with transaction(self._runner.sessionmaker) as db:
            await db.execute(update(Session).where(Session.id == session_id).values(**values))
