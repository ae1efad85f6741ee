"""Domain errors as MCP tool errors: an `is_error` result whose text says what to do next.

A tool error reaches the calling model as readable text; a protocol error (MCPError) would
only tell the client that something broke. Every failure a caller can cause is a tool error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
        f"Session {session_id} is already processing a task. Follow it with wait_for_task "
        "until it is done (or stop it with cancel_task), then try again."
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
    except errors.SessionBusy as exc:
        raise ToolError(busy_session(session_id) if session_id else exc.message) from None
    except errors.MissingApiKey:
        raise ToolError(MISSING_KEY) from None
    except errors.MessageTooLong as exc:
        raise ToolError(
            f"The task has {exc.length} characters; the limit is {exc.limit}. Shorten it."
        ) from None
    except errors.DesktopNotRunning as exc:
        raise ToolError(
            f"The desktop of session {session_id} is not running right now "
            f"(status {exc.status}); try again in a moment."
        ) from None
    except errors.CapacityReached as exc:
        raise ToolError(f"{exc.message} Retry in about {exc.retry_after} s.") from None
    except errors.DomainError as exc:
        raise ToolError(exc.message) from None
    except ValidationError as exc:
        raise ToolError(invalid_arguments(exc)) from None


def argument_problems(tool: str, exc: ValidationError, schema: dict[str, Any]) -> str:
    """Arguments that do not fit the tool's input schema, said in its own terms: what is
    missing or wrong, and what the tool takes."""
    problems = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "arguments"
        if err["type"] == "missing":
            problems.append(f"{name} is missing")
        else:
            problems.append(f"{name}: {err['msg']}")
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    takes = "; ".join(
        f"{arg} ({'required' if arg in required else 'optional'}): "
        f"{str(spec.get('description', '')).rstrip('.')}"
        for arg, spec in properties.items()
    )
    return f"Invalid arguments for {tool}: {'; '.join(problems)}. It takes: {takes or 'nothing'}."
