"""Optional API authentication (API_TOKENS): who is calling, and the gate that asks.

Off when API_TOKENS is empty. When set, every request to /api/v1 (but health), /mcp and the
VNC viewer needs `Authorization: Bearer <token>` (or `X-API-Token`). Two places cannot send a
header: EventSource, which gets a short-lived signed `stream_url` bound to one session and its
owner, and the VNC viewer and websocket, whose `?token=` (vnc/tokens.py) already binds one
session and is minted only for its owner. A session's owner is `owner_id(token)`: a token never
reaches the database or a log.

`AuthMiddleware` is the gate (pure ASGI: BaseHTTPMiddleware would break SSE); it leaves the
caller's owner id in the scope for `CallerDep`, which fails closed if the gate was skipped.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Annotated, Any
from urllib.parse import parse_qs, unquote

from fastapi import Depends
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from computer_use import appstate, errors
from computer_use.config import Settings
from computer_use.signing import BadSignature, ExpiringTokens, MalformedToken, load_secret_key
from computer_use.vnc.tokens import VncTokens

OWNER_SCOPE_KEY = "computer_use.owner"
TOKEN_HEADER = "X-API-Token"
MISSING_TOKEN_MESSAGE = (
    "This server requires an API token (API_TOKENS): send it as `Authorization: Bearer <token>` "
    f"or `{TOKEN_HEADER}: <token>`."
)
_OPEN_PATHS = frozenset({"/api/v1/health", "/api/v1/health/ready"})
_STREAM_PATH = re.compile(r"^/api/v1/sessions/([^/]+)/stream/?$")
_VNC_PATH = re.compile(r"^(?:/vnc/([^/]+)|/api/v1/sessions/([^/]+)/vnc/websockify)/?$")


def owner_id(token: str) -> str:
    """What a session stores of the token that created it."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class ApiTokens:
    """The configured API tokens; `authenticate` compares in constant time against each."""

    def __init__(self, tokens: list[str]) -> None:
        self._tokens = [t.encode() for t in tokens]

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiTokens:
        raw = settings.api_tokens.get_secret_value() if settings.api_tokens else ""
        return cls([t.strip() for t in raw.split(",") if t.strip()])

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def authenticate(self, token: str | None) -> str | None:
        """The caller's owner id, or None when the token is not one of ours."""
        if not token:
            return None
        given = token.encode()
        matched = False
        for known in self._tokens:  # no early exit: timing says nothing about which matched
            matched |= hmac.compare_digest(given, known)
        return owner_id(token) if matched else None

    def from_headers(self, headers: dict[str, str]) -> str | None:
        """`headers` with lower-case names."""
        authorization = headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return self.authenticate(credentials.strip())
        return self.authenticate(headers.get(TOKEN_HEADER.lower(), "").strip() or None)


class StreamTokens(ExpiringTokens):
    """Signed `?token=` of a session's stream_url: `<expiry>:<owner>:<session id>`.
    `StreamTokens(secret=None, ttl_seconds=600, *, clock=time.time)`: see ExpiringTokens.

    An open stream outlives its token (only the connection is checked); a reconnect after the
    TTL needs a fresh stream_url, which the session's JSON carries every time it is read.
    """

    purpose = "stream"
    default_ttl = 600

    def mint(self, session_id: str, owner: str) -> str:
        return self._seal(owner, session_id)

    def verify(self, token: str, session_id: str) -> str | None:
        """The owner the token was minted for, or None (forged, expired, other session)."""
        try:
            expires_at, (owner, token_session) = self._open(token, 2)
        except (MalformedToken, BadSignature):
            return None
        if token_session != session_id or self._expired(expires_at):
            return None
        return owner


class AuthMiddleware:
    def __init__(self, app: ASGIApp, *, tokens: ApiTokens, stream_tokens: StreamTokens) -> None:
        self.app = app
        self.tokens = tokens
        self.stream_tokens = stream_tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.tokens.enabled:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not _protected(path) or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        owner = self.tokens.from_headers(headers) or self._from_query(scope, path)
        if owner is None:
            refusal = errors.Unauthorized(MISSING_TOKEN_MESSAGE)
            await errors.refuse(scope, receive, send, refusal, close_reason="API token required")
            return
        scope[OWNER_SCOPE_KEY] = owner
        await self.app(scope, receive, send)

    def _from_query(self, scope: Scope, path: str) -> str | None:
        """A signed stream token, or (VNC) a valid viewer token: "" = granted, no owner."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = (query.get("token") or [""])[0]
        if not token:
            return None
        if stream := _STREAM_PATH.match(path):
            return self.stream_tokens.verify(token, unquote(stream.group(1)))
        if vnc := _VNC_PATH.match(path):
            vnc_tokens: VncTokens | None = getattr(scope["app"].state, "vnc_tokens", None)
            if vnc_tokens is None:
                return None
            try:
                vnc_tokens.verify(token, unquote(vnc.group(1) or vnc.group(2)))
            except errors.Unauthorized:
                return None
            return ""
        return None


def _protected(path: str) -> bool:
    if path in _OPEN_PATHS:
        return False
    return (
        path.startswith("/api/v1/")
        or path == "/api/v1"
        or path == "/mcp"
        or path.startswith("/mcp/")
        or bool(_VNC_PATH.match(path))
    )


def get_caller(conn: HTTPConnection) -> str | None:
    """The caller's owner id (None: authentication is off)."""
    tokens = api_tokens_of(conn.app)
    if tokens is None or not tokens.enabled:
        return None
    owner: Any = conn.scope.get(OWNER_SCOPE_KEY)
    if not owner:  # the gate did not run for this route: refuse rather than show everything
        raise errors.Unauthorized(MISSING_TOKEN_MESSAGE)
    return str(owner)


CallerDep = Annotated[str | None, Depends(get_caller)]


def api_tokens_of(app: Any) -> ApiTokens | None:
    """The app's API_TOKENS (install_auth puts them on app.state)."""
    return appstate.read(app, "api_tokens", ApiTokens)


def stream_tokens_of(app: Any) -> StreamTokens | None:
    """The app's signer of stream URLs (install_auth puts it on app.state)."""
    return appstate.read(app, "stream_tokens", StreamTokens)


def install_auth(app: Any, settings: Settings, *, secret_key: bytes | None = None) -> None:
    """`app.state.api_tokens`, `app.state.stream_tokens` and the gate (innermost middleware).
    `secret_key`: what signing.load_secret_key(settings) returns (loaded here when None)."""
    tokens = ApiTokens.from_settings(settings)
    stream_tokens = StreamTokens(secret_key or load_secret_key(settings))
    app.state.api_tokens = tokens
    app.state.stream_tokens = stream_tokens
    app.add_middleware(AuthMiddleware, tokens=tokens, stream_tokens=stream_tokens)
