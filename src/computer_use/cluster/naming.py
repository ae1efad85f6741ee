"""How a session's actor is named and found: `session-<id>` in the namespace `computer-use`,
from any process connected to the cluster; desktop hosts offer the `desktop` resource."""

from __future__ import annotations

from typing import Any

import ray

NAMESPACE = "computer-use"
DESKTOP_RESOURCE = "desktop"
SESSION_PREFIX = "session-"


def actor_name(session_id: str) -> str:
    return f"{SESSION_PREFIX}{session_id}"


def session_actor(session_id: str) -> Any:
    """The live actor of a session; ValueError when it has none."""
    return ray.get_actor(actor_name(session_id), namespace=NAMESPACE)


def find_session_actor(session_id: str) -> Any | None:
    """The live actor of a session, or None when it has none (ended, or its host lost)."""
    try:
        return session_actor(session_id)
    except ValueError:  # Ray: no actor by that name
        return None


def session_ids() -> list[str]:
    """The ids of every session actor of the cluster now (pooled ones included)."""
    named = ray.util.list_named_actors(all_namespaces=True)
    return [
        entry["name"].removeprefix(SESSION_PREFIX)
        for entry in named
        if entry["namespace"] == NAMESPACE and entry["name"].startswith(SESSION_PREFIX)
    ]


def free_desktops() -> float:
    """The cluster's free session slots now (Ray's view; a start may still take the last)."""
    return float(ray.available_resources().get(DESKTOP_RESOURCE, 0))  # type: ignore[no-untyped-call]
