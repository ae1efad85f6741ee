"""HTTP hardening as one pure ASGI middleware: security headers, a request body cap and
per-client rate limits on the two expensive verbs (creating a session, posting a message).

The limits are counted in this process's memory, or with RATE_LIMIT_STORAGE_URL in Redis,
shared by every API process that names the same database (docs/SCALING.md). If Redis cannot
be reached, requests are let through (logged): the limits guard against abuse, and losing
them for a while is better than refusing every request.

Pure ASGI on purpose: `BaseHTTPMiddleware` buffers responses and breaks SSE streaming.
Websockets pass untouched (the VNC proxy authenticates with its own token).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from computer_use import errors
from computer_use.config import Settings

logger = logging.getLogger(__name__)

REDIS_KEY_PREFIX = "computer-use"

# Set only where a response has not set its own (the VNC viewer and the UI send stricter
# ones: frame-ancestors, no-referrer).
DEFAULT_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "SAMEORIGIN"),
)
SESSION_CREATE = re.compile(r"^/api/v1/sessions/?$")
MESSAGE_POST = re.compile(r"^/api/v1/sessions/[^/]+/messages/?$")
# Uploads stream to the session's disk under their own limit (MAX_UPLOAD_MB, files_router.py).
FILE_UPLOAD = re.compile(r"^/api/v1/sessions/[^/]+/files/")


@dataclass(frozen=True)
class RateRule:
    name: str  # also the setting that configures it, for the error message
    path: re.Pattern[str]
    method: str
    limit: RateLimitItem


def rate_rules(settings: Settings) -> list[RateRule]:
    sessions, messages = settings.rate_limit_sessions, settings.rate_limit_messages
    return [
        RateRule("RATE_LIMIT_SESSIONS", SESSION_CREATE, "POST", parse(sessions)),
        RateRule("RATE_LIMIT_MESSAGES", MESSAGE_POST, "POST", parse(messages)),
    ]


def rate_limit_storage(url: str) -> Storage:
    """Counters in memory (""), or in the Redis database at `url` (redis://, rediss://)."""
    if not url:
        return MemoryStorage()
    return RedisStorage(
        f"async+{url}", implementation="redispy", key_prefix=REDIS_KEY_PREFIX, wrap_exceptions=True
    )


class SecurityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        rules: Iterable[RateRule],
        storage_url: str = "",
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.rules = list(rules)
        self.limiter = MovingWindowRateLimiter(rate_limit_storage(storage_url))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_default_headers(send)
        if scope["method"] == "PUT" and FILE_UPLOAD.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        refusal = self._too_large(scope) or await self._rate_limited(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self._call_capped(scope, receive, send)

    def _too_large(self, scope: Scope) -> JSONResponse | None:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return None  # the server rejects a malformed length itself
                if declared > self.max_body_bytes:
                    return errors.error_response(errors.PayloadTooLarge(self._too_large_message()))
        return None

    async def _rate_limited(self, scope: Scope) -> JSONResponse | None:
        method, path = scope["method"], scope["path"]
        client = scope.get("client")
        key = client[0] if client else "unknown"
        for rule in self.rules:
            if method != rule.method or not rule.path.match(path):
                continue
            try:
                if await self.limiter.hit(rule.limit, rule.name, key):
                    continue
                reset = (await self.limiter.get_window_stats(rule.limit, rule.name, key)).reset_time
            except StorageError as exc:
                logger.warning(
                    "rate limits unavailable, request let through: %s", exc.storage_error
                )
                continue
            retry_after = max(1, math.ceil(reset - time.time()))
            return errors.error_response(
                errors.RateLimited(
                    f"Too many requests from {key}: the limit is {rule.limit} "
                    f"({rule.name}); retry in {retry_after} s.",
                    retry_after=retry_after,
                )
            )
        return None

    async def _call_capped(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A body sent without (or with a lying) Content-Length is counted as it arrives.

        Past the cap the app is told the client left (so it stops reading), whatever it
        answers to that is dropped, and the client gets our 413 instead. An exception would
        not do: FastAPI turns any error while reading a body into a 400.
        """
        received = 0
        too_large = started = False

        async def capped() -> Message:
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, capped, guarded)
        if too_large and not started:
            refusal = errors.error_response(errors.PayloadTooLarge(self._too_large_message()))
            await refusal(scope, receive, send)

    def _too_large_message(self) -> str:
        return f"The request body is larger than {self.max_body_bytes} bytes (MAX_REQUEST_BYTES)."


def _with_default_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in DEFAULT_HEADERS:
                headers.setdefault(name, value)
        await send(message)

    return sending


def install_security(app: Any, settings: Settings) -> None:
    """Add the middleware to a FastAPI app (call it before CORS, so 413/429 carry CORS)."""
    app.add_middleware(
        SecurityMiddleware,
        max_body_bytes=settings.max_request_bytes,
        rules=rate_rules(settings),
        storage_url=settings.rate_limit_storage_url,
    )
