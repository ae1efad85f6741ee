"""The model catalogue: one table of the Claude models we know, and the rules that follow from it.

Each row says which computer tool path a model takes, how it thinks, where it is in its life
(current / legacy / deprecated / retired, with dates) and what it costs. Sources: the SDK's model
list and deprecation table (anthropic 2.14.0 `types/model_param.py`, `_data/deprecated_models.py`),
the computer-use tool page, the models overview and the per-model pages (prices per million
tokens, Claude API list prices). Lifecycle dates are those of Anthropic-operated platforms.

Names are matched on family and version wherever they appear (first-party
"claude-sonnet-4-5-20250929", Bedrock "us.anthropic.claude-sonnet-4-5-20250929-v1:0", Vertex
"claude-sonnet-4-5@20250929"). A name not in the table passes through with the newest tool path
and adaptive thinking: new models accept those, and if the API refuses, that refusal reaches the
user as an `error` event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

ToolPath = Literal["toolset", "computer_20251124", "computer_20250124"]
# adaptive_only: thinking is always on (no `disabled`, no `budget_tokens`).
# between_tools: adaptive, and `between_tools` is the lowest setting (Sonnet 5.5).
# adaptive: adaptive thinking; older models of this style still accept a budget.
# budget: extended thinking with `budget_tokens` only.
ThinkingStyle = Literal["adaptive_only", "between_tools", "adaptive", "budget"]
Status = Literal["current", "legacy", "deprecated", "retired"]
Provider = Literal["anthropic", "bedrock", "vertex"]

TOOLSET = "computer_toolset_20260801"
# Prompt caching's prices, as multiples of a model's input price (the pricing page): writing
# the cache (5-minute lifetime, the only one this service asks for) and reading from it.
CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1
BETA_FOR_TOOL: dict[ToolPath, str | None] = {
    "toolset": None,  # GA on the Claude API and Google Cloud: no beta header
    "computer_20251124": "computer-use-2025-11-24",
    "computer_20250124": "computer-use-2025-01-24",
}
# The toolset is GA on the Claude API and Google Cloud, beta on Bedrock (and Foundry): there a
# toolset model keeps the beta computer_20251124 tool until the toolset is GA.
TOOLSET_GA_PROVIDERS: frozenset[str] = frozenset({"anthropic", "vertex"})


# "claude-<family>-<major>[-<minor>]" where minor is one or two digits (never the 8-digit date).
_NAME = re.compile(r"claude-(?P<family>[a-z]+)-(?P<major>\d+)(?:[-.](?P<minor>\d{1,2}))?(?!\d)")


def _key(model: str) -> tuple[str, int, int | None] | None:
    match = _NAME.search(model.lower())
    if match is None:
        return None
    minor = match.group("minor")
    return match.group("family"), int(match.group("major")), int(minor) if minor else None


@dataclass(frozen=True)
class ModelEntry:
    id: str
    name: str
    family: Literal["opus", "sonnet", "haiku", "fable"]
    version: tuple[int, int | None]  # (4, None) is "claude-opus-4"
    tool: ToolPath
    thinking: ThinkingStyle
    lifecycle: Literal["current", "legacy"]  # before any deprecation
    input_price: float  # USD per million input tokens
    output_price: float  # USD per million output tokens
    deprecated: bool = False  # in the SDK's deprecation table (it warns on every use)
    retires_on: date | None = None  # retired from this date on, inclusive
    replacement: str | None = None
    generation_55: bool = False  # the 5.5 generation's request rules apply

    def status(self, today: date) -> Status:
        if self.retires_on is not None and today >= self.retires_on:
            return "retired"
        if self.deprecated:
            return "deprecated"
        return self.lifecycle

    @property
    def beta(self) -> str | None:
        return BETA_FOR_TOOL[self.tool]


def _m(
    id: str,
    name: str,
    tool: ToolPath,
    thinking: ThinkingStyle,
    lifecycle: Literal["current", "legacy"],
    prices: tuple[float, float],
    **extra: object,
) -> ModelEntry:
    key = _key(id)
    assert key is not None, id
    family, major, minor = key
    return ModelEntry(
        id=id,
        name=name,
        family=family,  # type: ignore[arg-type]  # the table only names known families
        version=(major, minor),
        tool=tool,
        thinking=thinking,
        lifecycle=lifecycle,
        input_price=prices[0],
        output_price=prices[1],
        **extra,  # type: ignore[arg-type]  # deprecation, replacement, generation_55
    )


# Newest first; GET /api/v1/models lists them in this order.
CATALOGUE: tuple[ModelEntry, ...] = (
    _m("claude-fable-5-1", "Claude Fable 5.1", "toolset", "adaptive_only", "current", (10, 50),
       generation_55=True),
    _m("claude-opus-5-5", "Claude Opus 5.5", "toolset", "adaptive_only", "current", (4, 20),
       generation_55=True),
    _m("claude-sonnet-5-5", "Claude Sonnet 5.5", "toolset", "between_tools", "current", (2, 10),
       generation_55=True),
    # "From $0.10 / $0.50": the lower band (prompts up to 100K tokens).
    _m("claude-haiku-5-5", "Claude Haiku 5.5", "toolset", "adaptive", "current", (0.10, 0.50),
       generation_55=True),
    _m("claude-opus-5", "Claude Opus 5", "toolset", "adaptive", "legacy", (5, 25)),
    _m("claude-sonnet-5", "Claude Sonnet 5", "toolset", "adaptive", "legacy", (2, 10)),
    _m("claude-opus-4-8", "Claude Opus 4.8", "toolset", "adaptive_only", "legacy", (5, 25)),
    _m("claude-opus-4-7", "Claude Opus 4.7", "computer_20251124", "adaptive_only", "legacy",
       (5, 25)),
    _m("claude-opus-4-6", "Claude Opus 4.6", "computer_20251124", "adaptive", "legacy", (5, 25)),
    _m("claude-sonnet-4-6", "Claude Sonnet 4.6", "computer_20251124", "adaptive", "legacy",
       (3, 15)),
    _m("claude-opus-4-5-20251101", "Claude Opus 4.5", "computer_20251124", "budget", "legacy",
       (5, 25), deprecated=True, retires_on=date(2027, 1, 22),
       replacement="claude-opus-5-5"),
    _m("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "computer_20250124", "budget", "legacy",
       (1, 5)),
    _m("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "computer_20250124", "budget",
       "legacy", (3, 15), deprecated=True, retires_on=date(2026, 11, 30),
       replacement="claude-sonnet-5-5"),
    _m("claude-opus-4-1-20250805", "Claude Opus 4.1", "computer_20250124", "budget", "legacy",
       (15, 75), deprecated=True, retires_on=date(2026, 8, 5),
       replacement="claude-opus-5-5"),
    _m("claude-opus-4-20250514", "Claude Opus 4", "computer_20250124", "budget", "legacy",
       (15, 75), deprecated=True, retires_on=date(2026, 6, 15),
       replacement="claude-opus-5-5"),
    _m("claude-sonnet-4-20250514", "Claude Sonnet 4", "computer_20250124", "budget", "legacy",
       (3, 15), deprecated=True, retires_on=date(2026, 6, 15),
       replacement="claude-sonnet-5-5"),
)  # fmt: skip

_BY_KEY: dict[tuple[str, int, int | None], ModelEntry] = {
    (e.family, *e.version): e for e in CATALOGUE
}


def today_utc() -> date:
    return datetime.now(UTC).date()


def lookup(model: str) -> ModelEntry | None:
    """The catalogue row of `model` (any alias, date suffix or platform spelling), if known."""
    key = _key(model)
    return _BY_KEY.get(key) if key is not None else None


def cost_usd(
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
) -> float | None:
    """What this usage costs at the model's list prices; None for a model without prices."""
    entry = lookup(model)
    if entry is None:
        return None
    per_input = entry.input_price / 1_000_000
    return (
        input_tokens * per_input
        + cache_creation_input_tokens * per_input * CACHE_WRITE_FACTOR
        + cache_read_input_tokens * per_input * CACHE_READ_FACTOR
        + output_tokens * entry.output_price / 1_000_000
    )


