"""Which files a caller may reach: those of its own running session (REST and MCP alike)."""

from __future__ import annotations

from computer_use import errors
from computer_use.desktops.files import FileAccessError, Files
from computer_use.sessions.service import SessionService

MIB = 1024 * 1024
_ERRORS: dict[str, type[errors.DomainError]] = {
    "invalid_path": errors.DomainError,
    "outside_home": errors.Forbidden,
    "permission": errors.Forbidden,
    "not_found": errors.NotFound,
    "not_a_directory": errors.Conflict,
    "is_a_directory": errors.Conflict,
    "not_a_file": errors.Conflict,
    "quota": errors.PayloadTooLarge,
    "too_large": errors.PayloadTooLarge,
    "aborted": errors.DomainError,
}


async def session_files(service: SessionService, *, session_id: str, owner: str | None) -> Files:
    """The files of the caller's running session (SessionService.files: in this process, or
    on the session's desktop host through RAY_ADDRESS). Counts as activity."""
    return await service.files(session_id=session_id, owner=owner)


def check_declared_size(declared: int | None, limit: int) -> None:
    """An upload announced bigger than `limit` (MAX_UPLOAD_MB) is refused before a byte is
    read; the helper holds a body of unknown length to the same limit as it writes."""
    if declared is not None and declared > limit:
        raise errors.PayloadTooLarge(
            f"The upload is {declared} bytes; the limit is {limit} (MAX_UPLOAD_MB)."
        )


def to_domain_error(exc: FileAccessError) -> errors.DomainError:
    """A refusal of the sandboxed file helper as a domain error, saying what to change."""
    kind = _ERRORS.get(exc.code)
    if kind is None:
        return errors.ServiceUnavailable(f"File access failed: {exc.message}")
    message = exc.message
    if exc.code == "quota":
        message += " (SESSION_DISK_QUOTA_MB); nothing was written. Delete files or upload less."
    elif exc.code == "too_large":
        message += " (MAX_UPLOAD_MB); nothing was written."
    error = kind(message)
    error.code = exc.code
    return error
