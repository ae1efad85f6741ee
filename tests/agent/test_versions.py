from __future__ import annotations

import pytest

from computer_use.agent.versions import versions_for


@pytest.mark.parametrize(
    "model",
    [
        "claude-opus-4-5",
        "claude-opus-4-5-20251101",
        "claude-sonnet-4-6",
        "claude-opus-4-6",
        "claude-opus-4-7",
        "claude-opus-4-8",
        "anthropic.claude-opus-4-6-v1",
        "claude-opus-5",
        "claude-mythos-preview",
        "some-future-model",
    ],
)
def test_current_models_get_the_newest_computer_tool_with_zoom(model: str) -> None:
    versions = versions_for(model)
    assert versions.computer == "computer_20251124"
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


def test_every_model_gets_bash_and_the_text_editor_of_claude_4() -> None:
    for model in ("claude-sonnet-4-5", "claude-opus-4-7"):
        versions = versions_for(model)
        assert versions.bash == "bash_20250124"
        assert versions.editor == "text_editor_20250728"
        assert versions.editor_name == "str_replace_based_edit_tool"


@pytest.mark.parametrize(
    ("model", "adaptive"),
    [
        ("claude-sonnet-4-6", True),
        ("claude-opus-4-6", True),
        ("claude-opus-4-7", True),
        ("claude-opus-4-5", False),
        ("claude-sonnet-4-5", False),
        ("claude-haiku-4-5", False),
    ],
)
def test_thinking_style_follows_the_model(model: str, adaptive: bool) -> None:
    assert versions_for(model).adaptive_thinking is adaptive
