"""What the Claude API refuses depending on the model, and the computer toolset's wire rules.

The API's own knowledge, kept here apart from the agent's catalogue on purpose: a test passes
only when the agent's choices agree with what the API accepts. Sources: the computer-use tool
page (toolset-only 5.5 generation, the toolset's supported models), the Sonnet 5.5 / Opus 5.5
"what's new" pages (thinking and tool_choice refusals), the SDK's toolset types.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from typing import Any

from anthropic.types.beta import BetaComputerMemberName

from computer_use.loopback.errors import InvalidRequest

TOOLSET_TYPES = {"computer_toolset_20260801": "computer"}
COMPUTER_MEMBERS: frozenset[str] = frozenset(typing.get_args(BetaComputerMemberName))
MEMBER_CONFIG_KEYS = frozenset({"enabled", "defer_loading"})
TOOLSET_KEYS = frozenset({"type", "configs", "cache_control"})

# (family, major, minor) as in "claude-sonnet-5-5"; minor None for "claude-opus-5".
Key = tuple[str, int, int | None]
_NAME = re.compile(r"claude-(?P<family>[a-z]+)-(?P<major>\d+)(?:[-.](?P<minor>\d{1,2}))?(?!\d)")

# On the Claude API these take computer use only through the toolset.
TOOLSET_ONLY: frozenset[Key] = frozenset(
    {("sonnet", 5, 5), ("opus", 5, 5), ("haiku", 5, 5), ("fable", 5, 1)}
)
# The toolset's supportedModels (the computer-use tool page).
TOOLSET_MODELS: frozenset[Key] = TOOLSET_ONLY | {
    ("mythos", 5, 1), ("fable", 5, None), ("mythos", 5, None), ("opus", 5, None),
    ("sonnet", 5, None), ("opus", 4, 8),
}  # fmt: skip
# Models older than computer_20251124: they take computer_20250124 only.
OLD_COMPUTER_ONLY: frozenset[Key] = frozenset(
    {("sonnet", 4, 5), ("haiku", 4, 5), ("opus", 4, 1), ("opus", 4, None), ("sonnet", 4, None)}
)
# Extended thinking with a budget only: no adaptive thinking.
BUDGET_ONLY: frozenset[Key] = OLD_COMPUTER_ONLY | {("opus", 4, 5)}
ALWAYS_THINKING: frozenset[Key] = frozenset({("opus", 5, 5), ("fable", 5, 1)})
BETWEEN_TOOLS: frozenset[Key] = frozenset({("sonnet", 5, 5)})
NO_FORCED_TOOL_CHOICE: frozenset[Key] = TOOLSET_ONLY


def model_key(model: str) -> Key | None:
    match = _NAME.search(model.lower())
    if match is None:
        return None
    minor = match.group("minor")
    return match.group("family"), int(match.group("major")), int(minor) if minor else None


def validate_toolset(i: int, tool: Mapping[str, Any]) -> str:
    """Checks one toolset entry of `tools`; returns its family ("computer")."""
    kind = str(tool.get("type"))
    extra = sorted(set(tool) - TOOLSET_KEYS)
    if extra:
        raise InvalidRequest(f"tools.{i}.{kind}.{extra[0]}: Extra inputs are not permitted")
    configs = tool.get("configs") or {}
    if not isinstance(configs, dict):
        raise InvalidRequest(f"tools.{i}.{kind}.configs: Input should be a valid object")
    for name, config in configs.items():
        if name not in COMPUTER_MEMBERS:
            raise InvalidRequest(f"tools.{i}.{kind}.configs.{name}: Extra inputs are not permitted")
        if config is not None and (
            not isinstance(config, dict) or set(config) - MEMBER_CONFIG_KEYS
        ):
            raise InvalidRequest(
                f"tools.{i}.{kind}.configs.{name}: only `enabled` and `defer_loading` are allowed"
            )
    return TOOLSET_TYPES[kind]


def enabled_members(tools: list[Any]) -> frozenset[str]:
    members: set[str] = set()
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") in TOOLSET_TYPES:
            configs = tool.get("configs") or {}
            members |= {
                m for m in COMPUTER_MEMBERS if (configs.get(m) or {}).get("enabled") is not False
            }
    return frozenset(members)


def validate_for_model(body: Mapping[str, Any]) -> None:
    """The refusals that depend on the model: tool versions, thinking, tool_choice."""
    model = str(body.get("model"))
    key = model_key(model)
    if key is None:
        return
    for tool in body.get("tools") or []:
        kind = str(tool.get("type", "")) if isinstance(tool, dict) else ""
        if kind in ("computer_20251124", "computer_20250124") and key in TOOLSET_ONLY:
            raise InvalidRequest(
                f"{kind} is not supported on {model}; use computer_toolset_20260801"
            )
        if kind in TOOLSET_TYPES and key not in TOOLSET_MODELS:
            raise InvalidRequest(
                f"{kind} is not supported on {model}; use computer_20251124 or computer_20250124"
            )
        if kind == "computer_20251124" and key in OLD_COMPUTER_ONLY:
            raise InvalidRequest(f"{kind} is not supported on {model}; use computer_20250124")
    _validate_thinking(body, key)
    choice = body.get("tool_choice")
    forced = isinstance(choice, dict) and choice.get("type") in ("any", "tool")
    if key in NO_FORCED_TOOL_CHOICE and forced:
        assert isinstance(choice, dict)
        raise InvalidRequest(
            f'tool_choice.type "{choice["type"]}" (forced tool use) is not supported for '
            'this model. Use "auto" or "none".'
        )


def _validate_thinking(body: Mapping[str, Any], key: Key) -> None:
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    effort = (body.get("output_config") or {}).get("effort")
    adaptive_hint = (
        'Use "thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
    )
    if kind in ("disabled", "enabled") and (key in ALWAYS_THINKING or key in TOOLSET_ONLY):
        hint = (
            'Use "thinking.type.between_tools" for the lowest setting.'
            if kind == "disabled" and key in BETWEEN_TOOLS
            else adaptive_hint
        )
        raise InvalidRequest(f'"thinking.type.{kind}" is not supported for this model. {hint}')
    if kind == "between_tools":
        if key not in BETWEEN_TOOLS:
            raise InvalidRequest('"thinking.type.between_tools" is not supported for this model.')
        if effort in ("xhigh", "max"):
            raise InvalidRequest(
                f'"thinking.type.between_tools" cannot be combined with effort "{effort}"; '
                "use low, medium or high."
            )
    if kind == "adaptive" and key in BUDGET_ONLY:
        raise InvalidRequest(
            '"thinking.type.adaptive" is not supported for this model. Use "thinking.type.enabled"'
            ' with "budget_tokens".'
        )
