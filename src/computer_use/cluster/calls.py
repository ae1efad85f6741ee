"""Calls from an API replica to a session actor, with the service's errors."""

from __future__ import annotations

import asyncio
from typing import Any

from ray.exceptions import RayActorError, RayTaskError

from computer_use import errors
from computer_use.desktops.errors import DesktopError

CALL_TIMEOUT = 60.0


async def call(ref: Any, *, timeout: float = CALL_TIMEOUT) -> Any:
    """Awaits an actor call: the service's own refusals and the desktop's errors come back as
    they were raised on the host; a dead or unreachable actor is a 503 saying so."""
    try:
        return await asyncio.wait_for(ref, timeout)
    except RayTaskError as exc:
        if isinstance(exc.cause, errors.DomainError | DesktopError):
            raise exc.cause from None
        raise
    except RayActorError as exc:
        raise errors.ServiceUnavailable(
            f"The session's desktop host cannot be reached ({type(exc).__name__}); "
            "its status will say whether it was lost."
        ) from None
    except TimeoutError:
        raise errors.ServiceUnavailable(
            f"The session's desktop host did not answer within {timeout:.0f} s."
        ) from None
