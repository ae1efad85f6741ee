"""Signed tokens and the one key that signs them (SECRET_KEY).

A token is `<payload>.<signature>`, both base64url without padding, so it can sit in a query
string as is. The signature is HMAC-SHA256 under a key derived from SECRET_KEY and the token's
purpose ("vnc", "stream", ...): a token minted for one purpose never verifies as another.
`ExpiringTokens` puts an expiry first in the payload; what the other fields mean (session,
mode, owner) is up to its subclasses (vnc/tokens.py, auth.py).

SECRET_KEY comes from the environment or, when unset, from `DATA_DIR/secret_key` (0600),
generated on first start: tokens survive a restart, and processes sharing DATA_DIR (or the
variable) share the key. Rotating it revokes every outstanding token at once. The key is never
logged, shown by /api/v1/config, or sent anywhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from computer_use.config import MIN_SECRET_KEY_CHARS, Settings

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "secret_key"
MIN_KEY_BYTES = 16


class MalformedToken(ValueError):
    """Not `<base64url>.<base64url>` in canonical spelling."""


class BadSignature(ValueError):
    """Well-formed, but not signed by this key for this purpose."""


def b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MalformedToken("not base64url") from None
    # The decoder skips stray characters and ignores trailing bits; demanding the canonical
    # spelling back means one token has exactly one string form.
    if b64encode(raw) != text:
        raise MalformedToken("not canonical base64url")
    return raw


class Signer:
    """Signs and verifies payloads for one purpose under one key."""

    def __init__(self, key: bytes, purpose: str) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"signing key must be at least {MIN_KEY_BYTES} bytes")
        if not purpose or "\0" in purpose:
            raise ValueError("purpose must be a non-empty name")
        # Domain separation: each purpose signs with its own key, derived from the shared one.
        self._key = hmac.new(
            key, b"computer-use token\0" + purpose.encode(), hashlib.sha256
        ).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def sign(self, payload: bytes) -> str:
        return f"{b64encode(payload)}.{b64encode(self._mac(payload))}"

    def unsign(self, token: str) -> bytes:
        """The payload of an authentic token; MalformedToken or BadSignature otherwise."""
        payload_text, dot, signature_text = token.partition(".")
        if not dot or not payload_text or not signature_text:
            raise MalformedToken("expected <payload>.<signature>")
        payload, signature = b64decode(payload_text), b64decode(signature_text)
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise BadSignature("signature does not match")
        return payload


def random_key() -> bytes:
    return secrets.token_bytes(32)


class ExpiringTokens:
    """What the URL token classes share: a payload `<expiry>:<field>:...:<last field>` signed
    for the subclass's `purpose` (the last field may hold any character, e.g. a session id)."""

    purpose: ClassVar[str]
    default_ttl: ClassVar[int]

    def __init__(
        self,
        secret: bytes | None = None,
        ttl_seconds: int | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`secret`: SECRET_KEY (load_secret_key); None = a random key of this object alone."""
        ttl = self.default_ttl if ttl_seconds is None else ttl_seconds
        if ttl < 0:
            raise ValueError("token ttl_seconds must be >= 0")
        self._signer = Signer(secret if secret is not None else random_key(), self.purpose)
        self.ttl_seconds = ttl
        self._clock = clock

    def _seal(self, *fields: str) -> str:
        # Flooring the expiry means a token never outlives its TTL (ttl 0 is expired at once).
        expires_at = int(self._clock() + self.ttl_seconds)
        return self._signer.sign(":".join((str(expires_at), *fields)).encode())

    def _open(self, token: str, count: int) -> tuple[int, list[str]]:
        """The expiry and `count` fields of an authentic token (expiry not checked here);
        MalformedToken or BadSignature otherwise. Nothing unsigned is parsed."""
        payload = self._signer.unsign(token)
        try:
            expiry, *fields = payload.decode().split(":", count)
            if len(fields) != count:
                raise ValueError("too few fields")
            return int(expiry), fields
        except (UnicodeDecodeError, ValueError):
            raise MalformedToken("unreadable payload") from None

    def _expired(self, expires_at: int) -> bool:
        return self._clock() >= expires_at


def load_secret_key(settings: Settings) -> bytes:
    """SECRET_KEY, or the key kept in DATA_DIR/secret_key (created 0600 on first use)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().strip().encode()
    return _key_file(settings.data_dir / KEY_FILE_NAME)


def _key_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_key_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning("%s was readable by others (mode %o); set it to 0600", path, mode)
        path.chmod(0o600)
    key = path.read_bytes().strip()
    if len(key) < MIN_SECRET_KEY_CHARS:
        raise RuntimeError(
            f"{path} holds no usable key (under {MIN_SECRET_KEY_CHARS} characters): "
            "delete it to generate a new one, or set SECRET_KEY"
        )
    return key


def _create_key_file(path: Path) -> None:
    """Written aside and linked into place: a process starting beside us reads either no
    file or the whole key, and only one key ever wins."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(temp, path)
            logger.info("generated a new SECRET_KEY in %s", path)
        except FileExistsError:
            pass  # another process created it first: use theirs
    finally:
        os.unlink(temp)
