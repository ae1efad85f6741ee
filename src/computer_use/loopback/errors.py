"""The loopback server's request refusal."""

from __future__ import annotations


class InvalidRequest(Exception):
    """A 400 invalid_request_error; str(exc) is the message the API would send."""
