"""Short-lived, signed tokens that grant one browser access to one session's desktop.

The token is a signing.py token (purpose "vnc") whose payload is `<expiry>:<mode>:<session id>`
(the id last, so it may contain any character). Tokens are stateless: nothing is stored, and
rotating SECRET_KEY revokes every token at once.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from computer_use import errors
from computer_use.signing import MIN_KEY_BYTES, BadSignature, MalformedToken, Signer, random_key

_MODES = {"i": True, "v": False}  # interactive, view-only
PURPOSE = "vnc"


class VncTokenError(errors.Unauthorized):
    """The token does not grant access; the message says why and what to do."""

    code = "invalid_vnc_token"


class VncTokenExpired(VncTokenError):
    code = "vnc_token_expired"


class VncTokenWrongSession(VncTokenError):
    code = "vnc_token_wrong_session"


@dataclass(frozen=True, slots=True)
class VncGrant:
    interactive: bool
    expires_at: int  # unix seconds


class VncTokens:
    def __init__(
        self,
        secret: bytes | None = None,
        ttl_seconds: int = 300,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`secret`: SECRET_KEY (signing.load_secret_key); None = a random per-object key."""
        if secret is not None and len(secret) < MIN_KEY_BYTES:
            raise ValueError(f"VNC token secret must be at least {MIN_KEY_BYTES} bytes")
        if ttl_seconds < 0:
            raise ValueError("VNC token ttl_seconds must be >= 0")
        self._signer = Signer(secret if secret is not None else random_key(), PURPOSE)
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    def mint(self, session_id: str, *, interactive: bool) -> str:
        # Flooring the expiry means a token never outlives its TTL (ttl 0 is expired at once).
        expires_at = int(self._clock() + self.ttl_seconds)
        mode = "i" if interactive else "v"
        return self._signer.sign(f"{expires_at}:{mode}:{session_id}".encode())

    def verify(self, token: str, session_id: str) -> VncGrant:
        # The signature is checked first: nothing of an unauthenticated payload is trusted.
        try:
            payload = self._signer.unsign(token)
        except MalformedToken:
            raise VncTokenError(
                "The VNC token is missing or malformed; request a new vnc_url."
            ) from None
        except BadSignature:
            raise VncTokenError(
                "The VNC token signature is invalid; request a new vnc_url."
            ) from None
        try:
            expiry_text, mode, token_session = payload.decode().split(":", 2)
            expires_at = int(expiry_text)
            interactive = _MODES[mode]
        except (UnicodeDecodeError, ValueError, KeyError):
            raise VncTokenError("The VNC token is malformed; request a new vnc_url.") from None
        if not hmac.compare_digest(token_session.encode(), session_id.encode()):
            raise VncTokenWrongSession(
                "The VNC token was issued for another session; use this session's vnc_url."
            )
        if self._clock() >= expires_at:
            raise VncTokenExpired(
                "The VNC token has expired; fetch the session again for a fresh vnc_url."
            )
        return VncGrant(interactive=interactive, expires_at=expires_at)
