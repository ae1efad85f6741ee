"""How the cluster's named actors are named and found, from any process connected to it: a
session's actor `session-<id>`, a desktop host's keeper of recordings `recordings-<host>`
(its INSTANCE_NAME), in the namespace `computer-use`; desktop hosts offer the `desktop`
resource."""

from __future__ import annotations

from typing import Any

import ray

from computer_use import errors
from computer_use.sessions.models import SessionStatus

NAMESPACE = "computer-use"
DESKTOP_RESOURCE = "desktop"
SESSION_PREFIX = "session-"


def actor_name(session_id: str) -> str:
    return f"{SESSION_PREFIX}{session_id}"


def keeper_name(host: str) -> str:
    """The name of the recordings keeper of the desktop host named `host` (kept_recordings.py)."""
    return f"recordings-{host}"


def session_actor(session_id: str) -> Any:
    """The live actor of a session; ValueError when it has none."""
    return ray.get_actor(actor_name(session_id), namespace=NAMESPACE)


def find_session_actor(session_id: str) -> Any | None:
    """The live actor of a session, or None when it has none (ended, or its host lost)."""
    try:
        return session_actor(session_id)
    except ValueError:  # Ray: no actor by that name
        return None


def find_keeper(host: str) -> Any | None:
    """The live recordings keeper of a desktop host, or None (the host is down, or restarted
    and no session has started on it since)."""
    try:
        return ray.get_actor(keeper_name(host), namespace=NAMESPACE)
    except ValueError:
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


def actor_of(session_id: str) -> Any:
    """The session's actor; DesktopNotRunning when it has none (ended, or its host lost)."""
    actor = find_session_actor(session_id)
    if actor is None:
        raise errors.DesktopNotRunning(SessionStatus.ERROR)
    return actor
