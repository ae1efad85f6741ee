"""The ASGI app: POST /v1/messages, answered from a script, JSON or streaming SSE."""

from __future__ import annotations

import asyncio
import inspect
import json
import math
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from computer_use.loopback.caching import PromptCache
from computer_use.loopback.errors import InvalidRequest
from computer_use.loopback.messages import (
    ThinkingSigner,
    build_message,
    error_body,
    new_id,
    reply_tool_names,
    sse_frame,
    stream_events,
)
from computer_use.loopback.script import Fail, RecordedRequest, Reply, Responder, ScriptItem, Turn
from computer_use.loopback.validation import validate_body, validate_headers


class LoopbackState:
    """The script, what was asked, and the simulated cache; shared by every request."""

    def __init__(
        self,
        script: Iterable[ScriptItem] | Responder,
        *,
        api_key: str | None,
        delay: float,
        chunk_size: int,
    ) -> None:
        self.responder: Responder | None = script if callable(script) else None
        self.turns: deque[ScriptItem] = deque() if callable(script) else deque(script)
        self.api_key = api_key
        self.delay = delay
        self.chunk_size = chunk_size
        self.requests: list[RecordedRequest] = []
        self.signer = ThinkingSigner()
        self.cache = PromptCache()
        self.served = 0

    async def next_turn(self, request: RecordedRequest) -> Turn:
        if self.responder is not None:
            item: ScriptItem = self.responder
        elif self.turns:
            item = self.turns.popleft()
        else:
            return Fail(500, "api_error", f"loopback script exhausted after {self.served} turns")
        self.served += 1
        if isinstance(item, Reply | Fail):
            return item
        turn = item(request)
        return await turn if inspect.isawaitable(turn) else turn


def _error(status: int, error_type: str, message: str, *, headers: dict[str, str]) -> Response:
    return JSONResponse(error_body(error_type, message), status_code=status, headers=headers)


def _fail_headers(fail: Fail, base: dict[str, str]) -> dict[str, str]:
    headers = dict(base)
    if fail.retry_after is not None:
        # retry-after is what the API sends; retry-after-ms (which the SDK prefers) lets tests
        # script sub-second waits.
        headers["retry-after"] = str(max(0, math.ceil(fail.retry_after)))
        headers["retry-after-ms"] = str(int(fail.retry_after * 1000))
    if fail.type == "api_error" and fail.status == 500:
        headers["x-should-retry"] = "false"  # an exhausted script will not get better
    return headers


def create_app(state: LoopbackState) -> Starlette:
    async def messages(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        base = {"request-id": new_id("req")}
        try:
            body: Any = json.loads(await request.body())
        except ValueError:
            body = None
        record = RecordedRequest(
            "POST", request.url.path, headers, body if isinstance(body, dict) else {}
        )
        state.requests.append(record)
        response = await _answer(state, record, body, base)
        record.status = response.status_code
        return response

    async def not_found(request: Request) -> Response:
        return _error(404, "not_found_error", f"Not found: {request.url.path}", headers={})

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "DELETE"]),
        ]
    )


async def _answer(
    state: LoopbackState, record: RecordedRequest, body: Any, base: dict[str, str]
) -> Response:
    headers = record.headers
    key = record.api_key
    if not key:
        return _error(401, "authentication_error", "x-api-key header is required", headers=base)
    if state.api_key is not None and key != state.api_key:
        return _error(401, "authentication_error", "invalid x-api-key", headers=base)
    try:
        validate_headers(headers)
        validate_body(body, record.betas, state.signer.verify)
    except InvalidRequest as exc:
        record.rejection = str(exc)
        return _error(400, "invalid_request_error", str(exc), headers=base)

    turn = await state.next_turn(record)
    streaming = bool(body.get("stream"))
    if isinstance(turn, Fail) and not (turn.mid_stream and streaming):
        return _error(turn.status, turn.type, turn.message, headers=_fail_headers(turn, base))
    if isinstance(turn, Reply):
        declared = {*record.tool_names, *(f"{f}_toolset" for f in record.toolset_names)}
        unknown = [n for n in reply_tool_names(turn) if n not in declared]
        if unknown:
            problem = f"loopback script error: tool(s) {unknown} not defined in the request"
            return _error(500, "api_error", problem, headers={**base, "x-should-retry": "false"})
    usage = state.cache.account(body)
    if isinstance(turn, Fail):
        return StreamingResponse(
            _failing_stream(turn, body["model"], usage),
            media_type="text/event-stream",
            headers=base,
        )
    message = build_message(turn, model=body["model"], usage=usage, signer=state.signer)
    record.extras["response"] = message
    if not streaming:
        return JSONResponse(message, headers=base)
    return StreamingResponse(
        _stream(message, state.chunk_size, state.delay),
        media_type="text/event-stream",
        headers=base,
    )


async def _stream(message: dict[str, Any], chunk_size: int, delay: float) -> AsyncIterator[bytes]:
    for event, data in stream_events(message, chunk_size=chunk_size):
        yield sse_frame(event, data)
        if delay and event == "content_block_delta":
            await asyncio.sleep(delay)  # pacing for the demo, so the UI shows text arriving


async def _failing_stream(fail: Fail, model: str, usage: dict[str, int]) -> AsyncIterator[bytes]:
    start: dict[str, Any] = {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    yield sse_frame("message_start", {"type": "message_start", "message": start})
    yield sse_frame("ping", {"type": "ping"})
    yield sse_frame("error", error_body(fail.type, fail.message))
