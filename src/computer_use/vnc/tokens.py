"""Short-lived, signed tokens that grant one browser access to one session's desktop.

The token is a signing.py token (purpose "vnc") whose payload is `<expiry>:<mode>:<session id>`
(the id last, so it may contain any character). Tokens are stateless: nothing is stored, and
rotating SECRET_KEY revokes every token at once.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from computer_use import errors
from computer_use.signing import BadSignature, ExpiringTokens, MalformedToken

_MODES = {"i": True, "v": False}  # interactive, view-only


class VncTokenError(errors.Unauthorized, code="invalid_vnc_token"):
    """The token does not grant access; the message says why and what to do."""


class VncTokenExpired(VncTokenError, code="vnc_token_expired"): ...


class VncTokenWrongSession(VncTokenError, code="vnc_token_wrong_session"): ...


@dataclass(frozen=True, slots=True)
class VncGrant:
    interactive: bool
    expires_at: int  # unix seconds


class VncTokens(ExpiringTokens):
    """`VncTokens(secret=None, ttl_seconds=300, *, clock=time.time)`: see ExpiringTokens."""

    purpose = "vnc"
    default_ttl = 300

    def mint(self, session_id: str, *, interactive: bool) -> str:
        return self._seal("i" if interactive else "v", session_id)

    def verify(self, token: str, session_id: str) -> VncGrant:
        try:
            expires_at, (mode, token_session) = self._open(token, 2)
            interactive = _MODES[mode]
        except (MalformedToken, KeyError):
            raise VncTokenError(
                "The VNC token is missing or malformed; request a new vnc_url."
            ) from None
        except BadSignature:
            raise VncTokenError(
                "The VNC token signature is invalid; request a new vnc_url."
            ) from None
        if not hmac.compare_digest(token_session.encode(), session_id.encode()):
            raise VncTokenWrongSession(
                "The VNC token was issued for another session; use this session's vnc_url."
            )
        if self._expired(expires_at):
            raise VncTokenExpired(
                "The VNC token has expired; fetch the session again for a fresh vnc_url."
            )
        return VncGrant(interactive=interactive, expires_at=expires_at)
