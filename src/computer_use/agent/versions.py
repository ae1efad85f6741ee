"""The tool versions, beta flag and thinking style of one request, read off the model catalogue.

The choice follows the model (agent.catalogue) and the provider: the GA computer toolset for the
5.x generation on the Claude API and Google Cloud, the beta `computer_20251124` (zoom) where the
toolset is still beta or the model predates it, `computer_20250124` for the Claude 4 generation.
"""

from __future__ import annotations

from dataclasses import dataclass

from computer_use.agent.catalogue import TOOLSET, ThinkingStyle, plan_for


@dataclass(frozen=True)
class ToolVersions:
    computer: str  # "computer_toolset_20260801", "computer_20251124" or "computer_20250124"
    beta: str | None  # the anthropic-beta flag the computer tool needs (None: GA)
    zoom: bool
    thinking: ThinkingStyle
    generation_55: bool = False  # no `disabled` thinking, no budget, no forced tool_choice
    bash: str = "bash_20250124"
    editor: str = "text_editor_20250728"
    editor_name: str = "str_replace_based_edit_tool"

    @property
    def toolset(self) -> bool:
        return self.computer == TOOLSET

    @property
    def adaptive_thinking(self) -> bool:
        return self.thinking != "budget"


def versions_for(model: str, provider: str = "anthropic") -> ToolVersions:
    plan = plan_for(model, provider)
    return ToolVersions(
        computer=TOOLSET if plan.toolset else plan.tool,
        beta=plan.beta,
        zoom=plan.zoom,
        thinking=plan.thinking,
        generation_55=plan.generation_55,
    )
