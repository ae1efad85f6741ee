"""Errors raised by the desktops domain. The service layer maps them to HTTP / events."""

from __future__ import annotations


class DesktopError(Exception):
    """Base class of every desktop error."""


class DesktopNotFound(DesktopError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"no desktop for session {session_id!r}")
        self.session_id = session_id


class DesktopExists(DesktopError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} already has a desktop")
        self.session_id = session_id


class DesktopCapacityError(DesktopError):
    """Every display slot is taken; `retry_after` is a hint in seconds for the client."""

    def __init__(self, capacity: int, retry_after: int) -> None:
        super().__init__(
            f"all {capacity} desktops are in use; retry in about {retry_after} s "
            "or end another session"
        )
        self.capacity = capacity
        self.retry_after = retry_after


class DesktopStartError(DesktopError):
    """A desktop process failed to start or to become ready within its deadline."""


class DesktopInputError(DesktopError, ValueError):
    """Input the agent asked for cannot be performed, e.g. an unknown key name."""
