"""Agent runs of sessions: one at a time per session, persisted and streamed as they happen.

The loop (agent.loop) knows nothing of the database or HTTP; this service gives it hooks that
store messages and screenshots and publish events, and owns each session's tools (the bash
shell persists across messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from computer_use import errors
from computer_use.agent import history, providers
from computer_use.agent.budget import Budget, BudgetMeter, Totals
from computer_use.agent.loop import RunResult, run_agent
from computer_use.agent.people import PersonControls
from computer_use.agent.providers import ModelClient
from computer_use.agent.run_config import RunConfig
from computer_use.agent.tools import SessionTools
from computer_use.config import Settings
from computer_use.database import transaction
from computer_use.sessions.models import Image, Message, Session, SessionStatus
from computer_use.sessions.records import image_url, now
from computer_use.sessions.service import SessionService

logger = logging.getLogger(__name__)


class _Hooks:
    """RunHooks on the database and the event bus, for one session."""

    def __init__(self, runner: AgentRunner, session_id: str) -> None:
        self._runner = runner
        self._session_id = session_id

    async def emit(self, type: str, data: Any) -> None:
        totals = data.get("totals") if type in ("usage", "message_complete") else None
        if isinstance(totals, dict):  # kept with the session before anyone hears of it
            await self._runner.save_spent(self._session_id, totals["session"])
        if type == "message_complete":
            # The session is ready again before anyone hears the run is over, so a client may
            # send its next message (or re-read the session) the moment it sees this event.
            await self._runner.mark_active(self._session_id, first=(type, dict(data)))
            return
        await self._runner.bus.publish(self._session_id, type, dict(data))
        if type == "tool_result":  # agent work counts as activity for the TTL
            await self._runner.sessions.touch(session_id=self._session_id)

    async def save_image(self, png: bytes) -> str:
        return await self._runner.save_image(self._session_id, png)

    def image_url(self, image_id: str) -> str:
        return image_url(self._session_id, image_id)

    async def append_message(self, message: dict[str, Any]) -> None:
        usage = message.get("usage")
        await self._runner.sessions.add_message(
            session_id=self._session_id,
            role=message["role"],
            content=message["content"],
            usage=usage if isinstance(usage, dict) else None,
        )


@dataclass
class _Run:
    task: asyncio.Task[RunResult | None]
    cancel: asyncio.Event
    meter: BudgetMeter
    done: asyncio.Event = field(default_factory=asyncio.Event)
    result: RunResult | None = None


class AgentRunner:
    def __init__(
        self,
        *,
        settings: Settings,
        sessions: SessionService,
        base_url: str | None = None,
        max_retries: int = 2,
    ) -> None:
        """Uses the session service's database and bus; listens to its `closing`."""
        self.settings = settings
        self.sessions = sessions
        self.bus = sessions.bus
        self._sessionmaker = self.sessionmaker = sessions.sessionmaker
        self._base_url = base_url
        self._max_retries = max_retries
        self._runs: dict[str, _Run] = {}
        self._tools: dict[str, SessionTools] = {}
        self.people = PersonControls(self)  # approvals, pause / hand back, questions
        # A session's run and tools stop before its desktop goes.
        sessions.closing.listen(self.forget)

    # --- images -------------------------------------------------------------------------

    async def save_image(self, session_id: str, png: bytes) -> str:
        image = Image(
            id=str(uuid.uuid4()),
            session_id=session_id,
            media_type="image/png",
            data=png,
            created_at=now(),
        )
        async with transaction(self._sessionmaker) as db:
            db.add(image)
        return image.id

    async def load_image(self, session_id: str, image_id: str) -> bytes:
        async with self._sessionmaker() as db:
            data = await db.scalar(
                select(Image.data).where(Image.id == image_id, Image.session_id == session_id)
            )
        if data is None:
            raise errors.NotFound(f"Image {image_id} not found in session {session_id}.")
        return data

    # --- runs ---------------------------------------------------------------------------

    def is_running(self, session_id: str) -> bool:
        return session_id in self._runs

    async def live_fields(self, sessions: Sequence[Session]) -> list[dict[str, Any]]:
        """For each session, what only the process holding its desktop and run knows: the
        `display`, `browser`, `recording`, `waiting` and `pending_approval_id` of its JSON."""
        return [self.live_fields_here(session.id) for session in sessions]

    def live_fields_here(self, session_id: str) -> dict[str, Any]:
        desktop = self.sessions.desktop(session_id)
        return {
            "display": desktop.display if desktop is not None else None,
            "browser": desktop.browser_state if desktop is not None else None,
            "recording": self.sessions.recordings.exists(session_id),
            **self.people.waits(session_id),
        }

    def check_length(self, content: str) -> None:
        """MessageTooLong past MAX_MESSAGE_CHARS."""
        limit = self.settings.max_message_chars
        if len(content) > limit:
            raise errors.MessageTooLong(len(content), limit)

    def _api_key(self, api_key: str | None) -> str | None:
        server_key = self.settings.anthropic_api_key
        return api_key or (server_key.get_secret_value() if server_key else None)

    def _check_provider(self, key: str | None) -> None:
        try:
            providers.check_settings(self.settings, api_key=key)
        except providers.MissingApiKeyError as exc:
            raise errors.MissingApiKey(str(exc)) from None
        except providers.ProviderConfigError as exc:
            raise errors.ProviderMisconfigured(str(exc)) from None

    def _client_for(self, key: str | None) -> ModelClient:
        try:
            return providers.client_for(
                self.settings, api_key=key, base_url=self._base_url, max_retries=self._max_retries
            )
        except providers.ProviderConfigError as exc:
            raise errors.ProviderMisconfigured(str(exc)) from None

    async def save_spent(self, session_id: str, spent: dict[str, Any]) -> None:
        async with transaction(self._sessionmaker) as db:
            await db.execute(update(Session).where(Session.id == session_id).values(spent=spent))

    async def update(
        self,
        *,
        session_id: str,
        owner: str | None,
        approval: str | list[str] | None = None,
        **changes: Any,
    ) -> Session:
        """PATCH: the session's fields (`budget`) and its approval policy, stored together
        (SessionRecords.update: nothing is written for a session another process holds); a
        run in progress follows both from its next step."""
        session = await self.sessions.update(
            session_id=session_id, owner=owner, approval=approval, **changes
        )
        self.follow(session)
        return session

    def follow(self, session: Session) -> None:
        """A run going on here follows the session's budget and approval policy as stored,
        from its next step."""
        run = self._runs.get(session.id)
        if run is not None:
            run.meter.session_budget = Budget.from_dict(session.budget)
        self.people.follow_policy(session.id, session.approval or "auto")

    async def start(
        self,
        *,
        session_id: str,
        content: str,
        api_key: str | None,
        owner: str | None = None,
        budget: dict[str, Any] | None = None,
    ) -> Session:
        """Starts working on `content`, within `budget` (this run's caps) and the session's
        budget; returns at once, with the session as it was just before the run. The rules
        of a new message, for REST and MCP alike: MessageTooLong,
        NotFound (unknown, or another `owner`'s), a 422 for a budget the model cannot be held
        to, SessionExpired, SessionBusy, MissingApiKey or ProviderMisconfigured,
        ServiceUnavailable (DesktopNotRunning, or the previous run still shutting down). The
        model client is made only once every check has passed."""
        self.check_length(content)
        key = self._api_key(api_key)
        async with self.sessions.lock(session_id):
            session = await self.sessions.get(session_id=session_id, owner=owner)
            run_budget = self.sessions.check_budget(session.model, budget)  # 422 if unusable
            self.sessions.check_held_here(session)
            self.sessions.check_not_expired(session)
            if session.processing:
                raise errors.SessionBusy()
            self._check_provider(key)
            finishing = self._runs.get(session_id)
            if finishing is not None:  # past message_complete, releasing its client
                try:
                    async with asyncio.timeout(10):
                        await finishing.done.wait()
                except TimeoutError:  # a busy host: a clear 503, never a 500
                    raise errors.ServiceUnavailable(
                        "The previous run is still shutting down; try again in a moment."
                    ) from None
            desktop = self.sessions.require_desktop(session)
            # Firefox starts on first use (desktops/browser.py), alongside the model call;
            # the first screenshot waits for its window.
            desktop.request_browser()
            tools = self._tools.get(session_id)
            if tools is None:
                tools = self._tools[session_id] = SessionTools(desktop)
            stored, prompt = await self.people.prompt_for(
                session_id, await self._stored_history(session_id), content
            )
            controls = self.people.for_run(session, tools)
            client = self._client_for(key)
            try:
                await self.sessions.transition(session_id, SessionStatus.PROCESSING)
                await self.sessions.touch(session_id=session_id)
            except BaseException:
                await client.close()
                raise
            cancel = asyncio.Event()
            config = RunConfig(
                model=session.model,
                provider=self.settings.api_provider,
                max_steps=self.settings.agent_max_steps,
                stuck_repeats=self.settings.stuck_repeats,
                stuck_steps=self.settings.stuck_steps,
                effort=self.settings.agent_effort,
            )
            meter = BudgetMeter(
                model=session.model,
                session_budget=Budget.from_dict(session.budget),
                run_budget=Budget.from_dict(run_budget),
                session_spent=Totals.from_dict(session.spent),
            )
            # The run's inputs but the history, whose images _run loads in the task.
            agent = functools.partial(
                run_agent,
                client=client,
                tools=tools,
                hooks=_Hooks(self, session_id),
                config=config,
                prompt=prompt,
                cancel=cancel,
                controls=controls,
                meter=meter,
            )
            task = asyncio.create_task(
                self._run(session_id, client, config, stored, agent),
                name=f"agent-run-{session_id}",
            )
            self._runs[session_id] = _Run(task=task, cancel=cancel, meter=meter)
        return session

    async def _stored_history(self, session_id: str) -> list[dict[str, Any]]:
        async with self._sessionmaker() as db:
            rows = await db.scalars(
                select(Message).where(Message.session_id == session_id).order_by(Message.id)
            )
            return [{"role": m.role, "content": m.content} for m in rows]

    async def _run(
        self,
        session_id: str,
        client: ModelClient,
        config: RunConfig,
        stored: list[dict[str, Any]],
        agent: Callable[..., Awaitable[RunResult]],
    ) -> RunResult | None:
        run = self._runs.get(session_id)
        result: RunResult | None = None
        try:

            async def load(image_id: str) -> bytes:
                return await self.load_image(session_id, image_id)

            api_history = await history.to_api(
                stored, load, keep_images=config.images_to_keep, chunk=config.image_chunk
            )
            result = await agent(history=api_history)
            return result
        except Exception:
            logger.exception("agent run of session %s failed", session_id)
            with contextlib.suppress(Exception):  # the session may be gone by now
                await self.sessions.publish_error(
                    session_id,
                    "internal_error",
                    "The agent run failed unexpectedly; see the server log.",
                )
                # Through the same hook as a normal end: active first, then the news.
                await _Hooks(self, session_id).emit(
                    "message_complete",
                    {"stop_reason": "error", "steps": 0, "usage": None, "detail": "internal error"},
                )
            return None
        finally:
            await client.close()
            self._runs.pop(session_id, None)
            await self._finish(session_id)
            if run is not None:
                run.result = result
                run.done.set()

    async def mark_active(
        self, session_id: str, *, first: tuple[str, dict[str, Any]] | None = None
    ) -> None:
        """processing -> active, announced after `first` (nothing when the session is gone or
        was not processing)."""
        if await self.sessions.transition(
            session_id, SessionStatus.ACTIVE, only_from=SessionStatus.PROCESSING, first=first
        ):
            await self.sessions.touch(session_id=session_id)

    async def _finish(self, session_id: str) -> None:
        # Normally done at message_complete already; this covers a run that died without one.
        await self.mark_active(session_id)

    async def cancel(self, *, session_id: str) -> bool:
        run = self._runs.get(session_id)
        if run is None:
            return False
        run.cancel.set()
        await self.sessions.touch(session_id=session_id)
        return True

    async def wait(self, *, session_id: str) -> RunResult | None:
        """Waits for the session's current run (if any) to end and returns its result."""
        run = self._runs.get(session_id)
        if run is None:
            return None
        await run.done.wait()
        return run.result

    async def forget(self, *, session_id: str) -> None:
        """The session is going away: stop its run and close its tools."""
        run = self._runs.get(session_id)
        if run is not None:
            run.cancel.set()
            run.task.cancel()
            await asyncio.gather(run.task, return_exceptions=True)
        self.people.forget(session_id)
        tools = self._tools.pop(session_id, None)
        if tools is not None:
            await tools.aclose()

    async def shutdown(self) -> None:
        for session_id in list(self._runs) + list(self._tools):
            await self.forget(session_id=session_id)
