"""Start-up rules: what refuses to start (and says why in one line), and what starts but
warns loudly.

- A bind address other than loopback without API_TOKENS refuses to start, unless
  ALLOW_UNAUTHENTICATED=true: anyone who reaches it could drive the desktops and spend the
  server's ANTHROPIC_API_KEY. `computer-use serve` checks the address it binds; plain
  `uvicorn computer_use.main:app` checks HOST.
- Isolation measures that fell back to off (no kernel overlay, no cgroups, no network rules,
  as on hosts without privileged containers) are logged as warnings at start and listed in
  the health report's `warnings`.

A refusal raised in the lifespan reaches uvicorn as its one line (`StartupRulesMiddleware`),
not as a traceback.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from computer_use.auth import ApiTokens
from computer_use.config import Settings

logger = logging.getLogger(__name__)


class StartupRefused(Exception):
    """The one line that says why the service will not start and what to change."""


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def refusal(settings: Settings) -> str | None:
    """Why serving on `settings.host` with these settings is refused, or None."""
    if is_loopback(settings.host) or settings.allow_unauthenticated:
        return None
    if ApiTokens.from_settings(settings).enabled:
        return None
    return (
        f"Refusing to serve on {settings.host} without API_TOKENS: anyone who can reach it "
        "could use its desktops and ANTHROPIC_API_KEY. Set API_TOKENS (comma-separated "
        "secrets), or ALLOW_UNAUTHENTICATED=true if an authenticating proxy guards it."
    )


def check(settings: Settings) -> None:
    problem = refusal(settings)
    if problem is not None:
        raise StartupRefused(problem)


def isolation_warnings(report: dict[str, Any] | None) -> list[str]:
    """One sentence per isolation measure that is off, from the desktops' health report."""
    if not report:
        return []
    warnings = []
    mode = report.get("isolation")
    if mode is not None and mode != "overlay":
        warnings.append(
            f"Session homes use {mode!r}, not a kernel overlay: the disk quota is not "
            f"enforced ({report.get('isolation_reason')})."
        )
    if report.get("launcher") == "direct":
        warnings.append(
            "Session programs run without their own user and namespaces: a session can see "
            "and signal the others' processes and read their files."
        )
    for key, what in (
        ("process_view", "Hiding other processes"),
        ("private_dirs", "Hiding the host's /run (its unix sockets)"),
        ("network", "Per-session network rules"),
        ("egress", "The egress policy"),
        ("abstract_sockets", "The Landlock scope on abstract unix sockets"),
        ("seccomp", "The seccomp filter"),
        ("resource_limits", "Per-session memory and process limits"),
        ("cpu_limit", "The per-session CPU cap"),
    ):
        measure = report.get(key)
        if isinstance(measure, dict) and measure.get("enabled") is False:
            warnings.append(f"{what} is off: {measure.get('reason')}.")
    ksm = report.get("ksm")
    if isinstance(ksm, dict) and ksm.get("aslr_disabled"):
        warnings.append(
            "Session programs run without address-space randomisation (KSM_DISABLE_ASLR): "
            "a browser exploit is easier, and every session has the same addresses."
        )
    return warnings


def announce(report: dict[str, Any] | None) -> None:
    for warning in isolation_warnings(report):
        logger.warning("ISOLATION REDUCED: %s", warning)


class StartupRulesMiddleware:
    """Turns a `StartupRefused` in the lifespan into uvicorn's one-line startup failure."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            # Starlette sends "startup.failed" (with a traceback) from inside its `except`.
            refused = sys.exc_info()[1]
            if message["type"] == "lifespan.startup.failed" and isinstance(refused, StartupRefused):
                message = {"type": message["type"], "message": str(refused)}
            await send(message)

        await self.app(scope, receive, sending)


def install_startup_rules(app: Any) -> None:
    app.add_middleware(StartupRulesMiddleware)
