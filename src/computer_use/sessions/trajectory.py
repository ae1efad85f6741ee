"""A session's run as a trajectory: one record per model turn, screenshots as files, zipped.

The format (docs/API.md, "Trajectory export"), version 1:

    trajectory.json          {"format": "computer-use-trajectory", "version": 1, session facts}
    steps.jsonl              one JSON object per model turn (the final text-only one included)
    screenshots/NNNN-K.png   the screenshot of tool call K of step NNNN (.jpg/.webp by type)

Every entry is stored uncompressed (screenshots are compressed already): a reader needs no
inflate, which keeps the console's offline viewer a few lines of JavaScript.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import IO, Any

from computer_use.sessions.models import Message, Session

FORMAT = "computer-use-trajectory"
VERSION = 1
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
CHUNK = 256 * 1024

ImageLoader = Callable[[str], Awaitable[bytes]]


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def _texts(blocks: Sequence[dict[str, Any]], kind: str, field: str) -> str | None:
    parts = [str(b.get(field, "")) for b in blocks if b.get("type") == kind]
    return "\n\n".join(parts) if parts else None


def _results(message: Message | None) -> dict[str, dict[str, Any]]:
    if message is None or message.role != "user":
        return {}
    return {str(b.get("tool_use_id")): b for b in message.content if b.get("type") == "tool_result"}


def _prompt(message: Message | None) -> str | None:
    if message is None or message.role != "user":
        return None
    return _texts(message.content, "text", "text")


def steps(session: Session, messages: Sequence[Message]) -> Iterator[dict[str, Any]]:
    """The JSONL records (without screenshot file names: `image` holds the stored image)."""
    number = 0
    for index, message in enumerate(messages):
        if message.role != "assistant":
            continue
        number += 1
        before = messages[index - 1] if index > 0 else None
        after = messages[index + 1] if index + 1 < len(messages) else None
        results = _results(after)
        calls = []
        for block in message.content:
            if block.get("type") != "tool_use":
                continue
            result = results.get(str(block.get("id")), {})
            content = result.get("content") or []
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            text = _texts(content, "text", "text")
            image = next((c for c in content if c.get("type") == "image"), None)
            error = bool(result.get("is_error"))
            calls.append(
                {
                    "id": block.get("id"),
                    "name": block.get("name"),
                    "input": block.get("input"),
                    "result_text": None if error else text,
                    "error": text if error else None,
                    "image": image,
                }
            )
        started = before.created_at if before is not None else message.created_at
        ended = after.created_at if after is not None and results else message.created_at
        errors = [c["error"] for c in calls if c["error"]]
        yield {
            "step": number,
            "time": _iso(message.created_at),
            "started_at": _iso(started),
            "duration_seconds": round((ended - started).total_seconds(), 3),
            "model": session.model,
            "prompt": _prompt(before) if before is not None and not _results(before) else None,
            "text": _texts(message.content, "text", "text"),
            "thinking": _texts(message.content, "thinking", "thinking"),
            "tool_calls": calls,
            "error": errors[0] if errors else None,
            "usage": message.usage,
        }


async def write_zip(session: Session, messages: Sequence[Message], load: ImageLoader) -> IO[bytes]:
    """The zip in an anonymous temporary file (gone when closed), rewound to its start."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 (returned open; chunks() closes it)
    try:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            lines = []
            for record in steps(session, messages):
                for k, call in enumerate(record["tool_calls"], start=1):
                    image = call.pop("image")
                    call["screenshot"] = None
                    source = (image or {}).get("source") or {}
                    if source.get("type") != "stored":
                        continue
                    ext = EXTENSIONS.get(source.get("media_type", "image/png"), "png")
                    name = f"screenshots/{record['step']:04d}-{k}.{ext}"
                    archive.writestr(name, await load(source["image_id"]))
                    call["screenshot"] = name
                lines.append(json.dumps(record, ensure_ascii=False))
            archive.writestr("steps.jsonl", "".join(line + "\n" for line in lines))
            archive.writestr(
                "trajectory.json",
                json.dumps(
                    {
                        "format": FORMAT,
                        "version": VERSION,
                        "session_id": session.id,
                        "title": session.title,
                        "model": session.model,
                        "created_at": _iso(session.created_at),
                        "exported_at": _iso(datetime.now(UTC)),
                        "steps": len(lines),
                    },
                    indent=2,
                ),
            )
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return out


def chunks(file: IO[bytes]) -> Iterator[bytes]:
    """The file's bytes in pieces, closing (and so deleting) it at the end."""
    with file:
        while chunk := file.read(CHUNK):
            yield chunk


def markers(
    session: Session,
    messages: Sequence[Message],
    video_seconds: Callable[[float], float | None],
    image_url: Callable[[str], str],
) -> list[dict[str, Any]]:
    """One marker per tool call, for the console's timeline beside the recording: where in
    the video it happened, what the step said, and its screenshot."""
    out = []
    for record in steps(session, messages):
        moment = datetime.fromisoformat(record["time"]).timestamp()
        for call in record["tool_calls"]:
            source = (call.get("image") or {}).get("source") or {}
            out.append(
                {
                    "step": record["step"],
                    "time": record["time"],
                    "video_seconds": video_seconds(moment),
                    "tool": call["name"],
                    "input": call["input"],
                    "text": record["text"],
                    "result_text": call["result_text"],
                    "error": call["error"],
                    "screenshot_url": image_url(source["image_id"])
                    if source.get("type") == "stored"
                    else None,
                }
            )
    return out
