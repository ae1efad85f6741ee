"""Asking a person before an action runs: one gate per session, its approvals in the database.

    gate.policy = parse_policy("ask")
    await gate.check(GatedCall("type", "type", {"text": "hi"}, ...))  # waits for a person
    await gate.answer(approval_id, "approve", remember=True)           # from REST or MCP

`check` stores a pending approval, publishes `approval_required` (with a screenshot of the
screen as it is) and waits. Approve: the call runs. Decline: a ToolError the model reads as the
call's result; the run goes on. `remember`: the same kind runs without asking for the rest of
this run. Nobody answers within APPROVAL_TIMEOUT_SECONDS: the approval is `expired`, the call
is answered with an error and `ended` tells the loop to end the run (`approval_expired`).
DECLINES_TO_STOP declines in a row end it too (`declined`): the run cannot go on.

A pending approval does not survive a server restart: the run it belongs to is interrupted
(as every run is), and `interrupt_pending` marks it `interrupted` so an answer gets a 409.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from computer_use import errors
from computer_use.agent.events import StopReason
from computer_use.agent.tools.approvals import GatedCall, Policy
from computer_use.agent.tools.base import ToolError
from computer_use.agent.tools.describe import describe_tool_use
from computer_use.database import transaction
from computer_use.sessions.models import Approval

Decision = Literal["approve", "decline"]
Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
Snapshot = Callable[[], Awaitable[tuple[str, str] | None]]  # (image_id, image_url)
STATE_OF = {"approve": "approved", "decline": "declined"}


def now() -> datetime:
    return datetime.now(UTC)


# Declined this many times in a row within a run, the run cannot go on: it ends (`declined`).
DECLINES_TO_STOP = 3


class ApprovalStore:
    """The approvals table: the one place an approval changes state (pending -> final)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def create(self, approval: Approval) -> None:
        async with transaction(self._sessionmaker) as db:
            db.add(approval)

    async def settle(self, session_id: str, approval_id: str, state: str) -> None:
        """pending -> `state`; NotFound when there is no such approval, Conflict when it was
        already answered, expired or interrupted."""
        async with transaction(self._sessionmaker) as db:
            changed = await db.scalar(
                update(Approval)
                .where(
                    Approval.id == approval_id,
                    Approval.session_id == session_id,
                    Approval.state == "pending",
                )
                .values(state=state, resolved_at=now())
                .returning(Approval.id)
            )
        if changed is None:
            await self.refuse(session_id, approval_id)

    async def refuse(self, session_id: str, approval_id: str) -> None:
        """Why an approval cannot be answered: NotFound, or Conflict with its state."""
        async with self._sessionmaker() as db:
            current = await db.scalar(
                select(Approval.state).where(
                    Approval.id == approval_id, Approval.session_id == session_id
                )
            )
        if current is None:
            raise errors.NotFound(f"Approval {approval_id} not found in session {session_id}.")
        if current == "pending":  # stored, but no run of this process waits for it
            raise errors.Conflict("No run is waiting for this approval any more.")
        raise errors.Conflict(f"This approval was already {current}; nothing was changed.")

    async def interrupt_pending(self, session_ids: Collection[str]) -> list[tuple[str, str]]:
        """After a restart: every pending approval of those sessions is `interrupted`;
        (session_id, id) of each."""
        async with transaction(self._sessionmaker) as db:
            rows = await db.execute(
                update(Approval)
                .where(Approval.state == "pending", Approval.session_id.in_(session_ids))
                .values(state="interrupted", resolved_at=now())
                .returning(Approval.session_id, Approval.id)
            )
            return [(r[0], r[1]) for r in rows.all()]


@dataclass
class _Pending:
    kind: str
    answer: asyncio.Future[tuple[Decision, bool]]


