"""Request checks the real Messages API makes and that our agent must respect.

Only the rules that matter to us, with the API's own wording where we know it: a request that
passes here has the shape the real API accepts; one that fails would be a 400 there too.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any

from computer_use.loopback import rules
from computer_use.loopback.errors import InvalidRequest
from computer_use.loopback.script import count_blocks, count_cache_control

MAX_CACHE_BREAKPOINTS = 4
MAX_IMAGES = 100
IMAGE_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

# Tool types that exist only behind a beta flag (any one of the listed flags enables them).
# bash_20250124 and computer_toolset_20260801 are GA (in the SDK's non-beta tool union).
TOOL_BETAS: dict[str, frozenset[str]] = {
    "computer_20251124": frozenset({"computer-use-2025-11-24"}),
    "computer_20250124": frozenset({"computer-use-2025-01-24"}),
    "computer_20241022": frozenset({"computer-use-2024-10-22"}),
    "bash_20241022": frozenset({"computer-use-2024-10-22"}),
}
KNOWN_COMPUTER_BETAS = frozenset().union(*TOOL_BETAS.values())
USER_BLOCKS = frozenset({"text", "image", "document", "tool_result"})
ASSISTANT_BLOCKS = frozenset({"text", "thinking", "redacted_thinking", "tool_use"})

SignatureCheck = Callable[[str, str], bool]


def validate_headers(headers: Mapping[str, str]) -> None:
    if not headers.get("anthropic-version"):
        raise InvalidRequest("anthropic-version: header is required")
    betas = [b.strip() for b in headers.get("anthropic-beta", "").split(",") if b.strip()]
    unknown = [b for b in betas if b.startswith("computer-use-") and b not in KNOWN_COMPUTER_BETAS]
    if unknown:
        raise InvalidRequest(
            f"Unexpected value(s) `{', '.join(unknown)}` for the `anthropic-beta` header. "
            "Please consult our documentation at docs.anthropic.com or try again without "
            "the header."
        )


def validate_body(body: Any, betas: list[str], signature_ok: SignatureCheck) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body is not valid JSON.")
    for key, kind in (("model", str), ("max_tokens", int), ("messages", list)):
        if not isinstance(body.get(key), kind):
            raise InvalidRequest(f"{key}: Field required")
    if body["max_tokens"] < 1:
        raise InvalidRequest("max_tokens: must be greater than or equal to 1")
    tool_names = _validate_tools(body.get("tools", []), betas)
    members = rules.enabled_members(body.get("tools", []))
    _validate_system(body.get("system"))
    _validate_thinking(body.get("thinking"), body["max_tokens"])
    rules.validate_for_model(body)
    _validate_messages(body["messages"], tool_names, members, signature_ok)
    found = count_cache_control(body)
    if found > MAX_CACHE_BREAKPOINTS:
        raise InvalidRequest(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {found}."
        )
    if count_blocks(body["messages"], "image") > MAX_IMAGES:
        raise InvalidRequest(f"messages: A maximum of {MAX_IMAGES} images may be provided.")


def _validate_tools(tools: Any, betas: list[str]) -> set[str]:
    if not isinstance(tools, list):
        raise InvalidRequest("tools: Input should be a valid list")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        name, kind = tool.get("name"), tool.get("type")
        if kind in rules.TOOLSET_TYPES:
            family = rules.validate_toolset(i, tool)
            if f"{family}_toolset" in names:
                raise InvalidRequest(f"tools.{i}: only one {kind} entry is allowed")
            names.add(f"{family}_toolset")
            continue
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"tools.{i}.name: Field required")
        if name in names:
            raise InvalidRequest(f"tools: Tool names must be unique. Duplicate: {name}")
        names.add(name)
        if kind in TOOL_BETAS and not TOOL_BETAS[kind] & set(betas):
            raise InvalidRequest(
                f"tools.{i}: Input tag '{kind}' found using 'type' does not match any of the "
                "expected tags (enable it with the matching `anthropic-beta` header)"
            )
        if kind in (None, "custom") and not isinstance(tool.get("input_schema"), dict):
            raise InvalidRequest(f"tools.{i}.custom.input_schema: Field required")
        if isinstance(kind, str) and kind.startswith("computer_"):
            for dim in ("display_width_px", "display_height_px"):
                if not isinstance(tool.get(dim), int) or tool[dim] < 1:
                    raise InvalidRequest(f"tools.{i}.{kind}.{dim}: Field required")
            if "enable_zoom" in tool and kind != "computer_20251124":
                raise InvalidRequest(
                    f"tools.{i}.{kind}.enable_zoom: Extra inputs are not permitted"
                )
    return names


def _validate_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise InvalidRequest("system: Input should be a valid string or list")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not block.get("text"):
            raise InvalidRequest(f"system.{i}: system blocks must be non-empty text blocks")


def _validate_thinking(thinking: Any, max_tokens: int) -> None:
    if thinking is None:
        return
    kind = thinking.get("type")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise InvalidRequest("thinking.enabled.budget_tokens: Input should be >= 1024")
        if budget >= max_tokens:
            raise InvalidRequest("`max_tokens` must be greater than `thinking.budget_tokens`.")
    elif kind not in ("adaptive", "disabled", "between_tools"):
        raise InvalidRequest(f"thinking: unknown type {kind!r}")


def _validate_messages(
    messages: list[Any],
    tool_names: set[str],
    members: frozenset[str],
    signature_ok: SignatureCheck,
) -> None:
    if not messages:
        raise InvalidRequest("messages: at least one message is required")
    # tool_use id -> toolset_name (None: a plain tool) of the previous assistant message
    pending: dict[str, str | None] = {}
    seen_ids: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            raise InvalidRequest(
                f'messages.{i}: roles must alternate between "user" and "assistant", '
                f'starting with "user" (got {role!r})'
            )
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not isinstance(content, list) or not content:
            raise InvalidRequest(f"messages.{i}: all messages must have non-empty content")
        if role == "user":
            _check_user(i, content, pending)
            pending = {}
        else:
            pending = _check_assistant(i, content, tool_names, members, seen_ids, signature_ok)
    if pending:
        raise InvalidRequest(_missing_results(len(messages) - 1, list(pending)))


def _missing_results(index: int, ids: list[str]) -> str:
    return (
        f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately "
        f"after: {', '.join(ids)}. Each `tool_use` block must have a corresponding `tool_result` "
        "block in the next message."
    )


def _check_user(i: int, content: list[Any], pending: dict[str, str | None]) -> None:
    answered: set[str] = set()
    seen_other = False
    for j, block in enumerate(content):
        kind = block.get("type")
        where = f"messages.{i}.content.{j}"
        if kind not in USER_BLOCKS:
            raise InvalidRequest(f"{where}: blocks of type `{kind}` are not allowed in user turns")
        if kind == "text" and not block.get("text"):
            raise InvalidRequest(f"{where}: text content blocks must be non-empty")
        if kind == "image":
            _check_image(where, block)
        if kind != "tool_result":
            seen_other = True
            continue
        if seen_other:
            raise InvalidRequest(
                f"{where}: `tool_result` blocks must come first in the user message content, "
                "before any other content."
            )
        tool_use_id = block.get("tool_use_id")
        if tool_use_id not in pending:
            raise InvalidRequest(
                f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: {tool_use_id}. "
                "Each `tool_result` block must have a corresponding `tool_use` block in the "
                "previous message."
            )
        answered.add(tool_use_id)
        _check_toolset_result(where, block, pending[tool_use_id])
        inner = block.get("content", [])
        for k, part in enumerate(inner if isinstance(inner, list) else []):
            if part.get("type") not in ("text", "image"):
                raise InvalidRequest(f"{where}.content.{k}: only text and image are allowed")
            if part.get("type") == "image":
                _check_image(f"{where}.content.{k}", part)
            elif not part.get("text"):
                raise InvalidRequest(f"{where}.content.{k}: text content blocks must be non-empty")
    missing = [tid for tid in pending if tid not in answered]
    if missing:
        raise InvalidRequest(_missing_results(i, missing))


def _check_toolset_result(where: str, block: dict[str, Any], toolset: str | None) -> None:
    """A member's result echoes its toolset_name; an is_error result is non-empty text only."""
    if block.get("toolset_name") != toolset:
        raise InvalidRequest(
            f"{where}.toolset_name: must be {toolset!r} to match its `tool_use` block "
            f"(got {block.get('toolset_name')!r})"
        )
    if toolset is not None and block.get("is_error"):
        inner = block.get("content")
        parts = [inner] if isinstance(inner, str) else inner if isinstance(inner, list) else []
        if not parts or any(
            not isinstance(p, str) and (p.get("type") != "text" or not p.get("text")) for p in parts
        ):
            raise InvalidRequest(
                f"{where}.content: an `is_error` toolset result needs non-empty text content"
            )


