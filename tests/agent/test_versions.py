from __future__ import annotations

import pytest

from computer_use.agent.versions import versions_for


@pytest.mark.parametrize(
    "model",
    [
        "claude-sonnet-5-5",
        "claude-opus-5-5",
        "claude-haiku-5-5",
        "claude-fable-5-1",
        "claude-opus-5",
        "claude-sonnet-5",
        "claude-opus-4-8",
        "claude-sonnet-5-5@20260915",
        "some-future-model",
        "claude-nova-7",
    ],
)
def test_toolset_models_and_unknown_names_get_the_ga_toolset_without_a_beta(model: str) -> None:
    versions = versions_for(model)
    assert versions.computer == "computer_toolset_20260801" and versions.toolset
    assert versions.beta is None
    assert versions.zoom


@pytest.mark.parametrize(
    "model",
    [
        "claude-opus-4-5",
        "claude-opus-4-5-20251101",
        "claude-sonnet-4-6",
        "claude-opus-4-6",
        "claude-opus-4-7",
        "anthropic.claude-opus-4-6-v1",
    ],
)
def test_models_before_the_toolset_get_computer_20251124(model: str) -> None:
    versions = versions_for(model)
    assert versions.computer == "computer_20251124" and not versions.toolset
    assert versions.beta == "computer-use-2025-11-24"
    assert versions.zoom


@pytest.mark.parametrize(
    "model",
    [
        "claude-opus-4-20250514",
        "claude-sonnet-4-20250514",
        "claude-opus-4-1-20250805",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5-20250929",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "claude-sonnet-4-5@20250929",
        "claude-haiku-4-5-20251001",
    ],
)
def test_claude_4_models_get_computer_20250124(model: str) -> None:
    versions = versions_for(model)
    assert versions.computer == "computer_20250124"
    assert versions.beta == "computer-use-2025-01-24"
    assert not versions.zoom
    assert versions.thinking == "budget"


@pytest.mark.parametrize(
    ("provider", "computer"),
    [
        ("anthropic", "computer_toolset_20260801"),
        ("vertex", "computer_toolset_20260801"),  # GA on Google Cloud
        ("bedrock", "computer_20251124"),  # beta there: keep the beta tool
    ],
)
def test_the_toolset_is_used_only_where_it_is_ga(provider: str, computer: str) -> None:
    versions = versions_for("claude-sonnet-5-5", provider)
    assert versions.computer == computer
    assert versions.beta == (None if versions.toolset else "computer-use-2025-11-24")
    # Older models are unaffected by the provider.
    assert versions_for("claude-haiku-4-5", provider).computer == "computer_20250124"


def test_every_model_gets_bash_and_the_text_editor_of_claude_4() -> None:
    for model in ("claude-sonnet-4-5", "claude-opus-4-7", "claude-sonnet-5-5"):
        versions = versions_for(model)
        assert versions.bash == "bash_20250124"
        assert versions.editor == "text_editor_20250728"
        assert versions.editor_name == "str_replace_based_edit_tool"


@pytest.mark.parametrize(
    ("model", "thinking"),
    [
        ("claude-sonnet-5-5", "between_tools"),
        ("claude-opus-5-5", "adaptive_only"),
        ("claude-fable-5-1", "adaptive_only"),
        ("claude-haiku-5-5", "adaptive"),
        ("claude-sonnet-4-6", "adaptive"),
        ("claude-opus-4-6", "adaptive"),
        ("claude-opus-4-7", "adaptive_only"),
        ("claude-opus-4-5", "budget"),
        ("claude-sonnet-4-5", "budget"),
        ("claude-haiku-4-5", "budget"),
    ],
)
def test_thinking_style_follows_the_model(model: str, thinking: str) -> None:
    assert versions_for(model).thinking == thinking
    assert versions_for(model).adaptive_thinking is (thinking != "budget")
