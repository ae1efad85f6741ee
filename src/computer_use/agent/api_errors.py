"""SDK exceptions (after the SDK's own retries) to `error` events a user can act on.

The message never contains the API key: it is built from the error type and the API's message,
and scrubbed of the key and of anything shaped like one, in case an upstream proxy echoes it.
"""

from __future__ import annotations

import re

import anthropic

from computer_use.agent.events import ErrorCode, ErrorEvent

_KEY_SHAPE = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}")

_BY_STATUS: dict[int, ErrorCode] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_KNOWN: frozenset[str] = frozenset(_BY_STATUS.values()) | {"api_error"}


def scrub(text: str, secret: str | None) -> str:
    if secret and len(secret) >= 4:
        text = text.replace(secret, "[redacted]")
    return _KEY_SHAPE.sub("[redacted]", text)


def _code(exc: anthropic.APIStatusError) -> ErrorCode:
    # Mid-stream errors arrive on a 200 response: the body's type is the truth there.
    body_type = exc.type if isinstance(exc.type, str) else None
    if body_type in _KNOWN:
        return body_type  # type: ignore[return-value]  # narrowed by membership above
    if body_type == "not_found_error":
        return "invalid_request_error"
    if body_type == "overloaded_error" or exc.status_code == 529:
        return "overloaded_error"
    return _BY_STATUS.get(exc.status_code, "api_error")


def _status_message(exc: anthropic.APIStatusError, code: ErrorCode) -> tuple[str, bool]:
    status = exc.status_code
    detail = exc.api_message or exc.message
    if code == "authentication_error":
        return (
            f"The Anthropic API rejected the API key ({status} authentication_error: {detail}). "
            "Check the key sent in X-Anthropic-API-Key, or the server's ANTHROPIC_API_KEY.",
            False,
        )
    if code == "permission_error":
        return f"The API key may not use this model or feature ({status}): {detail}", False
    if code == "rate_limit_error":
        wait = exc.response.headers.get("retry-after")
        when = f"in {wait} s" if wait else "in a little while"
        return f"Rate limited by the Anthropic API ({status}); try again {when}.", True
    if code == "overloaded_error":
        return "The Anthropic API is overloaded (529); try again in a moment.", True
    if code == "invalid_request_error":
        return f"The Anthropic API refused the request ({status}): {detail}", False
    return f"The Anthropic API failed ({status} {exc.type or 'api_error'}): {detail}", True


def error_event(exc: BaseException, *, secret: str | None) -> ErrorEvent:
    status: int | None = None
    request_id: str | None = None
    code: ErrorCode
    if isinstance(exc, anthropic.APIStatusError):
        code = _code(exc)
        message, retryable = _status_message(exc, code)
        status, request_id = exc.status_code, exc.request_id
    elif isinstance(exc, anthropic.APITimeoutError):
        code, retryable = "timeout_error", True
        message = "The request to the Anthropic API timed out; try again."
    elif isinstance(exc, anthropic.APIConnectionError):
        code, retryable = "connection_error", True
        cause = exc.__cause__ or exc.__context__
        reason = f": {type(cause).__name__}" if cause is not None else ""
        message = f"Could not connect to the Anthropic API{reason}. Check the network or base URL."
    elif isinstance(exc, anthropic.AnthropicError | TypeError) and "authentication" in str(exc):
        code, retryable = "configuration_error", False
        message = "No API credentials: send X-Anthropic-API-Key or set ANTHROPIC_API_KEY."
    else:
        code, retryable = "internal_error", False
        message = f"The agent stopped on an internal error ({type(exc).__name__}); see the log."
    return {
        "code": code,
        "message": scrub(message, secret),
        "status": status,
        "retryable": retryable,
        "request_id": request_id,
    }
