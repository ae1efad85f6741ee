"""What a run asks of the model: its settings (`RunConfig`) and the thinking parameters each
model accepts (`thinking_params`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from computer_use.agent.versions import ToolVersions

Effort = Literal["low", "medium", "high", "xhigh", "max"]
# Thinking text between tool calls comes back only with this display (the 5.5 generation
# defaults to "omitted", which leaves the stream silent between actions).
THINKING_DISPLAY = "summarized"


@dataclass(frozen=True)
class RunConfig:
    model: str
    provider: str = "anthropic"  # API_PROVIDER: decides where the computer toolset is GA
    max_tokens: int = 8192
    max_steps: int = 50  # model requests per run
    stuck_repeats: int = 5  # STUCK_REPEATS (agent/stuck.py); 0 = off
    stuck_steps: int = 10  # STUCK_STEPS
    # Adaptive where supported, else a budget of thinking_budget tokens. Off means the model's
    # lowest setting: none sent, or `between_tools` on Sonnet 5.5; a model whose thinking is
    # always on keeps it.
    thinking: bool = True
    thinking_budget: int = 2048
    effort: Effort | None = None  # output_config.effort (AGENT_EFFORT); None: model default
    images_to_keep: int = 10
    image_chunk: int = 5
    system_prompt_suffix: str = ""
    today: date | None = None


def thinking_params(config: RunConfig, versions: ToolVersions) -> dict[str, Any]:
    """`thinking` and `output_config` for this model. Never what it refuses: no budget and no
    `disabled` to the 5.5 generation or to a model whose thinking is always on, and no
    `between_tools` with effort xhigh/max (Sonnet 5.5 refuses that pair)."""
    style, effort = versions.thinking, config.effort
    params: dict[str, Any] = {}
    if style == "budget":
        if config.thinking and 1024 <= config.thinking_budget < config.max_tokens:
            params["thinking"] = {"type": "enabled", "budget_tokens": config.thinking_budget}
        return params
    adaptive = {"type": "adaptive", "display": THINKING_DISPLAY}
    if config.thinking or style == "adaptive_only":
        params["thinking"] = adaptive
    elif style == "between_tools":
        on_high = effort in ("xhigh", "max")
        params["thinking"] = adaptive if on_high else {"type": "between_tools"}
    if effort and "thinking" in params:
        params["output_config"] = {"effort": effort}
    return params
