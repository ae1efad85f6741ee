"""Asking the person: the `ask_person` tool, and how its answer reaches the model.

The model calls `ask_person` with a `question`; the loop publishes a `question` event and ends
the run (stop reason `question`), leaving that tool_use unanswered in the stored history. The
person's next message is the answer: the runner stores it as that call's tool_result (the
message's text), so the history stays valid and the model reads the reply where it asked. The
pending question is read from the stored history, so it survives a restart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ASK_PERSON = "ask_person"

DEFINITION: dict[str, Any] = {
    "type": "custom",
    "name": ASK_PERSON,
    "description": (
        "Ask the person you work for a question and wait for their answer. Use it when you "
        "need something only they know (a choice, a missing detail, a password they must "
        "type themselves) or before anything you are unsure they want. Their reply comes back "
        "as this tool's result."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "question": {"type": "string", "description": "The question, in plain words."}
        },
        "required": ["question"],
    },
}


def question_event(call: Mapping[str, Any]) -> dict[str, Any]:
    params = call.get("input")
    question = params.get("question", "") if isinstance(params, Mapping) else ""
    return {"tool_use_id": str(call["id"]), "question": str(question)}


def pending_question(stored: Sequence[Mapping[str, Any]]) -> str | None:
    """The id of an `ask_person` call of the last assistant turn still without its result."""
    last_assistant = next(
        (i for i in range(len(stored) - 1, -1, -1) if stored[i].get("role") == "assistant"),
        None,
    )
    if last_assistant is None:
        return None
    content = stored[last_assistant].get("content")
    asks = [
        str(b["id"])
        for b in (content if isinstance(content, list) else [])
        if b.get("type") == "tool_use" and b.get("name") == ASK_PERSON and not b.get("toolset_name")
    ]
    answered: set[object] = set()
    for message in stored[last_assistant + 1 :]:
        blocks = message.get("content")
        for block in blocks if isinstance(blocks, list) else []:
            if isinstance(block, Mapping) and block.get("type") == "tool_result":
                answered.add(block.get("tool_use_id"))
    return next((a for a in asks if a not in answered), None)


def answer_blocks(tool_use_id: str, reply: str) -> list[dict[str, Any]]:
    """The user turn that answers the question with the person's message."""
    content = [{"type": "text", "text": reply}]
    return [{"type": "tool_result", "tool_use_id": tool_use_id, "content": content}]
