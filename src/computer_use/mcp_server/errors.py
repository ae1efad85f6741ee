"""Domain errors as MCP tool errors: an `is_error` result whose text says what to do next.

A tool error reaches the calling model as readable text; a protocol error (MCPError) would
only tell the client that something broke. Every failure a caller can cause is a tool error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from computer_use import errors
from computer_use.mcp_server.deps import API_KEY_HEADER

MISSING_KEY = (
    "No Anthropic API key: this server has none configured (ANTHROPIC_API_KEY), so send your "
    f"own in the {API_KEY_HEADER} HTTP header from your MCP client config. Cursor "
    f'(.cursor/mcp.json): "headers": {{"{API_KEY_HEADER}": "sk-ant-..."}} next to "url". '
    f'Claude Desktop via mcp-remote: add the args "--header", "{API_KEY_HEADER}:sk-ant-...". '
    "The key is never a tool argument."
)


def unknown_session(session_id: str) -> str:
    return (
        f"Unknown session id {session_id!r}: no such session (it may have been destroyed). "
        "Use the session_id returned by create_session, or call create_session for a new one."
    )


def busy_session(session_id: str) -> str:
    return (
        f"Session {session_id} is already processing a task. Wait until get_session_status "
        "shows processing: false (or cancel the running execute_task call), then try again."
    )


def invalid_arguments(exc: ValidationError, *, names: dict[str, str] | None = None) -> str:
    """`names` maps the validated model's field names to the tool's argument names."""
    names = names or {}
    problems = "; ".join(
        f"{'.'.join(names.get(str(p), str(p)) for p in err['loc']) or 'arguments'}: {err['msg']}"
        for err in exc.errors()
    )
    return f"Invalid arguments: {problems}."


@contextmanager
def tool_errors(session_id: str | None = None) -> Iterator[None]:
    """Turns the domain errors of the block into ToolErrors with actionable text."""
    try:
        yield
    except errors.NotFound as exc:
        raise ToolError(unknown_session(session_id) if session_id else exc.message) from None
    except errors.CapacityReached as exc:
        raise ToolError(f"{exc.message} Retry in about {exc.retry_after} s.") from None
    except errors.DomainError as exc:
        raise ToolError(exc.message) from None
    except ValidationError as exc:
        raise ToolError(invalid_arguments(exc)) from None
