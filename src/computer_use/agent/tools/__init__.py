"""The agent's tools, and SessionTools: the set one session keeps for its whole life."""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any

from anthropic.types.beta import BetaToolUseBlock

from computer_use.agent import questions
from computer_use.agent.tools.approvals import ActionApprover
from computer_use.agent.tools.base import ToolError, ToolResult
from computer_use.agent.tools.bash import BashSession, BashTool
from computer_use.agent.tools.computer import ComputerTool
from computer_use.agent.tools.describe import describe_tool_use
from computer_use.agent.tools.edit import EditTool
from computer_use.agent.tools.toolset import DesktopToolset
from computer_use.agent.versions import ToolVersions
from computer_use.desktop_port import DesktopPort

log = logging.getLogger(__name__)

__all__ = [
    "ActionApprover",
    "BashSession",
    "BashTool",
    "ComputerTool",
    "DesktopToolset",
    "EditTool",
    "SessionTools",
    "ToolError",
    "ToolResult",
    "describe_tool_use",
]


class SessionTools:
    """computer + bash + editor over one desktop. Keep one per session (not per run): the
    bash shell inside persists across messages. Close it when the session ends.

    The computer is served either as the beta `computer` tool or as the GA computer toolset
    (`toolset`, the SDK's driver over the same actions), as the model's versions say. The
    toolset asks `approver` before every member call: the session's one approval seam."""

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
        self.approver = ActionApprover()
        self.toolset = DesktopToolset(self.computer, confirm=self.approver)
        self.bash_session = BashSession(
            desktop, timeout=bash_timeout, output_limit=bash_output_limit
        )
        self.bash = BashTool(self.bash_session)
        self.editor = EditTool(desktop, roots=(home, "/tmp"), max_characters=editor_max_characters)

    def definitions(self, versions: ToolVersions) -> list[dict[str, Any]]:
        computer = dict(self.toolset.to_dict()) if versions.toolset else None
        return [
            computer or self.computer.definition(versions),
            self.bash.definition(versions),
            self.editor.definition(versions),
            questions.DEFINITION,
        ]

    async def run(
        self,
        name: str,
        params: Mapping[str, Any],
        versions: ToolVersions,
        tool_use_id: str | None = None,
    ) -> ToolResult:
        """Run one tool call, once `approver` lets it. Never raises for bad input or a failed
        tool: that becomes an is_error result the model can react to. Cancellation
        propagates."""
        try:
            if name == self.computer.name and versions.toolset:
                raise ToolError(
                    "This session uses the computer toolset: call its members (screenshot, "
                    "left_click, ...) as tools of their own; nothing of this call was run."
                )
            await self.approver.check(name, params, tool_use_id=tool_use_id)
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

    async def run_member(
        self, tool_use_id: str, toolset_name: str, name: str, params: Mapping[str, Any]
    ) -> ToolResult:
        """Run one toolset member call through the SDK's driver (input checks, unknown or
        disabled members, `confirm`, rendering): never raises for the model's mistakes."""
        if toolset_name != self.toolset.toolset_name:
            return ToolResult(
                error=f"Unknown toolset {toolset_name!r}; this session has only "
                f"the {self.toolset.toolset_name!r} toolset."
            )
        block = BetaToolUseBlock(
            type="tool_use",
            id=tool_use_id,
            name=name,
            input=dict(params),
            toolset_name=toolset_name,
        )
        result = await self.toolset.tool_result(block)
        content = result.get("content")
        parts = [content] if isinstance(content, str) else list(content or [])
        texts: list[str] = []
        image: bytes | None = None
        for part in parts:
            if isinstance(part, str):
                texts.append(part)
            elif part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "image" and image is None:
                source = part.get("source")
                if isinstance(source, Mapping) and source.get("type") == "base64":
                    image = base64.b64decode(str(source.get("data", "")))
        text = "\n".join(t for t in texts if t)
        if result.get("is_error"):
            return ToolResult(error=text or "The computer action failed.")
        return ToolResult(output=text, image=image)

    async def aclose(self) -> None:
        await self.toolset.close()
        await self.bash_session.aclose()