def _check_assistant(
    i: int,
    content: list[Any],
    tool_names: set[str],
    members: frozenset[str],
    seen_ids: set[str],
    signature_ok: SignatureCheck,
) -> dict[str, str | None]:
    ids: dict[str, str | None] = {}
    for j, block in enumerate(content):
        kind = block.get("type")
        where = f"messages.{i}.content.{j}"
        if kind not in ASSISTANT_BLOCKS:
            raise InvalidRequest(
                f"{where}: blocks of type `{kind}` are not allowed in assistant turns"
            )
        if kind == "thinking" and not signature_ok(
            str(block.get("thinking", "")), str(block.get("signature", ""))
        ):
            raise InvalidRequest(f"{where}: Invalid `signature` in `thinking` block")
        if kind == "tool_use":
            if not tool_names:
                raise InvalidRequest(
                    "Requests which include `tool_use` or `tool_result` blocks must define tools."
                )
            toolset = block.get("toolset_name")
            if toolset is not None:
                if f"{toolset}_toolset" not in tool_names or block.get("name") not in members:
                    raise InvalidRequest(
                        f"{where}: `{toolset}` member `{block.get('name')}` is not among `tools`"
                    )
            elif block.get("name") not in tool_names:
                raise InvalidRequest(f"{where}: tool `{block.get('name')}` is not among `tools`")
            tool_use_id = str(block.get("id", ""))
            if tool_use_id in seen_ids:
                raise InvalidRequest(f"{where}: `tool_use` ids must be unique: {tool_use_id}")
            seen_ids.add(tool_use_id)
            ids[tool_use_id] = toolset
    return ids


def _check_image(where: str, block: Mapping[str, Any]) -> None:
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") not in ("base64", "url"):
        raise InvalidRequest(f"{where}.source: Input tag does not match 'base64' or 'url'")
    if source["type"] == "url":
        return
    if source.get("media_type") not in IMAGE_MEDIA_TYPES:
        raise InvalidRequest(f"{where}.source.media_type: unsupported image type")
    try:
        base64.b64decode(str(source.get("data", "")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"{where}.source.data: invalid base64 data") from exc
