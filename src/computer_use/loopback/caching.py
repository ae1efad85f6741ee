"""A prompt-cache simulation, so `usage` shows whether a client keeps its prefix stable.

The real API caches the prefix (tools, system, messages, in that order) ending at each
cache_control breakpoint, and on a later request looks back up to 20 blocks before each
breakpoint for a prefix it already holds. We do the same with hashes of the prefix: a client
that rewrites old history (e.g. prunes one screenshot every turn) sees `cache_read_input_tokens`
drop to zero, one that prunes in chunks keeps reading from the cache between chunk boundaries.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from computer_use.loopback.script import count_blocks

LOOKBACK_BLOCKS = 20
IMAGE_TOKENS = 1500  # the documented cost of a screenshot-sized image


def _strip_cache_control(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_cache_control(v) for k, v in node.items() if k != "cache_control"}
    if isinstance(node, list):
        return [_strip_cache_control(v) for v in node]
    return node


def _tokens(block: Any) -> int:
    images = count_blocks(block, "image")
    if images:
        return IMAGE_TOKENS * images + 50
    return max(1, len(json.dumps(block)) // 4)


def _flatten(body: dict[str, Any]) -> list[tuple[Any, bool]]:
    """Every cacheable block in prompt order, with whether it carries a breakpoint."""
    blocks: list[tuple[Any, bool]] = [
        (t, bool(t.get("cache_control"))) for t in body.get("tools", [])
    ]
    system = body.get("system")
    if isinstance(system, str):
        blocks.append(({"type": "text", "text": system}, False))
    elif isinstance(system, list):
        blocks.extend((b, bool(b.get("cache_control"))) for b in system)
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        for block in content or []:
            blocks.append(
                ({"role": message.get("role"), **block}, bool(block.get("cache_control")))
            )
    if body.get("cache_control") and blocks:  # automatic caching: a breakpoint on the last block
        blocks[-1] = (blocks[-1][0], True)
    return blocks


class PromptCache:
    def __init__(self) -> None:
        self._written: set[str] = set()

    def account(self, body: dict[str, Any]) -> dict[str, int]:
        """Usage for this request (input, cache creation, cache read), then cache its prefixes."""
        hashes: list[str] = []
        cumulative: list[int] = []
        running = hashlib.sha256()
        total = 0
        breakpoints: list[int] = []
        for index, (block, marked) in enumerate(_flatten(body)):
            running.update(json.dumps(_strip_cache_control(block), sort_keys=True).encode())
            hashes.append(running.copy().hexdigest())
            total += _tokens(block)
            cumulative.append(total)
            if marked:
                breakpoints.append(index)
        read_upto = -1
        for bp in breakpoints:
            for pos in range(bp, max(-1, bp - LOOKBACK_BLOCKS), -1):
                if hashes[pos] in self._written:
                    read_upto = max(read_upto, pos)
                    break
        cache_read = cumulative[read_upto] if read_upto >= 0 else 0
        last_bp = max(breakpoints, default=-1)
        creation = cumulative[last_bp] - cache_read if last_bp > read_upto else 0
        self._written.update(hashes[bp] for bp in breakpoints)
        return {
            "input_tokens": total - creation - cache_read,
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": cache_read,
        }
