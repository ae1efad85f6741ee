"""execute_task, wait_for_task and cancel_task: the MCP face of agent.tasks.TaskTracker.

A task is not a call: execute_task starts it and waits a bounded time, wait_for_task waits
again, cancel_task stops it. A call that is cancelled or times out on the client only ends
that wait; the agent keeps working and its outcome stays in the session's history.
"""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ContentBlock
from pydantic import Field, ValidationError

from computer_use import errors
from computer_use.agent.tasks import NoTask, SessionClosed, TaskState, TaskTracker
from computer_use.mcp_server import content
from computer_use.mcp_server.deps import MCPContext, api_key, caller, deps
from computer_use.mcp_server.errors import invalid_arguments, tool_errors
from computer_use.mcp_server.schemas import ApprovalAsked, TaskResult, TaskStatus
from computer_use.mcp_server.tools import SessionId
from computer_use.sessions.models import Session
from computer_use.sessions.schemas import MessageCreate

TaskArg = Annotated[
    str,
    Field(
        description="What the agent should do on the desktop, in plain language, e.g. "
        "'Search the weather in Santiago, Chile and tell me the forecast'. Follow-ups in "
        "the same session see the earlier tasks and the desktop as they left it.",
        min_length=1,
    ),
]
MaxWait = Annotated[
    float | None,
    Field(
        description="Seconds to wait for the task to finish before answering with its progress "
        "(1 to 59; default: the server's MCP_TASK_WAIT_SECONDS, 40 unless configured).",
        ge=1,
        lt=60,
    ),
]
TaskOutput = Annotated[CallToolResult, TaskResult]

_DONE: dict[str, TaskStatus] = {
    "question": "waiting_for_answer",
    "end_turn": "completed",
    "stop_sequence": "completed",
    "cancelled": "cancelled",
    "error": "failed",
}


async def execute_task(ctx: MCPContext, session_id: SessionId, task: TaskArg) -> TaskOutput:
    """Start a task for the Claude computer-use agent on the session's desktop and wait for it
    a bounded time (MCP_TASK_WAIT_SECONDS, 40 s by default). Tasks often take minutes. If it
    finishes in time, the result has the agent's final answer and a screenshot; if not, the
    result has status "running", the steps so far, the last action and a screenshot: then call
    wait_for_task with the same session_id, as often as needed, until done is true. Progress
    notifications describe each action, with a heartbeat at least every 15 s. Cancelling or
    timing out this call only stops waiting: the agent keeps working (cancel_task stops it).
    One task at a time per session. Uses the Anthropic API key from the X-Anthropic-API-Key
    header of the MCP connection (else the server's own key)."""
    tracker = TaskTracker(deps(ctx).runtime)
    with tool_errors(session_id):
        try:
            MessageCreate(content=task)  # the REST API's checks of a message
        except ValidationError as exc:
            raise ToolError(invalid_arguments(exc, names={"content": "task"})) from None
        after = await tracker.start(
            session_id=session_id, task=task, api_key=api_key(ctx), owner=caller(ctx)
        )
        state = await _follow(ctx, tracker, session_id, after=after)
    return await _result(ctx, state)


async def wait_for_task(
    ctx: MCPContext, session_id: SessionId, max_wait_seconds: MaxWait = None
) -> TaskOutput:
    """Wait for the session's current (or last) task: returns as soon as it is done, with the
    agent's final answer and a screenshot, or after max_wait_seconds with status "running" and
    the progress so far (not an error: call wait_for_task again). Safe to call from a new
    connection or after a timeout: the task kept running, and its outcome stays available
    (also after a server restart). Cancelling this call only stops waiting."""
    tracker = TaskTracker(deps(ctx).runtime)
    with tool_errors(session_id):
        await deps(ctx).runtime.sessions.get(session_id=session_id, owner=caller(ctx))
        state = await _follow(ctx, tracker, session_id, max_wait=max_wait_seconds)
    return await _result(ctx, state)


async def cancel_task(ctx: MCPContext, session_id: SessionId) -> TaskOutput:
    """Stop the session's running task. The agent stops at its next step (a running command
    or model request is interrupted), the history stays valid, and the session is ready for a
    new task. Returns the task's final state (status "cancelled"), or the last task's outcome
    when none was running."""
    tracker = TaskTracker(deps(ctx).runtime)
    with tool_errors(session_id):
        running = await tracker.cancel(session_id=session_id, owner=caller(ctx))
        state = await _follow(ctx, tracker, session_id)
    note = None if running else "No task was running; this is the outcome of the last one."
    return await _result(ctx, state, note=note)


Decision = Annotated[
    Literal["approve", "decline"],
    Field(description="approve runs the action; decline answers the agent with an error."),
]
Remember = Annotated[
    bool,
    Field(description="With approve: the same kind of action runs without asking again "
          "for the rest of this task."),
]  # fmt: skip


