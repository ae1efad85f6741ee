"""The built-in demo model: "Search the weather in Santiago, Chile" without an API key.

A responder, not a list: it decides from the request alone (how many assistant turns followed
the user's last prompt), so any number of sessions can use one server at the same time and each
new prompt starts the sequence again.
"""

from __future__ import annotations

import re
from typing import Any

from computer_use.loopback.script import RecordedRequest, Reply, Turn, computer, say

_SEARCH = re.compile(
    r"^\s*(?:please\s+)?search\s+(?:for\s+)?(?:the\s+)?(?P<query>.+?)[.!?]?\s*$", re.I
)


def _is_prompt(message: dict[str, Any]) -> bool:
    """A user message typed by a person (as opposed to one carrying tool results)."""
    if message.get("role") != "user":
        return False
    content = message.get("content")
    if isinstance(content, str):
        return True
    return not any(b.get("type") == "tool_result" for b in content or [])


def _prompt_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return " ".join(str(b.get("text", "")) for b in content or [] if b.get("type") == "text")


def search_query(prompt: str) -> str:
    """ "Search the weather in Santiago, Chile" -> "weather in Santiago, Chile"."""
    match = _SEARCH.match(prompt)
    return (match.group("query") if match else prompt).strip() or "weather in Santiago, Chile"


def demo_responder(request: RecordedRequest) -> Turn:
    messages = request.messages
    last_prompt = max((i for i, m in enumerate(messages) if _is_prompt(m)), default=0)
    step = sum(1 for m in messages[last_prompt:] if m.get("role") == "assistant")
    query = search_query(_prompt_text(messages[last_prompt]) if messages else "")
    thinking_on = (request.body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
    if request.display_size is None:
        return say(
            f"(offline demo model) I would search for {query!r}, but I have no computer tool."
        )
    width, height = request.display_size
    # A maximised Firefox has its address bar near the top centre; ctrl+l focuses it anyway.
    address_bar = [width // 2, max(1, round(height * 0.075))]
    steps: list[Reply] = [
        say(
            "I'll take a screenshot to see what is on the desktop.",
            computer("screenshot"),
            thinking=f"The user wants me to search for {query}. First, look at the screen."
            if thinking_on
            else None,
        ),
        say(
            "Firefox is open. I'll focus its address bar.",
            computer("left_click", coordinate=address_bar),
            computer("key", text="ctrl+l"),
        ),
        say(f"Now I'll type the search: {query}.", computer("type", text=query)),
        say("And press Enter to search.", computer("key", text="Return")),
        say("Let me check the results.", computer("screenshot")),
    ]
    if step < len(steps):
        return steps[step]
    return say(
        f"I searched for \u201c{query}\u201d in Firefox and the results are on the screen. "
        "(This answer comes from the offline demo model, which cannot read the page: with an "
        "Anthropic API key, Claude would read the forecast and summarise it here.)"
    )