class ApprovalGate:
    """One session's gate (agent.tools.approvals.Gate); `reset` at the start of each run."""

    def __init__(
        self,
        session_id: str,
        *,
        store: ApprovalStore,
        publish: Publish,
        snapshot: Snapshot,
        timeout: float,
    ) -> None:
        self.session_id = session_id
        self.policy: Policy = frozenset()
        self._store, self._publish, self._snapshot = store, publish, snapshot
        self._timeout = timeout
        self._remembered: set[str] = set()
        self._pending: dict[str, _Pending] = {}
        # (stop reason, detail) once the run must end: an approval expired, or too many declines
        self.ended: tuple[StopReason, str] | None = None
        self._declines = 0

    def reset(self, policy: Policy) -> None:
        self.policy, self.ended, self._declines = policy, None, 0
        self._remembered.clear()

    @property
    def pending_id(self) -> str | None:
        return next(iter(self._pending), None)

    async def check(self, call: GatedCall) -> None:
        kind, params, tool_use_id = call.kind, call.params, call.tool_use_id
        if kind not in self.policy or kind in self._remembered:
            return
        description = describe_tool_use(call.name, dict(params), call.toolset_name)
        approval = Approval(
            id=str(uuid.uuid4()),
            session_id=self.session_id,
            tool_use_id=tool_use_id,
            kind=kind,
            input=dict(params),
            description=description,
            state="pending",
            created_at=now(),
        )
        await self._store.create(approval)
        image = await self._snapshot()
        pending = _Pending(kind, asyncio.get_running_loop().create_future())
        self._pending[approval.id] = pending
        try:
            await self._publish(
                "approval_required",
                {
                    "approval_id": approval.id,
                    "tool_use_id": tool_use_id,
                    "action": kind,
                    "name": call.name,
                    "input": dict(params),
                    "description": description,
                    "image_id": image[0] if image else None,
                    "image_url": image[1] if image else None,
                    "timeout_seconds": self._timeout,
                },
            )
            decision = await self._wait(approval.id, pending)
        finally:
            self._pending.pop(approval.id, None)
            if not pending.answer.done():  # cancelled while waiting: nobody may answer it now
                pending.answer.cancel()
                await self._close(approval.id, "interrupted")
        self._declines = self._declines + 1 if decision == "decline" else 0
        if self._declines >= DECLINES_TO_STOP:
            self.ended = (
                "declined",
                f"The person declined {DECLINES_TO_STOP} actions in a row; the run was ended.",
            )
        if decision == "decline":
            raise ToolError(
                f"The person declined this action ({description}); it was not run. Do not "
                "retry it as is: choose another way, or ask the person."
            )

    async def _wait(self, approval_id: str, pending: _Pending) -> Decision:
        try:
            async with asyncio.timeout(self._timeout):
                decision, _ = await asyncio.shield(pending.answer)
                return decision
        except TimeoutError:
            pass
        pending.answer.cancel()
        await self._close(approval_id, "expired")
        self.ended = (
            "approval_expired",
            f"Nobody answered the approval of {pending.kind!r} within {self._timeout:g} s "
            "(APPROVAL_TIMEOUT_SECONDS); the run was ended.",
        )
        raise ToolError("Not run: nobody approved this action in time; the run ends here.")

    async def _close(self, approval_id: str, state: str) -> None:
        self._pending.pop(approval_id, None)
        try:
            await self._store.settle(self.session_id, approval_id, state)
        except errors.Conflict:
            return  # answered in the same instant: that answer stands
        await self._publish("approval_resolved", {"approval_id": approval_id, "decision": state})

    async def answer(self, approval_id: str, decision: Decision, *, remember: bool) -> None:
        """A person's answer (REST, MCP, console). NotFound / Conflict as the store says."""
        await self._store.settle(self.session_id, approval_id, STATE_OF[decision])
        # Not pending from here on: whoever reads approval_resolved sees pending_id agree.
        pending = self._pending.pop(approval_id, None)
        if pending is not None and remember and decision == "approve":
            self._remembered.add(pending.kind)
        await self._publish(
            "approval_resolved",
            {"approval_id": approval_id, "decision": STATE_OF[decision], "remember": remember},
        )
        if pending is not None and not pending.answer.done():
            pending.answer.set_result((decision, remember))
