"""The sampling loop: stream a reply, run the tools it asks for, repeat until it is done.

    result = await run_agent(client=client, tools=session_tools, hooks=hooks, config=config,
                             history=await history.to_api(stored, load_image, ...),
                             prompt="Search the weather in Santiago, Chile", cancel=cancel_event)

Whatever happens (done, step cap, cancel, API error) the history it leaves through
`hooks.append_message` is valid for the next request: every tool_use gets a tool_result, and
a user turn left without a reply is merged with the next one by `history.to_api`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar, cast

import anthropic
from anthropic.resources.beta.messages import AsyncMessages
from anthropic.types.beta import BetaContentBlock, BetaMessage

from computer_use.agent import context
from computer_use.agent.api_errors import error_event
from computer_use.agent.budget import BudgetMeter
from computer_use.agent.controls import NOT_RUN_PAUSED, LoopControls
from computer_use.agent.events import EventType, StopReason, Usage
from computer_use.agent.history import (
    INTERRUPTED,
    append_user,
    base64_image,
    repair,
    response_block_param,
    stored_image,
    tool_result_block,
)
from computer_use.agent.hooks import RunHooks
from computer_use.agent.providers import ModelClient
from computer_use.agent.questions import ASK_PERSON, question_event
from computer_use.agent.run_config import RunConfig, thinking_params
from computer_use.agent.stuck import StuckDetector
from computer_use.agent.tools import SessionTools, ToolResult, describe_tool_use
from computer_use.agent.versions import ToolVersions, versions_for

log = logging.getLogger(__name__)
T = TypeVar("T")
# What a computer toolset member call is answered with when an earlier one of the same turn
# failed: the model planned the batch as a sequence (the SDK's runner and the API use this text).
NOT_EXECUTED = "Not executed: an earlier computer action in this turn failed."


@dataclass
class RunResult:
    stop_reason: StopReason
    steps: int
    usage: Usage
    messages: list[dict[str, Any]] = field(default_factory=list)  # API form, after the run


class _Cancelled(Exception):
    """The run was stopped by the user; `by_task` when through task.cancel()."""

    def __init__(self, *, by_task: bool = False) -> None:
        super().__init__("cancelled")
        self.by_task = by_task


class _Stopped(Exception):
    """The run ends here with `reason` (approval_expired, question) and `detail`."""

    def __init__(self, reason: StopReason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class _Run:
    def __init__(
        self,
        client: ModelClient,
        tools: SessionTools,
        hooks: RunHooks,
        config: RunConfig,
        cancel: asyncio.Event,
        controls: LoopControls,
        meter: BudgetMeter | None = None,
    ) -> None:
        self.client, self.tools, self.hooks, self.config = client, tools, hooks, config
        self.cancel, self.controls = cancel, controls
        self.meter = meter or BudgetMeter(model=config.model)
        self.stuck = StuckDetector(
            tools.desktop.fingerprint, repeats=config.stuck_repeats, steps=config.stuck_steps
        )
        self.halt: tuple[StopReason, str] | None = None  # a budget or stuck detection ended it
        self.versions: ToolVersions = versions_for(config.model, config.provider)
        self.messages: list[dict[str, Any]] = []
        self.steps = 0

    async def emit(self, type: EventType, data: Any) -> None:
        await self.hooks.emit(type.value, data)

    async def race(self, work: Awaitable[T]) -> T:
        """`work`'s result, or _Cancelled as soon as the cancel event is set (work cancelled)."""
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(self.cancel.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if task.cancelled():
            raise _Cancelled
        return task.result()

    def request(self) -> dict[str, Any]:
        config, versions = self.config, self.versions
        scaling = self.tools.computer.scaling
        prompt = context.system_prompt(
            width=scaling.api_width,
            height=scaling.api_height,
            home=self.tools.home,
            today=config.today or date.today(),
            bash_timeout=self.tools.bash_session.timeout,
            zoom=versions.zoom,
            extra=config.system_prompt_suffix,
        )
        messages = context.prune_images(self.messages, config.images_to_keep, config.image_chunk)
        kwargs: dict[str, Any] = {
            "model": config.model,
            "max_tokens": config.max_tokens,
            "system": context.system_blocks(prompt),
            "tools": self.tools.definitions(versions),
            "messages": context.with_cache_breakpoints(messages),
        }
        if versions.beta:
            kwargs["betas"] = [versions.beta]
        kwargs.update(thinking_params(config, versions))
        return kwargs

    async def sample(self) -> BetaMessage:
        # Bedrock and Vertex reuse the first-party method on their own resource classes, which
        # the SDK's annotations do not express; the runtime object is the same API.
        messages_api = cast(AsyncMessages, self.client.beta.messages)
        async with messages_api.stream(**self.request()) as stream:
            async for event in stream:
                if event.type == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta" and delta.text:
                        await self.emit(
                            EventType.TEXT_DELTA, {"index": event.index, "text": delta.text}
                        )
                    elif delta.type == "thinking_delta" and delta.thinking:
                        await self.emit(
                            EventType.THINKING_DELTA,
                            {"index": event.index, "thinking": delta.thinking},
                        )
                elif event.type == "content_block_stop":
                    await self.emit_block(event.content_block)
            return await stream.get_final_message()

    async def emit_block(self, block: BetaContentBlock) -> None:
        if block.type == "text" and block.text:
            await self.emit(EventType.TEXT, {"text": block.text})
        elif block.type == "thinking" and block.thinking:
            await self.emit(EventType.THINKING, {"thinking": block.thinking})
        elif block.type == "tool_use":
            params = block.input if isinstance(block.input, dict) else {}
            event: dict[str, Any] = {
                "id": block.id,
                "name": block.name,
                "input": params,
                "description": describe_tool_use(block.name, params, block.toolset_name),
            }
            if block.toolset_name is not None:
                event["toolset_name"] = block.toolset_name
            await self.emit(EventType.TOOL_USE, event)

    def count_usage(self, message: BetaMessage) -> Usage:
        usage = message.usage
        step: Usage = {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens or 0,
            "cache_read_input_tokens": usage.cache_read_input_tokens or 0,
        }
        self.meter.record(step)
        return step

    def halted(self, *, before_request: bool) -> bool:
        """Whether a budget cap or stuck detection ends the run here (sets `halt`)."""
        if self.halt is None:
            if detail := self.meter.reached(before_request=before_request):
                self.halt = ("budget", detail)
            elif self.stuck.verdict is not None:
                self.halt = ("stuck", self.stuck.verdict)
        return self.halt is not None

    async def run_tools(self, calls: Sequence[dict[str, Any]], runnable: bool) -> None:
        """Answer every call, in order; after a cancel the rest are answered "interrupted", and
        after a failed computer toolset member the turn's later members "not executed"."""
        api_blocks: list[dict[str, Any]] = []
        stored_blocks: list[dict[str, Any]] = []
        cancelled: _Cancelled | None = None
        halted = paused = False
        asked: list[str] = []  # questions to the person: their reply is the tool_result
        for call in calls:
            toolset_name: str | None = call.get("toolset_name")
            if cancelled is None and self.cancel.is_set():
                cancelled = _Cancelled()
            if cancelled is not None:
                result = ToolResult(error=INTERRUPTED)
            elif self.halted(before_request=False):
                assert self.halt is not None
                result = ToolResult(error=f"Not run: {self.halt[1]}")
            elif call["name"] == ASK_PERSON and toolset_name is None and runnable:
                asked.append(str(call["input"].get("question", "")))
                await self.emit(EventType.QUESTION, question_event(call))
                continue
            elif paused or self.controls.stop():
                result = ToolResult(error=NOT_RUN_PAUSED if paused else "Not run: the run ended.")
            elif toolset_name is not None and halted:
                result = ToolResult(error=NOT_EXECUTED)
            elif not runnable:
                result = ToolResult(
                    error="Not run: the response was cut off (max_tokens) before this call was "
                    "complete."
                )
            else:
                try:
                    if await self.race(self.controls.before_action()):
                        paused, result = True, ToolResult(error=NOT_RUN_PAUSED)
                    else:
                        result = await self.race(self.stuck.watch(call, self.run_call(call)))
                except _Cancelled as exc:
                    cancelled, result = exc, ToolResult(error=INTERRUPTED)
                except asyncio.CancelledError:
                    # task.cancel(): still answer every call so the stored history stays valid.
                    cancelled, result = _Cancelled(by_task=True), ToolResult(error=INTERRUPTED)
            halted = halted or (toolset_name is not None and result.is_error)
            image_id = await self.hooks.save_image(result.image) if result.image else None
            api_image = base64_image(result.image) if result.image else None
            stored = stored_image(image_id) if image_id else None
            api_blocks.append(tool_result_block(call["id"], result, api_image, toolset_name))
            stored_blocks.append(tool_result_block(call["id"], result, stored, toolset_name))
            await self.emit(
                EventType.TOOL_RESULT,
                {
                    "tool_use_id": call["id"],
                    "is_error": result.is_error,
                    "output": result.text,
                    "image_id": image_id,
                    "image_url": self.hooks.image_url(image_id) if image_id else None,
                },
            )
        if stored_blocks:
            append_user(self.messages, api_blocks)
            await self.hooks.append_message({"role": "user", "content": stored_blocks})
        self.stuck.end_step()
        if cancelled is not None:
            raise cancelled
        if stop := self.controls.stop():
            raise _Stopped(*stop)
        if asked:
            raise _Stopped("question", "Waiting for the person's answer: " + " / ".join(asked))

    async def run_call(self, call: dict[str, Any]) -> ToolResult:
        toolset_name = call.get("toolset_name")
        if toolset_name is not None:
            return await self.tools.run_member(
                call["id"], str(toolset_name), call["name"], call["input"]
            )
        return await self.tools.run(call["name"], call["input"], self.versions, call["id"])

    async def loop(self) -> StopReason:
        while True:
            if self.cancel.is_set():
                raise _Cancelled
            if self.halted(before_request=True):  # first: it may have stopped a turn's calls
                assert self.halt is not None
                return self.halt[0]
            await self.race(self.controls.before_action())
            if note := await self.controls.handover():
                append_user(self.messages, note[0])
                await self.hooks.append_message({"role": "user", "content": note[1]})
            if self.steps >= self.config.max_steps:
                return "max_steps"
            self.steps += 1
            message = await self.race(self.sample())
            step_usage = self.count_usage(message)
            await self.emit(
                EventType.USAGE, {"totals": self.meter.totals(), "budget": self.meter.budgets()}
            )
            content = [response_block_param(b) for b in message.content]
            content = [b for b in content if not (b["type"] == "text" and not b["text"])]
            if not content:
                return "end_turn" if message.stop_reason in (None, "tool_use") else _stop(message)
            self.messages.append({"role": "assistant", "content": content})
            await self.hooks.append_message(
                # `usage` is not part of the API form: the hook stores it beside the turn.
                {"role": "assistant", "content": content, "usage": dict(step_usage)}
            )
            calls = [b for b in content if b["type"] == "tool_use"]
            if not calls:
                return _stop(message)
            await self.run_tools(calls, runnable=message.stop_reason == "tool_use")


def _stop(message: BetaMessage) -> StopReason:
    reason = message.stop_reason
    if reason in ("end_turn", "max_tokens", "refusal", "stop_sequence"):
        return reason
    return "end_turn"


async def run_agent(
    *,
    client: ModelClient,
    tools: SessionTools,
    hooks: RunHooks,
    config: RunConfig,
    history: Sequence[dict[str, Any]],
    prompt: str | Iterable[dict[str, Any]],
    cancel: asyncio.Event | None = None,
    controls: LoopControls | None = None,
    meter: BudgetMeter | None = None,
) -> RunResult:
    """Run one user message to completion. Emits events through `hooks`, ends with exactly
    one message_complete. `meter` counts spending against budgets (None: no budget). Never
    raises for API errors or cancellation via `cancel`; cancelling the task itself is honoured
    too (history is completed, then CancelledError propagates)."""
    run = _Run(
        client, tools, hooks, config, cancel or asyncio.Event(), controls or LoopControls(), meter
    )
    # Repair is a no-op on a history from history.to_api; it keeps a hand-made one valid too.
    run.messages = repair(history)
    prompt_blocks = [{"type": "text", "text": prompt}] if isinstance(prompt, str) else list(prompt)
    if prompt_blocks:  # none when the prompt was stored already (a reply to a question)
        append_user(run.messages, prompt_blocks)
        await hooks.append_message({"role": "user", "content": prompt_blocks})
    detail: str | None = None
    task_cancelled = False
    try:
        stop = await run.loop()
        if stop == "max_steps":
            detail = f"Stopped after {config.max_steps} model requests (the step limit)."
        elif run.halt is not None:
            detail = run.halt[1]
    except _Stopped as exc:
        stop, detail = exc.reason, exc.detail
    except _Cancelled as exc:
        stop, detail, task_cancelled = "cancelled", "Stopped by the user.", exc.by_task
    except asyncio.CancelledError:
        stop, detail, task_cancelled = "cancelled", "Stopped by the user.", True
    except Exception as exc:
        if not isinstance(exc, anthropic.AnthropicError):
            log.exception("agent run failed (model %s)", config.model)
        stop = "error"
        await run.emit(EventType.ERROR, error_event(exc, secret=_secret(client)))
    await run.emit(
        EventType.MESSAGE_COMPLETE,
        {
            "stop_reason": stop,
            "steps": run.steps,
            "usage": run.meter.usage(),
            "detail": detail,
            "totals": run.meter.totals(),
        },
    )
    if task_cancelled:
        raise asyncio.CancelledError
    return RunResult(stop, run.steps, run.meter.usage(), run.messages)


def _secret(client: ModelClient) -> str | None:
    key = getattr(client, "api_key", None)
    return key if isinstance(key, str) else None
