"""What every tool returns, and the error that turns bad input into an is_error result."""

from __future__ import annotations

from dataclasses import dataclass


class ToolError(Exception):
    """Bad input or a failed action: the model sees the message as an is_error tool_result and
    can correct itself; the run goes on."""


@dataclass(frozen=True)
class ToolResult:
    output: str = ""
    error: str | None = None
    image: bytes | None = None  # PNG already sized for the API

    @property
    def is_error(self) -> bool:
        return self.error is not None

    @property
    def text(self) -> str:
        return self.error if self.error is not None else self.output
