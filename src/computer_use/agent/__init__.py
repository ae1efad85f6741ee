"""The agent: Claude's sampling loop and its computer, bash and editor tools.

Entry points: `run_agent` (one user message to completion), `SessionTools` (one per session),
`make_client` (the SDK client for API_PROVIDER), `RunHooks` (what the caller provides), and
`history.to_api` / `history.to_storage` for stored conversations.
"""

from computer_use.agent.events import EventType
from computer_use.agent.hooks import RunHooks
from computer_use.agent.loop import RunResult, run_agent
from computer_use.agent.providers import ModelClient, ProviderConfigError, make_client
from computer_use.agent.run_config import RunConfig
from computer_use.agent.tools import SessionTools
from computer_use.agent.versions import ToolVersions, versions_for

__all__ = [
    "EventType",
    "ModelClient",
    "ProviderConfigError",
    "RunConfig",
    "RunHooks",
    "RunResult",
    "SessionTools",
    "ToolVersions",
    "make_client",
    "run_agent",
    "versions_for",
]
