"""API failures become one clear `error` event, the run ends, the history stays usable."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import pytest

from computer_use.agent import providers
from computer_use.agent.api_errors import scrub
from computer_use.agent.tools import SessionTools
from computer_use.config import Settings
from computer_use.loopback import (
    Fail,
    LoopbackModelServer,
    ScriptItem,
    invalid_request,
    overloaded,
    rate_limited,
    say,
)
from tests.agent.fakes import KEY, RecordingHooks, run
from tests.helpers import free_port


@pytest.mark.parametrize(
    ("turn", "code", "words"),
    [
        (
            rate_limited(7),
            "rate_limit_error",
            "Rate limited by the Anthropic API (429); try again in 7 s",
        ),
        (overloaded(), "overloaded_error", "overloaded (529)"),
        (overloaded(mid_stream=True), "overloaded_error", "overloaded (529)"),
        (invalid_request("prompt is too long"), "invalid_request_error", "prompt is too long"),
        (Fail(500, "api_error", "Internal server error"), "api_error", "failed (500"),
    ],
)
async def test_api_errors_become_an_error_event(
    tools: SessionTools, turn: Fail, code: str, words: str
) -> None:
    hooks = RecordingHooks()
    async with LoopbackModelServer([turn, say("Recovered.")]) as server:
        result = await run(server, tools, hooks)
        assert result.stop_reason == "error"
        assert hooks.types() == ["error", "message_complete"]
        error = hooks.of("error")[0]
        assert error["code"] == code and words in error["message"], error
        assert hooks.of("message_complete")[0]["stop_reason"] == "error"
        assert KEY not in json.dumps(hooks.events)
        again = await run(server, tools, hooks, prompt="try again")
    assert again.stop_reason == "end_turn" and server.rejections == []


async def test_invalid_key_is_reported_without_the_key(tools: SessionTools) -> None:
    hooks = RecordingHooks()
    async with LoopbackModelServer([say("never")], api_key="the-right-key") as server:
        result = await run(server, tools, hooks)
    assert result.stop_reason == "error"
    error = hooks.of("error")[0]
    assert error["code"] == "authentication_error" and error["status"] == 401
    assert "rejected the API key" in error["message"] and not error["retryable"]
    assert KEY not in json.dumps(hooks.events) and KEY not in json.dumps(hooks.messages)


async def test_retries_are_the_sdks_before_an_error_is_reported(tools: SessionTools) -> None:
    hooks = RecordingHooks()
    script: list[ScriptItem] = [rate_limited(0.01), say("Fine after one retry.")]
    async with LoopbackModelServer(script) as server:
        client = anthropic.AsyncAnthropic(base_url=server.base_url, api_key=KEY, max_retries=1)
        result = await run(server, tools, hooks, client=client)
    assert result.stop_reason == "end_turn" and hooks.of("error") == []


async def test_unreachable_api_is_a_connection_error(tools: SessionTools) -> None:
    hooks = RecordingHooks()
    client = anthropic.AsyncAnthropic(
        base_url=f"http://127.0.0.1:{free_port()}", api_key=KEY, max_retries=0
    )
    await run(None, tools, hooks, client=client)
    error = hooks.of("error")[0]
    assert error["code"] == "connection_error" and error["retryable"]
    assert "Could not connect to the Anthropic API" in error["message"]


def test_scrub_removes_the_key_and_key_shapes() -> None:
    assert scrub("key sk-ant-abcdefghijklmnop and secret-123", "secret-123") == (
        "key [redacted] and [redacted]"
    )


def test_clients_for_each_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(providers.ProviderConfigError, match="X-Anthropic-API-Key"):
        providers.make_client("anthropic")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/")
    client = providers.make_client("anthropic", api_key="k", max_retries=1)
    assert isinstance(client, anthropic.AsyncAnthropic)
    assert str(client.base_url) == "http://127.0.0.1:9/" and client.max_retries == 1
    explicit = providers.make_client("anthropic", api_key="k", base_url="http://127.0.0.1:8/")
    assert str(explicit.base_url) == "http://127.0.0.1:8/"
    bedrock = providers.make_client("bedrock", aws_region="us-east-1")
    assert isinstance(bedrock, anthropic.AsyncAnthropicBedrock)
    vertex = providers.make_client("vertex", vertex_region="us-east5", vertex_project_id="p")
    assert isinstance(vertex, anthropic.AsyncAnthropicVertex)
    with pytest.raises(providers.ProviderConfigError, match="Unknown API_PROVIDER"):
        providers.make_client("openai")


def test_the_provider_settings_come_from_settings_not_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("API_PROVIDER", "vertex")
    monkeypatch.setenv("CLOUD_ML_REGION", "europe-west1")
    monkeypatch.setenv("ANTHROPIC_VERTEX_PROJECT_ID", "proj-from-env")
    settings = Settings(_env_file=None, data_dir=tmp_path)
    assert (settings.cloud_ml_region, settings.anthropic_vertex_project_id) == (
        "europe-west1",
        "proj-from-env",
    )
    vertex = providers.client_for(settings, api_key=None)
    assert isinstance(vertex, anthropic.AsyncAnthropicVertex)
    assert (vertex.region, vertex.project_id) == ("europe-west1", "proj-from-env")
    # Settings are what counts: without the project there, the environment is not read again
    no_project = settings.model_copy(update={"anthropic_vertex_project_id": None})
    with pytest.raises(providers.ProviderConfigError, match="ANTHROPIC_VERTEX_PROJECT_ID"):
        providers.check_settings(no_project, api_key=None)
    bedrock = settings.model_copy(update={"api_provider": "bedrock", "aws_region": "eu-west-3"})
    client = providers.client_for(bedrock, api_key=None)
    assert isinstance(client, anthropic.AsyncAnthropicBedrock)
    assert client.aws_region == "eu-west-3"
