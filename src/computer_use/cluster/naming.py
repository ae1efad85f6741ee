"""How a session's actor is named and found: `session-<id>` in the namespace `computer-use`,
from any process connected to the cluster; desktop hosts offer the `desktop` resource."""

from __future__ import annotations

from typing import Any

import ray

NAMESPACE = "computer-use"
DESKTOP_RESOURCE = "desktop"


def actor_name(session_id: str) -> str:
    return f"session-{session_id}"


def session_actor(session_id: str) -> Any:
    """The live actor of a session; ValueError when it has none."""
    return ray.get_actor(actor_name(session_id), namespace=NAMESPACE)


def find_session_actor(session_id: str) -> Any | None:
    """The live actor of a session, or None when it has none (ended, or its host lost)."""
    try:
        return session_actor(session_id)
    except ValueError:  # Ray: no actor by that name
        return None
