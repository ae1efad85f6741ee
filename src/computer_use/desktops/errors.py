"""Errors raised by the desktops domain. The service layer maps them to HTTP / events."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


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


def retried_once(
    action: Callable[[], T],
    *,
    lost: tuple[type[BaseException], ...],
    disconnect: Callable[[], None],
    failure: str,
) -> T:
    """`action`, run once more on a fresh connection when it fails with one of `lost` (the
    display server restarted under an open connection); the second failure is raised as a
    DesktopError `<failure>: <the error>`."""
    try:
        return action()
    except lost:
        disconnect()
    try:
        return action()
    except lost as exc:
        disconnect()
        raise DesktopError(f"{failure}: {exc}") from exc
