"""The async client for API_PROVIDER: anthropic, bedrock or vertex, from the SDK itself.

Everything comes in as arguments: `client_for` takes the provider's settings from `Settings`
(API_PROVIDER, AWS_REGION, CLOUD_ML_REGION, ANTHROPIC_VERTEX_PROJECT_ID), so each is in the
README, env.example and /api/v1/config. The Anthropic key is passed in per run (bring your own
key, or the server default) and only ever handed to the SDK: it is not logged, stored or put in
an error message. ANTHROPIC_BASE_URL is read by the SDK when no explicit base_url is given, so
any Messages-API-compatible endpoint (the loopback server included) can stand in.
"""

from __future__ import annotations

from typing import Literal, TypeAlias, TypedDict

from anthropic import AsyncAnthropic, AsyncAnthropicBedrock, AsyncAnthropicVertex

from computer_use.config import Settings

Provider = Literal["anthropic", "bedrock", "vertex"]
ModelClient: TypeAlias = AsyncAnthropic | AsyncAnthropicBedrock | AsyncAnthropicVertex
PROVIDERS: tuple[Provider, ...] = ("anthropic", "bedrock", "vertex")


class ProviderConfigError(ValueError):
    """The client cannot be built as configured; the message says what to set."""


class MissingApiKeyError(ProviderConfigError):
    """API_PROVIDER=anthropic and no key at all."""


def check_config(
    provider: str,
    *,
    api_key: str | None = None,
    aws_region: str | None = None,  # optional: the AWS chain has a default
    vertex_region: str | None = None,
    vertex_project_id: str | None = None,
) -> None:
    """Raises what make_client would refuse, without building a client."""
    if provider == "anthropic":
        if not api_key:
            raise MissingApiKeyError(
                "No Anthropic API key: send one in the X-Anthropic-API-Key header or set "
                "ANTHROPIC_API_KEY on the server."
            )
    elif provider == "vertex":
        _vertex_target(vertex_region, vertex_project_id)
    elif provider not in PROVIDERS:
        raise ProviderConfigError(
            f"Unknown API_PROVIDER {provider!r}: use one of {', '.join(PROVIDERS)}."
        )


class ProviderOptions(TypedDict):
    """The provider's own settings, as make_client and check_config take them."""

    aws_region: str | None
    vertex_region: str | None
    vertex_project_id: str | None


def options_of(settings: Settings) -> ProviderOptions:
    return ProviderOptions(
        aws_region=settings.aws_region,
        vertex_region=settings.cloud_ml_region,
        vertex_project_id=settings.anthropic_vertex_project_id,
    )


def check_settings(settings: Settings, *, api_key: str | None) -> None:
    """check_config with the provider's settings."""
    check_config(settings.api_provider, api_key=api_key, **options_of(settings))


def client_for(
    settings: Settings, *, api_key: str | None, base_url: str | None = None, max_retries: int = 2
) -> ModelClient:
    """make_client with the provider's settings."""
    return make_client(
        settings.api_provider,
        api_key=api_key,
        base_url=base_url,
        max_retries=max_retries,
        **options_of(settings),
    )


def make_client(
    provider: str = "anthropic",
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    max_retries: int = 2,
    timeout: float = 600.0,
    aws_region: str | None = None,
    vertex_region: str | None = None,
    vertex_project_id: str | None = None,
) -> ModelClient:
    check_config(
        provider,
        api_key=api_key,
        vertex_region=vertex_region,
        vertex_project_id=vertex_project_id,
    )
    if provider == "anthropic":
        return AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout
        )
    if provider == "bedrock":
        # Credentials come from the AWS chain (env, profile, role); a Bedrock API key may be
        # passed like an Anthropic one.
        return AsyncAnthropicBedrock(
            aws_region=aws_region,
            api_key=api_key,
            base_url=base_url,
            max_retries=max_retries,
            timeout=timeout,
        )
    region, project = _vertex_target(vertex_region, vertex_project_id)
    return AsyncAnthropicVertex(
        region=region,
        project_id=project,
        base_url=base_url,
        max_retries=max_retries,
        timeout=timeout,
    )


def _vertex_target(region: str | None, project: str | None) -> tuple[str, str]:
    if not region or not project:
        raise ProviderConfigError(
            "Vertex needs a region and a project: set CLOUD_ML_REGION and "
            "ANTHROPIC_VERTEX_PROJECT_ID."
        )
    return region, project
