"""What each request carries besides the conversation: the system prompt, cache breakpoints,
and the screenshot budget.

Caching: one breakpoint on the system prompt (tools and system come first, so it covers both)
and one on the last block of each of the last three user turns: four, the API's maximum. Each
request then reads the prefix the previous one wrote.

Screenshot budget: only the most recent images stay. Removing one old image per turn would
change the prefix every turn and void the cache, so images go in chunks: with N images
present, floor((N - keep) / chunk) * chunk of the oldest are replaced by a short text, which
changes only once every `chunk` screenshots.
"""

from __future__ import annotations

from datetime import date
from typing import Any

EPHEMERAL = {"type": "ephemeral"}
USER_BREAKPOINTS = 3
OMITTED_IMAGE_TEXT = "(screenshot omitted to save context)"

Message = dict[str, Any]


def system_prompt(
    *,
    width: int,
    height: int,
    home: str,
    today: date,
    bash_timeout: float,
    zoom: bool,
    extra: str = "",
) -> str:
    lines = [
        "You are operating a Linux desktop through the computer, bash and "
        "str_replace_based_edit_tool tools.",
        f"* The screen is {width}x{height} pixels; screenshots have that size and coordinates "
        "refer to them.",
        "* Installed applications: Firefox ESR (web browser, already open or on the panel), "
        "xterm (terminal) and a file manager. To start a GUI application from bash, run it in "
        "the background, e.g. `(firefox-esr &)`; DISPLAY is already set.",
        f"* Your home directory is {home}. The editor tool works on files under {home} and "
        "/tmp only.",
        "* The bash tool keeps its state between calls (working directory, variables). A "
        f"command running longer than {bash_timeout:g} s is stopped and the shell restarted, "
        "so run long commands in the background with their output sent to a file.",
        "* After an action whose effect you are not sure of, take a screenshot to check it. "
        "Web pages can take a moment to load.",
        "* To read a long web page, scrolling or zooming out in Firefox is often quicker than "
        "many screenshots.",
    ]
    if zoom:
        lines.append("* The zoom action shows a region of the screen at full resolution.")
    lines.append(f"* Today is {today:%A, %B} {today.day}, {today.year}.")
    if extra.strip():
        lines.append(extra.strip())
    return "\n".join(lines)


def system_blocks(prompt: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": prompt, "cache_control": EPHEMERAL}]


def _strip(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


def with_cache_breakpoints(messages: list[Message], count: int = USER_BREAKPOINTS) -> list[Message]:
    """A copy with a breakpoint on the last block of the last `count` user turns only."""
    user_indexes = [i for i, m in enumerate(messages) if m.get("role") == "user"][-count:]
    result: list[Message] = []
    for index, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        blocks = [_strip(b) if "cache_control" in b else b for b in content or []]
        if index in user_indexes and blocks:
            blocks[-1] = {**blocks[-1], "cache_control": EPHEMERAL}
        result.append({**message, "content": blocks})
    return result


def _image_slots(messages: list[Message]) -> list[tuple[int, int, int]]:
    """(message, tool_result, content) positions of screenshots, placeholders included."""
    slots: list[tuple[int, int, int]] = []
    for m, message in enumerate(messages):
        if message.get("role") != "user" or not isinstance(message.get("content"), list):
            continue
        for b, block in enumerate(message["content"]):
            if block.get("type") != "tool_result" or not isinstance(block.get("content"), list):
                continue
            for c, part in enumerate(block["content"]):
                if part.get("type") == "image" or (
                    part.get("type") == "text" and part.get("text") == OMITTED_IMAGE_TEXT
                ):
                    slots.append((m, b, c))
    return slots


def prune_images(messages: list[Message], keep: int, chunk: int) -> list[Message]:
    """A copy where the oldest tool-result screenshots beyond `keep` are replaced, in multiples
    of `chunk`. Placeholders count as images, so pruning a pruned history changes nothing."""
    slots = _image_slots(messages)
    chunk = max(1, chunk)
    remove = max(0, len(slots) - max(0, keep)) // chunk * chunk
    if remove == 0:
        return list(messages)
    result = list(messages)
    copied: set[tuple[int, int]] = set()
    for m, b, c in slots[:remove]:
        if (m, b) not in copied:
            if not any(mm == m for mm, _ in copied):
                result[m] = {**result[m], "content": list(result[m]["content"])}
            block = result[m]["content"][b]
            result[m]["content"][b] = {**block, "content": list(block["content"])}
            copied.add((m, b))
        result[m]["content"][b]["content"][c] = {"type": "text", "text": OMITTED_IMAGE_TEXT}
    return result