async def answer_approval(
    ctx: MCPContext,
    session_id: SessionId,
    approval_id: Annotated[str, Field(description="From the task result's approval.")],
    decision: Decision,
    remember: Remember = False,
) -> TaskOutput:
    """Approve or decline the action the session's task waits for (a task result with status
    waiting_for_approval names it), then wait for the task like wait_for_task. A declined
    action is not run; the agent hears that and goes on. An approval already answered or
    expired is an error."""
    runtime = deps(ctx).runtime
    tracker = TaskTracker(runtime)
    with tool_errors(session_id):
        await runtime.sessions.get(session_id=session_id, owner=caller(ctx))
    try:
        await runtime.runner.people.answer(
            session_id, approval_id, decision, remember=remember, owner=caller(ctx)
        )
    except errors.DomainError as exc:
        raise ToolError(exc.message) from None
    with tool_errors(session_id):
        state = await _follow(ctx, tracker, session_id)
    return await _result(ctx, state)


async def _follow(
    ctx: MCPContext,
    tracker: TaskTracker,
    session_id: str,
    *,
    after: int | None = None,
    max_wait: float | None = None,
) -> TaskState:
    async def report(count: int, message: str) -> None:
        await ctx.report_progress(count, None, message)

    wait = max_wait or deps(ctx).runtime.settings.mcp_task_wait_seconds
    try:
        return await tracker.follow(
            session_id=session_id, max_wait=wait, after=after, on_progress=report
        )
    except NoTask:
        raise ToolError(
            f"No task has been started in session {session_id} yet; start one with execute_task."
        ) from None
    except SessionClosed:
        raise ToolError(f"Session {session_id} was destroyed while the task was running.") from None


def status_of(state: TaskState) -> TaskStatus:
    if not state.done:
        return "waiting_for_approval" if state.approval else "running"
    return _DONE.get(state.stop_reason or "", "stopped")


async def _result(ctx: MCPContext, state: TaskState, *, note: str | None = None) -> CallToolResult:
    sid = state.session_id
    status = status_of(state)
    approval = ApprovalAsked(**state.approval) if state.approval and not state.done else None
    if approval is not None:
        next_step = (
            f"Call answer_approval with session_id '{sid}', approval_id "
            f"'{approval.approval_id}' and decision 'approve' or 'decline' (remember: true "
            "approves this kind of action for the rest of the task)."
        )
        summary = f"The agent waits for your approval to {approval.description}. {next_step}"
    elif status == "running":
        wait = deps(ctx).runtime.settings.mcp_task_wait_seconds
        next_step = (
            f"The agent is still working. Call wait_for_task with session_id '{sid}' to keep "
            f"waiting (up to {wait:g} s per call), or cancel_task to stop it."
        )
        last = f" Last action: {state.last_action}." if state.last_action else ""
        summary = f"Not done yet: {state.actions} action(s) so far.{last} {next_step}"
    else:
        next_step = (
            f"The session is ready for another execute_task (it remembers this task and the "
            f"desktop as it is), or destroy_session with session_id '{sid}' when finished."
        )
        summary = _outcome_text(state, status)
    if note:
        summary = f"{note}\n\n{summary}"
    structured = TaskResult(
        session_id=sid,
        status=status,
        done=state.done,
        answer=state.answer_text or None if state.done else None,
        steps=state.actions,
        last_action=state.last_action,
        error=state.error_message,
        detail=state.detail,
        next_step=next_step,
        screenshot_url=content.screenshot_url(ctx, sid),
        approval=approval,
        question=state.question if status == "waiting_for_answer" else None,
    )
    blocks: list[ContentBlock] = [content.text(summary)]
    blocks += await content.screenshot(ctx, sid)
    try:
        session: Session | None = await deps(ctx).runtime.sessions.get(session_id=sid)
    except errors.NotFound:  # destroyed meanwhile: no live view
        session = None
    return content.result(ctx, structured, blocks, session=session, is_error=status == "failed")


def _outcome_text(state: TaskState, status: TaskStatus) -> str:
    if status == "waiting_for_answer":
        return (
            f"The agent asks: {state.question}\n\nAnswer with execute_task on session "
            f"'{state.session_id}' (your answer as the task); the agent continues from there."
        )
    if status == "failed":
        return f"The agent run failed: {state.error_message}"
    if status == "cancelled":
        return (
            f"The task was cancelled before it finished ({state.detail or 'stopped'}). "
            "The session is ready for a new task."
        )
    text = state.answer_text or "(The agent finished without a written answer.)"
    if status == "stopped":
        why = state.detail or f"stop reason: {state.stop_reason}"
        text += f"\n\n[The run stopped before the agent said it was done: {why}]"
    return text
