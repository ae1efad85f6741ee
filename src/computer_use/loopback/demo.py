"""The built-in demo model: "Search the weather in Santiago, Chile" without an API key.

A responder, not a list: it decides from the request alone (how many assistant turns followed
the user's last prompt), so any number of sessions can use one server at the same time and each
new prompt starts the sequence again.
"""

from __future__ import annotations

import base64
import re
import struct
from typing import Any

from computer_use.loopback.script import (
    RecordedRequest,
    Reply,
    ToolUse,
    Turn,
    bash,
    computer,
    member,
    say,
)

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


# The demo cannot use the network (there may be none), so it writes a small local page and
# uses that: Firefox opens it, the "model" types a place and clicks Search, the page answers.
DEMO_PAGE = "/home/user/demo/weather.html"
_PAGE_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Weather search (offline demo page)</title>
<style>
body { margin: 0; font: 18px sans-serif; background: #f4f6fb; color: #1d2433; }
header { height: 60px; background: #2f4b7c; color: white; font-size: 22px;
         line-height: 60px; padding-left: 40px; }
#q { position: absolute; top: 100px; left: 40px; width: 400px; height: 40px;
     box-sizing: border-box; font-size: 18px; padding: 0 10px; }
#go { position: absolute; top: 100px; left: 460px; width: 120px; height: 40px;
      font-size: 18px; }
#result { position: absolute; top: 170px; left: 40px; font-size: 28px; }
</style></head>
<body><header>Weather search &middot; offline demo page</header>
<input id="q" placeholder="City" autofocus>
<button id="go">Search</button>
<div id="result"></div>
<script>
document.getElementById("go").addEventListener("click", () => {
  const city = document.getElementById("q").value.trim();
  let h = 0;
  for (const ch of city) h += ch.codePointAt(0);
  const kinds = ["sunny", "partly cloudy", "light rain", "windy"];
  document.getElementById("result").textContent =
    city + ": " + (14 + h % 15) + " \u00b0C, " + kinds[h % 4];
});
</script></body></html>
"""
# Page coordinates of the search box and button, plus Firefox's toolbars above the page.
_CONTENT_TOP = 104
_SEARCH_BOX = (240, _CONTENT_TOP + 120)
_SEARCH_BUTTON = (520, _CONTENT_TOP + 120)


def place_of(query: str) -> str:
    """ "weather in Santiago, Chile" -> "Santiago, Chile"."""
    return re.sub(r"^(?:the\s+)?weather\s+(?:in|for|at)\s+", "", query, flags=re.I) or query


def forecast(place: str) -> str:
    """What the demo page shows for `place` (the same arithmetic as its script)."""
    total = sum(ord(ch) for ch in place)
    kinds = ["sunny", "partly cloudy", "light rain", "windy"]
    return f"{14 + total % 15} \u00b0C, {kinds[total % 4]}"


def screenshot_size(request: RecordedRequest) -> tuple[int, int] | None:
    """The size of the latest PNG screenshot in the conversation: what a model on the computer
    toolset (which declares no display size) knows of the screen."""
    for message in reversed(request.messages):
        content = message.get("content")
        for block in reversed(content if isinstance(content, list) else []):
            inner = block.get("content") if block.get("type") == "tool_result" else None
            for part in inner if isinstance(inner, list) else []:
                source = part.get("source") or {}
                if part.get("type") == "image" and source.get("type") == "base64":
                    head = base64.b64decode(str(source.get("data", ""))[:44])
                    if head[:8] == b"\x89PNG\r\n\x1a\n":
                        width, height = struct.unpack(">II", head[16:24])
                        return int(width), int(height)
    return None


def demo_responder(request: RecordedRequest) -> Turn:
    messages = request.messages
    last_prompt = max((i for i, m in enumerate(messages) if _is_prompt(m)), default=0)
    step = sum(1 for m in messages[last_prompt:] if m.get("role") == "assistant")
    query = search_query(_prompt_text(messages[last_prompt]) if messages else "")
    place = place_of(query)
    thinking_on = (request.body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
    toolset = "computer" in request.toolset_names
    size = screenshot_size(request) if toolset else request.display_size
    if (size is None and not toolset) or request.tool("bash") is None:
        return say(
            f"(offline demo model) I would search for {query!r}, but I have no computer tool."
        )
    width, height = size or (1024, 768)  # before the first screenshot only step 0 runs

    def act(action: str, **params: Any) -> ToolUse:
        # The same action on either path: a toolset member, or the beta tool's `action`.
        return member(action, **params) if toolset else computer(action, **params)

    # A maximised Firefox has its address bar near the top centre; ctrl+l focuses it anyway.
    address_bar = [width // 2, max(1, round(height * 0.075))]
    write_page = f"mkdir -p ~/demo && cat > {DEMO_PAGE} <<'HTML'\n{_PAGE_HTML}HTML\necho written"
    steps: list[Reply] = [
        say(
            "I'll take a screenshot to see what is on the desktop.",
            act("screenshot"),
            thinking=f"The user wants me to search for {query}. First, look at the screen."
            if thinking_on
            else None,
        ),
        say(
            "This is the offline demo, with no network: I'll write a small local weather page "
            "to search on.",
            bash(write_page),
        ),
        say(
            "Now I'll open it in Firefox: first its address bar.",
            act("left_click", coordinate=address_bar),
            act("key", text="ctrl+l"),
        ),
        say(
            "Typing the page's address.",
            act("type", text=f"file://{DEMO_PAGE}"),
            act("key", text="Return"),
        ),
        say(
            f"I'll click the search box and type {place}.",
            act("left_click", coordinate=list(_SEARCH_BOX)),
            act("type", text=place),
        ),
        say("And click Search.", act("left_click", coordinate=list(_SEARCH_BUTTON))),
        say("Let me check the result.", act("screenshot")),
    ]
    if step < len(steps):
        return steps[step]
    return say(
        f"The demo page shows {forecast(place)} for {place}. (This is the offline demo: the "
        "page and its forecast are made up. With an Anthropic API key, Claude searches the "
        "real web and reads you the real forecast.)"
    )
