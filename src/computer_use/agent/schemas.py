"""What GET /api/v1/models returns: the model catalogue, as of today."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field


class ModelPublic(BaseModel):
    id: str = Field(description="The id to pass as `model` when creating a session.")
    name: str
    family: Literal["opus", "sonnet", "haiku", "fable"]
    status: Literal["current", "legacy", "deprecated", "retired"] = Field(
        description="Retired models are refused at session creation; deprecated ones still work."
    )
    retires_on: date | None = Field(
        default=None, description="First day the model no longer answers (Claude API)."
    )
    replacement: str | None = Field(default=None, description="What to use instead.")
    tool_path: Literal["toolset", "computer_20251124", "computer_20250124"] = Field(
        description="How the agent drives the desktop on the Claude API: the GA computer toolset "
        "(computer_toolset_20260801) or a beta computer tool. On Bedrock a toolset model uses "
        "computer_20251124 while the toolset is beta there."
    )
    beta: str | None = Field(description="anthropic-beta header the tool path needs, if any.")
    thinking: Literal["adaptive_only", "between_tools", "adaptive", "budget"] = Field(
        description="adaptive_only: always on; between_tools: adaptive, lowest setting "
        "between_tools; adaptive: adaptive thinking; budget: extended thinking with a budget."
    )
    input_price_per_mtok: float = Field(description="USD per million input tokens.")
    output_price_per_mtok: float = Field(description="USD per million output tokens.")


class ModelsPublic(BaseModel):
    default_model: str
    items: list[ModelPublic]
