"""The model catalogue and the request rules that follow from it."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from computer_use.agent import catalogue
from computer_use.agent.run_config import RunConfig, thinking_params
from computer_use.agent.versions import versions_for
from computer_use.loopback import rules
from computer_use.loopback.errors import InvalidRequest

EFFORTS: list[Any] = [None, "low", "high", "xhigh", "max"]


def test_sonnet_4_5_is_retired_from_2026_11_30_inclusive_naming_its_replacement() -> None:
    model = "claude-sonnet-4-5-20250929"
    warning = catalogue.check_usable(model, date(2026, 11, 29))
    assert warning is not None and "deprecated" in warning and "2026-11-30" in warning
    for day in (date(2026, 11, 30), date(2027, 3, 1)):
        with pytest.raises(catalogue.RetiredModel) as refused:
            catalogue.check_usable(model, day)
        assert "retired on 2026-11-30" in str(refused.value)
        assert "claude-sonnet-5-5" in str(refused.value)
    # Every spelling of the model is the same model.
    with pytest.raises(catalogue.RetiredModel):
        catalogue.check_usable("claude-sonnet-4-5@20250929", date(2026, 11, 30))


def test_deprecated_model_works_with_a_warning_and_unknown_names_pass() -> None:
    warning = catalogue.check_usable("claude-opus-4-5", date(2026, 11, 30))
    assert warning is not None and "2027-01-22" in warning and "claude-opus-5-5" in warning
    assert catalogue.check_usable("claude-sonnet-5-5", date(2026, 11, 30)) is None
    assert catalogue.check_usable("my-proxy-model", date(2026, 11, 30)) is None


def test_catalogue_rows_are_consistent() -> None:
    ids = [e.id for e in catalogue.CATALOGUE]
    assert len(ids) == len(set(ids))
    for entry in catalogue.CATALOGUE:
        assert catalogue.lookup(entry.id) is entry
        assert entry.input_price > 0 and entry.output_price >= entry.input_price
        if entry.retires_on is not None:
            assert entry.replacement is not None
            replacement = catalogue.lookup(entry.replacement)
            assert replacement is not None and replacement.status(entry.retires_on) != "retired"
        if entry.generation_55:
            assert entry.tool == "toolset" and entry.thinking != "budget"


def request_body(model: str, provider: str, thinking: bool, effort: Any) -> dict[str, Any]:
    versions = versions_for(model, provider)
    config = RunConfig(model=model, provider=provider, thinking=thinking, effort=effort)
    tool = {"type": versions.computer}
    return {"model": model, "tools": [tool], **thinking_params(config, versions)}


@pytest.mark.parametrize("entry", catalogue.CATALOGUE, ids=lambda e: e.id)
def test_no_request_is_one_the_api_refuses(entry: catalogue.ModelEntry) -> None:
    """The API's rules (the loopback server's, kept apart from the catalogue) accept every
    request the agent builds, for every model, thinking on or off, any AGENT_EFFORT."""
    for thinking in (True, False):
        for effort in EFFORTS:
            body = request_body(entry.id, "anthropic", thinking, effort)
            rules.validate_for_model(body)
            kind = (body.get("thinking") or {}).get("type")
            if entry.generation_55:
                assert kind not in ("disabled", "enabled") and "budget_tokens" not in str(body)
                assert "tool_choice" not in body


def test_loopback_rules_refuse_what_the_api_refuses() -> None:
    refused: list[tuple[dict[str, Any], str]] = [
        ({"model": "claude-sonnet-5-5", "tools": [{"type": "computer_20251124"}]}, "toolset"),
        ({"model": "claude-opus-5-5", "thinking": {"type": "disabled"}}, "adaptive"),
        ({"model": "claude-sonnet-5-5", "thinking": {"type": "disabled"}}, "between_tools"),
        ({"model": "claude-haiku-5-5", "thinking": {"type": "enabled"}}, "adaptive"),
        ({"model": "claude-sonnet-5-5", "tool_choice": {"type": "any"}}, "forced"),
        ({"model": "claude-haiku-4-5", "tools": [{"type": "computer_20251124"}]}, "20250124"),
        ({"model": "claude-sonnet-4-6", "tools": [{"type": catalogue.TOOLSET}]}, "20251124"),
    ]
    for body, hint in refused:
        with pytest.raises(InvalidRequest, match=hint):
            rules.validate_for_model(body)


@pytest.mark.parametrize("thinking", [True, False])
def test_thinking_text_is_requested_summarized_and_effort_only_when_set(thinking: bool) -> None:
    sonnet = request_body("claude-sonnet-5-5", "anthropic", thinking, None)
    assert sonnet["thinking"] == (
        {"type": "adaptive", "display": "summarized"} if thinking else {"type": "between_tools"}
    )
    assert "output_config" not in sonnet
    opus = request_body("claude-opus-5-5", "anthropic", thinking, "medium")
    assert opus["thinking"] == {"type": "adaptive", "display": "summarized"}  # always on
    assert opus["output_config"] == {"effort": "medium"}
    old = request_body("claude-haiku-4-5", "anthropic", thinking, "high")
    assert old.get("thinking") == ({"type": "enabled", "budget_tokens": 2048} if thinking else None)
    assert "output_config" not in old
