"""The agent's tools, and SessionTools: the set one session keeps for its whole life."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from computer_use.agent.desktop import DesktopPort
from computer_use.agent.tools.base import ToolError, ToolResult
from computer_use.agent.tools.bash import BashSession, BashTool
from computer_use.agent.tools.computer import ComputerTool
from computer_use.agent.tools.describe import describe_tool_use
from computer_use.agent.tools.edit import EditTool
from computer_use.agent.versions import ToolVersions

log = logging.getLogger(__name__)

__all__ = [
    "BashSession",
    "BashTool",
    "ComputerTool",
    "EditTool",
    "SessionTools",
    "ToolError",
    "ToolResult",
    "describe_tool_use",
]


class SessionTools:
    """computer + bash + editor over one desktop. Keep one per session (not per run): the
    bash shell inside persists across messages. Close it when the session ends."""

    def __init__(
        self,
        desktop: DesktopPort,
        *,
        home: str = "/home/user",
        bash_timeout: float = 120.0,
        bash_output_limit: int = 16 * 1024,
        settle_timeout: float = 2.0,
        editor_max_characters: int | None = 20_000,
    ) -> None:
        self.desktop = desktop
        self.home = home
        self.computer = ComputerTool(desktop, settle_timeout=settle_timeout)
        self.bash_session = BashSession(
            desktop, timeout=bash_timeout, output_limit=bash_output_limit
        )
        self.bash = BashTool(self.bash_session)
        self.editor = EditTool(desktop, roots=(home, "/tmp"), max_characters=editor_max_characters)

    def definitions(self, versions: ToolVersions) -> list[dict[str, Any]]:
        return [
            self.computer.definition(versions),
            self.bash.definition(versions),
            self.editor.definition(versions),
        ]

    async def run(self, name: str, params: Mapping[str, Any], versions: ToolVersions) -> ToolResult:
        """Run one tool call. Never raises for bad input or a failed tool: that becomes an
        is_error result the model can react to. Cancellation propagates."""
        try:
            if name == self.computer.name:
                return await self.computer(params, versions)
            if name == self.bash.name:
                return await self.bash(params)
            if name == versions.editor_name:
                return await self.editor(params)
            raise ToolError(f"unknown tool {name!r}")
        except ToolError as exc:
            return ToolResult(error=str(exc))
        except Exception as exc:
            # A bug or a dead desktop: log it with context once, and let the model know.
            log.exception("tool %s failed on input %r", name, dict(params))
            return ToolResult(error=f"The {name} tool failed: {type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        await self.bash_session.aclose()
