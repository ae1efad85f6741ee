"""The one table that picks tool versions, beta flags and the thinking style from a model name.

Older tool versions are not guaranteed to work with newer models, and the newest computer tool
is refused by older ones, so the choice follows the model. Names are matched on their family
and version wherever they appear (first-party "claude-sonnet-4-5-20250929", Bedrock
"us.anthropic.claude-sonnet-4-5-20250929-v1:0", Vertex "claude-sonnet-4-5@20250929").
Unknown names get the newest tools: new models keep accepting them, old ones are retired.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

ThinkingStyle = Literal["adaptive", "adaptive_only", "budget"]


@dataclass(frozen=True)
class ToolVersions:
    computer: Literal["computer_20251124", "computer_20250124"]
    beta: str
    zoom: bool
    thinking: ThinkingStyle
    bash: str = "bash_20250124"
    editor: str = "text_editor_20250728"
    editor_name: str = "str_replace_based_edit_tool"

    @property
    def adaptive_thinking(self) -> bool:
        return self.thinking != "budget"


CURRENT = ToolVersions(
    computer="computer_20251124", beta="computer-use-2025-11-24", zoom=True, thinking="adaptive"
)
CURRENT_ADAPTIVE_ONLY = ToolVersions(
    computer="computer_20251124",
    beta="computer-use-2025-11-24",
    zoom=True,
    thinking="adaptive_only",
)
CURRENT_BUDGET = ToolVersions(
    computer="computer_20251124", beta="computer-use-2025-11-24", zoom=True, thinking="budget"
)
PREVIOUS = ToolVersions(
    computer="computer_20250124", beta="computer-use-2025-01-24", zoom=False, thinking="budget"
)

# (family, major, minor) -> versions; minor None is the ".0" release (claude-opus-4-20250514).
MODEL_TABLE: dict[tuple[str, int, int | None], ToolVersions] = {
    ("opus", 4, None): PREVIOUS,
    ("sonnet", 4, None): PREVIOUS,
    ("opus", 4, 1): PREVIOUS,
    ("sonnet", 4, 5): PREVIOUS,
    ("haiku", 4, 5): PREVIOUS,
    ("opus", 4, 5): CURRENT_BUDGET,  # newest computer tool, but no adaptive thinking yet
    ("sonnet", 4, 6): CURRENT,
    ("opus", 4, 6): CURRENT,
    ("opus", 4, 7): CURRENT_ADAPTIVE_ONLY,
    ("opus", 4, 8): CURRENT_ADAPTIVE_ONLY,
}
DEFAULT = CURRENT_ADAPTIVE_ONLY  # unknown and newer models: newest tools, adaptive thinking

# "claude-<family>-<major>[-<minor>]" where minor is one or two digits (never the 8-digit date).
_NAME = re.compile(r"claude-(?P<family>[a-z]+)-(?P<major>\d+)(?:[-.](?P<minor>\d{1,2}))?(?!\d)")


def parse_model(model: str) -> tuple[str, int, int | None] | None:
    match = _NAME.search(model.lower())
    if match is None:
        return None
    minor = match.group("minor")
    return match.group("family"), int(match.group("major")), int(minor) if minor else None


def versions_for(model: str) -> ToolVersions:
    key = parse_model(model)
    return MODEL_TABLE.get(key, DEFAULT) if key is not None else DEFAULT
