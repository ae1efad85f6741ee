"""Budgets: caps on what runs may spend, and the meter that counts it.

A session's `budget` caps everything its runs spend together (kept in `sessions.spent`); a
message may carry its own `budget`, which caps that run alone. Either one reached ends the run
with stop reason `budget`. Four kinds, each optional:

- `max_steps`: model requests (as for AGENT_MAX_STEPS);
- `max_tokens`: every token the model processed: input, cache writes, cache reads and output;
- `max_cost_usd`: the same tokens at the model's list prices (agent.catalogue.cost_usd);
- `max_seconds`: wall time of the runs.

The loop asks `BudgetMeter.reached` before each model request (every kind) and before each tool
call (tokens, cost, time: a step already paid for runs its tools only while the money lasts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from computer_use.agent import catalogue
from computer_use.agent.events import Usage

CapName = Literal["max_steps", "max_tokens", "max_cost_usd", "max_seconds"]
Scope = Literal["run", "session"]


@dataclass(frozen=True)
class Budget:
    """Caps, each None when not set."""

    max_steps: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_seconds: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Budget | None:
        if not data:
            return None
        budget = cls(**{f.name: data.get(f.name) for f in fields(cls)})
        return budget if budget.to_dict() else None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def check(model: str, budget: Budget | None) -> None:
    """Raises ValueError when this budget cannot be kept for `model` (the message says why)."""
    unpriced = catalogue.lookup(model) is None
    if budget is not None and budget.max_cost_usd is not None and unpriced:
        raise ValueError(
            f"max_cost_usd needs the model's prices, and the catalogue has none for "
            f"{model!r}; cap max_tokens instead (GET /api/v1/models lists priced models)."
        )


@dataclass
class Totals:
    """What was spent: model requests, tokens by kind, USD (None: no prices), seconds."""

    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float | None = 0.0
    seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Totals:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens"] = self.tokens
        data["cost_usd"] = None if self.cost_usd is None else round(self.cost_usd, 6)
        data["seconds"] = round(self.seconds, 3)
        return data

    def add(self, usage: Usage, cost: float | None) -> None:
        self.steps += 1
        self.input_tokens += usage["input_tokens"]
        self.output_tokens += usage["output_tokens"]
        self.cache_creation_input_tokens += usage["cache_creation_input_tokens"]
        self.cache_read_input_tokens += usage["cache_read_input_tokens"]
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost

    def plus(self, other: Totals) -> Totals:
        cost = None if self.cost_usd is None or other.cost_usd is None else 0.0
        total = Totals(cost_usd=cost, seconds=self.seconds + other.seconds)
        for item in (self, other):
            total.steps += item.steps
            total.input_tokens += item.input_tokens
            total.output_tokens += item.output_tokens
            total.cache_creation_input_tokens += item.cache_creation_input_tokens
            total.cache_read_input_tokens += item.cache_read_input_tokens
            if total.cost_usd is not None and item.cost_usd is not None:
                total.cost_usd += item.cost_usd
        return total


def _spent_on(totals: Totals, cap: CapName) -> float | None:
    if cap == "max_steps":
        return totals.steps
    if cap == "max_tokens":
        return totals.tokens
    if cap == "max_cost_usd":
        return totals.cost_usd
    return totals.seconds


def _describe(scope: Scope, cap: CapName, limit: float, spent: float) -> str:
    owner = "This message's" if scope == "run" else "The session's"
    if cap == "max_steps":
        amount = f"{limit:g} model requests ({spent:g} made)"
    elif cap == "max_tokens":
        amount = f"{limit:g} tokens ({spent:g} used)"
    elif cap == "max_cost_usd":
        amount = f"${limit:g} (${spent:.4f} spent)"
    else:
        amount = f"{limit:g} s ({spent:.1f} s taken)"
    where = (
        "send the message with a larger budget"
        if scope == "run"
        else "raise it with PATCH /api/v1/sessions/{id}"
    )
    return f"Stopped: {owner} budget {cap} of {amount} is reached; {where}."


class BudgetMeter:
    """Counts one run's spending against its own budget and its session's."""

    def __init__(
        self,
        *,
        model: str,
        session_budget: Budget | None = None,
        run_budget: Budget | None = None,
        session_spent: Totals | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.session_budget = session_budget
        self.run_budget = run_budget
        self._before = session_spent or Totals()
        self._run = Totals(cost_usd=0.0 if catalogue.lookup(model) else None)
        self._clock = clock
        self._started = clock()

    def record(self, usage: Usage) -> None:
        """One model response: a step, its tokens and their cost."""
        self._run.add(usage, catalogue.cost_usd(self.model, **usage))

    def usage(self) -> Usage:
        """The run's tokens by kind (`usage` of message_complete)."""
        run = self._run
        return {
            "input_tokens": run.input_tokens,
            "output_tokens": run.output_tokens,
            "cache_creation_input_tokens": run.cache_creation_input_tokens,
            "cache_read_input_tokens": run.cache_read_input_tokens,
        }

    def run_totals(self) -> Totals:
        self._run.seconds = self._clock() - self._started
        return self._run

    def session_totals(self) -> Totals:
        return self._before.plus(self.run_totals())

    def totals(self) -> dict[str, Any]:
        """`totals` of the `usage` and `message_complete` events."""
        return {"run": self.run_totals().to_dict(), "session": self.session_totals().to_dict()}

    def budgets(self) -> dict[str, Any]:
        return {
            "run": self.run_budget.to_dict() if self.run_budget else None,
            "session": self.session_budget.to_dict() if self.session_budget else None,
        }

    def reached(self, *, before_request: bool) -> str | None:
        """Why the run must stop now (a sentence naming the cap), or None."""
        scopes: tuple[tuple[Scope, Budget | None, Totals], ...] = (
            ("run", self.run_budget, self.run_totals()),
            ("session", self.session_budget, self.session_totals()),
        )
        for scope, budget, totals in scopes:
            if budget is None:
                continue
            for cap in ("max_steps", "max_tokens", "max_cost_usd", "max_seconds"):
                if cap == "max_steps" and not before_request:
                    continue
                limit, spent = getattr(budget, cap), _spent_on(totals, cap)
                if limit is not None and spent is not None and spent >= limit:
                    return _describe(scope, cap, limit, spent)
        return None
