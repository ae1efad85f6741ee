"""How a run reaches the outside world: events, images and history go through these hooks, so
the loop knows nothing of the database, HTTP or SSE."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class RunHooks(Protocol):
    async def emit(self, type: str, data: Mapping[str, object]) -> None:
        """Publish one event (see agent.events for types and payloads), in order."""

    async def save_image(self, png: bytes) -> str:
        """Store a screenshot the model was shown; return its image id."""

    def image_url(self, image_id: str) -> str:
        """The URL clients fetch a stored image from (put in tool_result events)."""

    async def append_message(self, message: dict[str, Any]) -> None:
        """Persist one completed turn, in storage form (images as stored references). Called
        for the user's prompt, each assistant turn and each user turn of tool results. An
        assistant turn carries a `usage` key (that request's tokens) beside role and content:
        it is not part of the API form."""
