"""/llms.txt: the API described for LLMs, generated from the app's OpenAPI so it cannot drift."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from computer_use import appstate

_INTRO = """\
# Computer Use Backend

> Runs Claude computer-use agents, each on its own isolated Linux desktop (Xvfb, window
> manager, Firefox), driven over REST + Server-Sent Events and MCP, watched live over VNC.

Typical flow: POST /api/v1/sessions -> POST /api/v1/sessions/{session_id}/messages with
{"content": "..."} -> GET /api/v1/sessions/{session_id}/stream (text/event-stream; event types
text, thinking, tool_use, tool_result, message_complete, error). Bring your own Anthropic key
with the header X-Anthropic-API-Key. Errors have the body {"error": {"code", "message", "details"}}.
MCP (Streamable HTTP) is served at /mcp when enabled.

Models: GET /api/v1/models lists the catalogue (id, status current/legacy/deprecated/retired,
retires_on, replacement, tool_path, thinking, prices per million tokens); the session's
"model" defaults to GET /api/v1/config's default_model. Tool paths: "toolset" (the GA
computer_toolset_20260801: tool_use events name the member, e.g. left_click, with
toolset_name "computer"), "computer_20251124" or "computer_20250124" (beta computer tool).
A retired model is refused with 422 naming its replacement; unknown ids pass through.
"""


def _schema_fields(spec: dict[str, Any], ref: str) -> str:
    name = ref.rsplit("/", 1)[-1]
    schema = spec.get("components", {}).get("schemas", {}).get(name, {})
    required = set(schema.get("required", []))
    parts = []
    for field, info in schema.get("properties", {}).items():
        kind = info.get("type") or ("|".join(x.get("type", "?") for x in info.get("anyOf", [])))
        parts.append(f"{field}{'' if field in required else '?'}: {kind}")
    return f"{name} {{{', '.join(parts)}}}"


def render_llms_txt(app: FastAPI) -> str:
    spec = app.openapi()
    lines = [_INTRO, "## Endpoints", ""]
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            lines.append(f"- {method.upper()} {path}: {op.get('summary', '')}")
            params = [
                f"{p['name']} ({p['in']}{', required' if p.get('required') else ''})"
                for p in op.get("parameters", [])
            ]
            if params:
                lines.append(f"  parameters: {', '.join(params)}")
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            if "$ref" in body.get("schema", {}):
                lines.append(f"  body: {_schema_fields(spec, body['schema']['$ref'])}")
            codes = ", ".join(sorted(op.get("responses", {})))
            lines.append(f"  responses: {codes}")
    extra = appstate.read(app, "llms_extra_routes", list) or []
    for line in extra:
        lines.append(f"- {line}")
    lines += ["", "## Docs", "", "- /docs: Swagger UI", "- /openapi.json: OpenAPI schema", ""]
    return "\n".join(lines)
