"""Signed VNC tokens: bound to one session and one mode, short-lived, tamper-evident."""

from __future__ import annotations

import re

import pytest

from computer_use.vnc.tokens import (
    VncTokenError,
    VncTokenExpired,
    VncTokens,
    VncTokenWrongSession,
)

SECRET = b"0123456789abcdef0123456789abcdef"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("interactive", [True, False])
def test_minted_token_verifies_with_its_mode(interactive: bool) -> None:
    tokens = VncTokens(SECRET)
    grant = tokens.verify(tokens.mint("s1", interactive=interactive), "s1")
    assert grant.interactive is interactive


def test_token_is_url_safe_and_unpadded() -> None:
    token = VncTokens().mint("session with spaces/and:colons?&=é", interactive=True)
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)


def test_session_id_with_separators_round_trips() -> None:
    tokens = VncTokens(SECRET)
    session_id = "a:b:c.d"
    grant = tokens.verify(tokens.mint(session_id, interactive=False), session_id)
    assert grant.interactive is False


def test_token_for_another_session_is_refused() -> None:
    tokens = VncTokens(SECRET)
    with pytest.raises(VncTokenWrongSession, match="another session"):
        tokens.verify(tokens.mint("s1", interactive=True), "s2")


def test_token_expires_after_ttl() -> None:
    clock = Clock()
    tokens = VncTokens(SECRET, ttl_seconds=300, clock=clock)
    token = tokens.mint("s1", interactive=True)
    clock.now += 299
    assert tokens.verify(token, "s1").interactive
    clock.now += 1
    with pytest.raises(VncTokenExpired, match="expired"):
        tokens.verify(token, "s1")


def test_zero_ttl_token_is_expired_at_once() -> None:
    tokens = VncTokens(SECRET, ttl_seconds=0)
    with pytest.raises(VncTokenExpired):
        tokens.verify(tokens.mint("s1", interactive=False), "s1")


def test_token_from_another_secret_is_refused() -> None:
    token = VncTokens(b"another secret of 32 bytes......").mint("s1", interactive=True)
    with pytest.raises(VncTokenError, match="signature"):
        VncTokens(SECRET).verify(token, "s1")


def test_random_secrets_differ_per_instance() -> None:
    token = VncTokens().mint("s1", interactive=True)
    with pytest.raises(VncTokenError):
        VncTokens().verify(token, "s1")


def test_spliced_payload_and_signature_are_refused() -> None:
    tokens = VncTokens(SECRET)
    view_only = tokens.mint("s1", interactive=False)
    interactive = tokens.mint("s1", interactive=True)
    forged = interactive.split(".")[0] + "." + view_only.split(".")[1]
    with pytest.raises(VncTokenError, match="signature"):
        tokens.verify(forged, "s1")


def test_every_single_character_change_is_refused() -> None:
    tokens = VncTokens(SECRET)
    token = tokens.mint("s1", interactive=False)
    for index, char in enumerate(token):
        for replacement in {"A", "B", "_", "-", "."} - {char}:
            tampered = token[:index] + replacement + token[index + 1 :]
            with pytest.raises(VncTokenError):
                tokens.verify(tampered, "s1")


@pytest.mark.parametrize("token", ["", ".", "abc", "abc.", ".abc", "a.b.c", "é.é", "YQ.YQ"])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(VncTokenError):
        VncTokens(SECRET).verify(token, "s1")


def test_token_errors_map_to_401() -> None:
    assert VncTokenExpired("x").status_code == 401


def test_short_secret_and_negative_ttl_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        VncTokens(b"short")
    with pytest.raises(ValueError, match="ttl"):
        VncTokens(SECRET, ttl_seconds=-1)
