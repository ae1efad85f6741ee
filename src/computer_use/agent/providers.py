"""The async client for API_PROVIDER: anthropic, bedrock or vertex, from the SDK itself.

The Anthropic key is passed in per run (bring your own key, or the server default) and only
ever handed to the SDK: it is not logged, stored or put in an error message. ANTHROPIC_BASE_URL
is read by the SDK when no explicit base_url is given, so any Messages-API-compatible endpoint
(the loopback server included) can stand in.
"""

from __future__ import annotations

import os
from typing import Literal, TypeAlias

from anthropic import AsyncAnthropic, AsyncAnthropicBedrock, AsyncAnthropicVertex

Provider = Literal["anthropic", "bedrock", "vertex"]
ModelClient: TypeAlias = AsyncAnthropic | AsyncAnthropicBedrock | AsyncAnthropicVertex
PROVIDERS: tuple[Provider, ...] = ("anthropic", "bedrock", "vertex")


class ProviderConfigError(ValueError):
    """The client cannot be built as configured; the message says what to set."""


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
    if provider == "anthropic":
        key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ProviderConfigError(
                "No Anthropic API key: send one in the X-Anthropic-API-Key header or set "
                "ANTHROPIC_API_KEY on the server."
            )
        return AsyncAnthropic(
            api_key=key, base_url=base_url, max_retries=max_retries, timeout=timeout
        )
    if provider == "bedrock":
        # Credentials come from the AWS chain (env, profile, role); a Bedrock API key may be
        # passed like an Anthropic one.
        return AsyncAnthropicBedrock(
            aws_region=aws_region or os.environ.get("AWS_REGION"),
            api_key=api_key,
            base_url=base_url,
            max_retries=max_retries,
            timeout=timeout,
        )
    if provider == "vertex":
        region = vertex_region or os.environ.get("CLOUD_ML_REGION")
        project = vertex_project_id or os.environ.get("ANTHROPIC_VERTEX_PROJECT_ID")
        if not region or not project:
            raise ProviderConfigError(
                "Vertex needs a region and a project: set CLOUD_ML_REGION and "
                "ANTHROPIC_VERTEX_PROJECT_ID."
            )
        return AsyncAnthropicVertex(
            region=region,
            project_id=project,
            base_url=base_url,
            max_retries=max_retries,
            timeout=timeout,
        )
    raise ProviderConfigError(
        f"Unknown API_PROVIDER {provider!r}: use one of {', '.join(PROVIDERS)}."
    )
