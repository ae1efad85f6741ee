"""DNS-rebinding and cross-site protection of every route, as one pure ASGI middleware.

Host: a browser sends the name from the page's URL, so a page on attacker.example that
rebinds its name to 127.0.0.1 still sends `Host: attacker.example`. Every request and
websocket must name a host this server answers to: localhost, 127.0.0.1 and [::1] on any
port, the HOST it binds (unless 0.0.0.0 or ::), and ALLOWED_HOSTS. Anything else gets 421.

Origin: a state-changing request (POST, PUT, PATCH, DELETE) sent by a browser carries the
page's Origin, which must be this server's own, one on an allowed host, or one CORS_ORIGINS
allows; else 403. A request without Origin (curl, SDKs, MCP clients) passes.

The VNC websocket accepts any Origin: its short-lived token is the proof, and an MCP App in a
host's sandboxed frame sends `Origin: null`. Its Host is checked all the same.

Without API_TOKENS (and without ALLOW_UNAUTHENTICATED) only connections to a loopback address
are served: start-up refuses a public bind (startup.py), and this catches the bind start-up
cannot see (`uvicorn computer_use.main:app --host 0.0.0.0` with HOST left at 127.0.0.1).

The health routes answer any Host (load balancers probe by address); a request whose Host is
not ours is marked in the scope, and health then shows it no detail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from computer_use import errors, startup
from computer_use.config import Settings

FOREIGN_HOST_SCOPE_KEY = "computer_use.foreign_host"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_ANY_ADDRESS = ("", "0.0.0.0", "::", "[::]")
_HEALTH_PATHS = frozenset({"/api/v1/health", "/api/v1/health/ready"})
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def split_host(value: str) -> tuple[str, str | None]:
    """`Host` (or an origin's netloc) as (lower-case name, port or None); [v6] keeps brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return value, None
        rest = value[end + 1 :]
        return value[: end + 1], rest[1:] if rest.startswith(":") and rest[1:] else None
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit():
        return name.rstrip("."), port
    return value.rstrip("."), None


@dataclass(frozen=True)
class HostRule:
    """One ALLOWED_HOSTS item: `name` (any port), `name:port`, `name:*`, `*.domain` or `*`."""

    name: str
    port: str | None

    @classmethod
    def parse(cls, item: str) -> HostRule:
        name, port = split_host(item.removesuffix(":*"))
        return cls(name, port)

    def matches(self, name: str, port: str | None) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.name == "*":
            return True
        if self.name.startswith("*."):
            return name.endswith(self.name[1:])
        return name == self.name


def host_rules(settings: Settings) -> list[HostRule]:
    names = list(LOOPBACK_NAMES)
    bind = settings.host.strip().lower()
    if bind not in _ANY_ADDRESS:
        names.append(f"[{bind}]" if ":" in bind and not bind.startswith("[") else bind)
    names += [item.strip() for item in settings.allowed_hosts.split(",") if item.strip()]
    return [HostRule.parse(name) for name in names]


class HostGuardMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.rules = host_rules(settings)
        self.cors_origins = frozenset(settings.cors_origin_list)
        regex = settings.cors_origin_regex
        self.cors_regex = re.compile(regex) if regex else None
        self.loopback_only = (
            startup.refusal(settings.model_copy(update={"host": "0.0.0.0"})) is not None
        )

    def host_allowed(self, host: str | None) -> bool:
        if not host:
            return False
        name, port = split_host(host)
        return any(rule.matches(name, port) for rule in self.rules)

    def origin_allowed(self, origin: str, host: str) -> bool:
        if origin in self.cors_origins or (self.cors_regex and self.cors_regex.fullmatch(origin)):
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (sandboxed frames, file://) and the like
        return parts.netloc.lower() == host.lower() or self.host_allowed(parts.netloc)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        host = headers.get("host", "")
        health = scope["type"] == "http" and scope["path"] in _HEALTH_PATHS
        server = scope.get("server")
        if self.loopback_only and server and not startup.is_loopback(server[0]) and not health:
            refusal: errors.DomainError = errors.LoopbackOnly(
                f"This server has no API_TOKENS, so it serves connections to loopback only "
                f"(this one came in on {server[0]}). Set API_TOKENS, or "
                "ALLOW_UNAUTHENTICATED=true if an authenticating proxy guards it."
            )
            await errors.refuse(scope, receive, send, refusal)
            return
        if not self.host_allowed(host):
            if health:
                scope[FOREIGN_HOST_SCOPE_KEY] = True
                await self.app(scope, receive, send)
                return
            refusal = errors.HostNotAllowed(
                f"This server does not answer to the host {host!r}. If that is its name, add "
                "it to ALLOWED_HOSTS (comma-separated, e.g. computer-use.example.com)."
            )
            await errors.refuse(scope, receive, send, refusal)
            return
        origin = headers.get("origin")
        if (
            scope["type"] == "http"
            and origin is not None
            and scope["method"] in _STATE_CHANGING
            and not self.origin_allowed(origin, host)
        ):
            refusal = errors.OriginNotAllowed(
                f"Requests from the web page at {origin!r} may not change anything here. If "
                "that page is yours, add its origin to CORS_ORIGINS."
            )
            await errors.refuse(scope, receive, send, refusal)
            return
        await self.app(scope, receive, send)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def install_host_guard(app: Any, settings: Settings) -> None:
    """Outermost middleware: nothing else runs for a foreign Host or Origin."""
    app.add_middleware(HostGuardMiddleware, settings=settings)
