"""Short-lived, HMAC-signed tokens that grant one browser access to one session's desktop.

A token is `<payload>.<signature>`, both base64url without padding, so it can sit in a query
string as is. The payload is `<expiry>:<mode>:<session id>` (the id last, so it may contain any
character). Tokens are stateless: nothing is stored, and rotating the secret (a restart, when
it is random) revokes every token at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from computer_use import errors

_MODES = {"i": True, "v": False}  # interactive, view-only
_MIN_SECRET_BYTES = 16


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


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # The decoder skips stray characters and ignores trailing bits; demanding the canonical
    # spelling back means one token has exactly one string form.
    if _b64encode(raw) != text:
        raise ValueError("not canonical base64url")
    return raw


class VncTokens:
    def __init__(
        self,
        secret: bytes | None = None,
        ttl_seconds: int = 300,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if secret is not None and len(secret) < _MIN_SECRET_BYTES:
            raise ValueError(f"VNC token secret must be at least {_MIN_SECRET_BYTES} bytes")
        if ttl_seconds < 0:
            raise ValueError("VNC token ttl_seconds must be >= 0")
        # A random secret means tokens die with the process, which is what a restart should do.
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()

    def mint(self, session_id: str, *, interactive: bool) -> str:
        # Flooring the expiry means a token never outlives its TTL (ttl 0 is expired at once).
        expires_at = int(self._clock() + self.ttl_seconds)
        mode = "i" if interactive else "v"
        payload = f"{expires_at}:{mode}:{session_id}".encode()
        return f"{_b64encode(payload)}.{_b64encode(self._sign(payload))}"

    def verify(self, token: str, session_id: str) -> VncGrant:
        payload = self._authentic_payload(token)
        # The signature is checked first: nothing of an unauthenticated payload is trusted.
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

    def _authentic_payload(self, token: str) -> bytes:
        payload_text, dot, signature_text = token.partition(".")
        if not dot or not payload_text or not signature_text:
            raise VncTokenError("The VNC token is missing or malformed; request a new vnc_url.")
        try:
            payload = _b64decode(payload_text)
            signature = _b64decode(signature_text)
        except (binascii.Error, ValueError):
            raise VncTokenError("The VNC token is malformed; request a new vnc_url.") from None
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise VncTokenError("The VNC token signature is invalid; request a new vnc_url.")
        return payload