class RetiredModel(ValueError):
    """The model no longer answers; the message says since when and what to use instead."""


def check_usable(model: str, today: date | None = None) -> str | None:
    """The one rule for "may a session use this model": raises RetiredModel for a retired model,
    returns a warning for a deprecated one, None otherwise (unknown names pass)."""
    entry = lookup(model)
    if entry is None:
        return None
    today = today or today_utc()
    status = entry.status(today)
    if status == "retired":
        assert entry.retires_on is not None
        raise RetiredModel(
            f"Model {model!r} ({entry.name}) was retired on {entry.retires_on.isoformat()} and no "
            f"longer answers; use {entry.replacement} instead (GET /api/v1/models lists the "
            "models)."
        )
    if status == "deprecated":
        assert entry.retires_on is not None
        return (
            f"{entry.name} is deprecated and retires on {entry.retires_on.isoformat()}; "
            f"move to {entry.replacement}."
        )
    return None


def notice(model: str, today: date | None = None) -> str | None:
    """What a session on `model` should tell its user: deprecated, or retired since it began."""
    try:
        return check_usable(model, today)
    except RetiredModel as exc:
        return str(exc)


@dataclass(frozen=True)
class ModelPlan:
    """What a request to this model on this provider carries."""

    tool: ToolPath
    beta: str | None
    thinking: ThinkingStyle
    zoom: bool
    generation_55: bool

    @property
    def toolset(self) -> bool:
        return self.tool == "toolset"


NEWEST = ModelPlan(tool="toolset", beta=None, thinking="adaptive_only", zoom=True,
                   generation_55=True)  # fmt: skip


def plan_for(model: str, provider: str = "anthropic") -> ModelPlan:
    entry = lookup(model)
    if entry is None:
        tool: ToolPath = NEWEST.tool
        thinking, generation_55 = NEWEST.thinking, NEWEST.generation_55
    else:
        tool, thinking, generation_55 = entry.tool, entry.thinking, entry.generation_55
    if tool == "toolset" and provider not in TOOLSET_GA_PROVIDERS:
        tool = "computer_20251124"
    return ModelPlan(
        tool=tool,
        beta=BETA_FOR_TOOL[tool],
        thinking=thinking,
        zoom=tool != "computer_20250124",
        generation_55=generation_55,
    )
