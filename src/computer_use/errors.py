"""Domain errors and the ONE place that maps them to HTTP responses.

Every error body has the shape `ErrorBody`: `{"error": {"code", "message", "details"?}}`.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """A refusal the caller can act on. A subclass names its HTTP status and error code in its
    class line (`class NotFound(DomainError, status=404, code="not_found")`) or inherits them."""

    status_code = 400
    code = "bad_request"

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None) -> None:
        super().__init_subclass__()
        if status is not None:
            cls.status_code = status
        if code is not None:
            cls.code = code

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as it is, whatever its constructor takes: a refusal raised on a desktop host
        # reaches the API replica as the same error (Ray, cluster/calls.py).
        return (_rebuilt, (type(self), self.args, self.__dict__))


def _rebuilt(cls: type[DomainError], args: tuple[Any, ...], state: dict[str, Any]) -> DomainError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class Unauthorized(DomainError, status=401, code="unauthorized"): ...


class Forbidden(DomainError, status=403, code="forbidden"): ...


class NotFound(DomainError, status=404, code="not_found"): ...


class Conflict(DomainError, status=409, code="conflict"): ...


class PayloadTooLarge(DomainError, status=413, code="payload_too_large"): ...


class InvalidInput(DomainError, status=422, code="invalid_input"): ...


class CapacityReached(DomainError, status=429, code="capacity_reached"):
    def __init__(self, message: str, *, retry_after: int = 30, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class RateLimited(CapacityReached, code="rate_limited"): ...


class OriginNotAllowed(DomainError, status=403, code="origin_not_allowed"):
    """A browser page of a foreign origin tried to change something (hostguard.py)."""


class LoopbackOnly(DomainError, status=403, code="loopback_only"):
    """No API_TOKENS: a connection to a non-loopback address is not served (hostguard.py)."""


class HostNotAllowed(DomainError, status=421, code="host_not_allowed"):
    """The Host header names no host this server answers to (hostguard.py)."""


class ServiceUnavailable(DomainError, status=503, code="service_unavailable"):
    """A dependency (database, desktop backend, agent) is down or missing."""


# -- the specific refusals of the service layer: transports translate them, never re-check --


class MessageTooLong(PayloadTooLarge):
    """A message over MAX_MESSAGE_CHARS."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"content has {length} characters; the limit is {limit} (MAX_MESSAGE_CHARS)."
        )
        self.length = length
        self.limit = limit


class SessionExpired(Conflict):
    """The session expired: it takes no new work and has no desktop any more."""


class SessionBusy(Conflict):
    """The agent is still working on the session's previous message."""

    def __init__(self) -> None:
        super().__init__(
            "The agent is still working on the previous message; wait for message_complete "
            "or cancel it first (POST .../cancel)."
        )


class DesktopNotRunning(ServiceUnavailable):
    """The session is live but its desktop is not running (starting, failed, restoring)."""

    def __init__(self, status: str) -> None:
        super().__init__("The session's desktop is not running right now; try again in a moment.")
        self.status = status


class MissingApiKey(DomainError):
    """API_PROVIDER=anthropic and no key: neither the caller's nor the server's."""


class ProviderMisconfigured(DomainError):
    """The model client cannot be built as configured (e.g. Vertex without a project)."""


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring our error body for the given status codes."""
    descriptions = {
        400: "Bad request",
        401: "Missing or invalid credentials",
        403: "Not allowed (e.g. a path leading outside the session's HOME)",
        404: "Not found",
        409: "Conflict with the resource's current state",
        413: "Payload too large",
        422: "Validation error (details name the fields)",
        429: "Capacity or rate limit reached (see Retry-After)",
        503: "A dependency is unavailable",
    }
    return {c: {"model": ErrorBody, "description": descriptions[c]} for c in codes}


def file_responses(media_type: str, *codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` of a route whose 200 is a file of `media_type` (not JSON), with
    our error body for the given status codes."""
    return {200: {"content": {media_type: {}}}, **error_responses(*codes)}


def _body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(exc: DomainError) -> JSONResponse:
    """The HTTP answer for a domain error (also used by the pure ASGI middlewares)."""
    headers = {}
    if isinstance(exc, CapacityReached):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(_body(exc.code, exc.message, exc.details), exc.status_code, headers=headers)


def install_error_handlers(app: FastAPI, *, debug: bool) -> None:
    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        return error_response(exc)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        fields = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            message = err.get("msg", "invalid")
            if loc == ["body"] and err.get("type") in ("model_attributes_type", "dict_type"):
                message = "the body must be a JSON object sent with Content-Type: application/json"
            elif err.get("type") == "json_invalid":
                message = f"the body is not valid JSON ({err.get('ctx', {}).get('error', message)})"
            fields.append({"field": ".".join(loc), "message": message})
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "invalid request"
        return JSONResponse(_body("invalid_input", summary, fields), 422)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            _body(code, str(exc.detail)), exc.status_code, headers=getattr(exc, "headers", None)
        )

    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        details = traceback.format_exception(exc) if debug else None
        return JSONResponse(
            _body("internal_error", "Internal server error; this is a bug.", details), 500
        )

    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unhandled)


async def refuse(
    scope: Scope, receive: Receive, send: Send, error: DomainError, *, close_reason: str = ""
) -> None:
    """`error`'s HTTP answer from a pure ASGI middleware; a websocket gets it as a denial
    response where the server can send one, else a policy close (`close_reason`, or the
    error's code)."""
    response = error_response(error)
    if scope["type"] == "http":
        await response(scope, receive, send)
        return
    await receive()  # websocket.connect
    if "websocket.http.response" in scope.get("extensions", {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": response.status_code,
                "headers": response.raw_headers,
            }
        )
        await send({"type": "websocket.http.response.body", "body": response.body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": close_reason or error.code})
