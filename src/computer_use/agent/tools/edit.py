"""The text editor tool (text_editor_20250728, "str_replace_based_edit_tool").

Commands: view (files with optional view_range, directories two levels deep), create,
str_replace (old_str must match exactly once), insert (insert_line + insert_text). Paths are
confined to the session's HOME and /tmp, checked here on the text of the path and again by the
helper after resolving symbolic links; the file I/O itself runs as the session's user.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from computer_use.agent.tools.base import ToolError, ToolResult
from computer_use.agent.tools.edit_helper import HELPER
from computer_use.agent.versions import ToolVersions
from computer_use.desktop_port import DesktopPort

MAX_FILE_BYTES = 10 * 1024 * 1024
SNIPPET_LINES = 4
COMMANDS = ("view", "create", "str_replace", "insert")


def _numbered(text: str, first_line: int = 1) -> str:
    return "\n".join(f"{n:6}\t{line}" for n, line in enumerate(text.split("\n"), first_line))


def _string(params: Mapping[str, Any], key: str, command: str, *, empty_ok: bool = True) -> str:
    value = params.get(key)
    if not isinstance(value, str) or (not empty_ok and not value):
        raise ToolError(f"Parameter `{key}` is required for command: {command}")
    return value


class EditTool:
    name = "str_replace_based_edit_tool"

    def __init__(
        self,
        desktop: DesktopPort,
        *,
        roots: Sequence[str] = ("/home/user", "/tmp"),
        max_characters: int | None = 20_000,
        io_timeout: float = 15.0,
    ) -> None:
        self._desktop = desktop
        self.roots = tuple(posixpath.normpath(r) for r in roots)
        self.max_characters = max_characters
        self._io_timeout = io_timeout

    def definition(self, versions: ToolVersions) -> dict[str, Any]:
        definition: dict[str, Any] = {"type": versions.editor, "name": versions.editor_name}
        if self.max_characters is not None:
            definition["max_characters"] = self.max_characters
        return definition

    async def __call__(self, params: Mapping[str, Any]) -> ToolResult:
        command = params.get("command")
        if command == "undo_edit":
            raise ToolError(
                "undo_edit is not available in this editor version (text_editor_20250728)"
            )
        if command not in COMMANDS:
            raise ToolError(f"Unrecognized command {command!r}; allowed: {', '.join(COMMANDS)}")
        path = self._check_path(params.get("path"))
        if command == "view":
            return await self._view(path, params.get("view_range"))
        if command == "create":
            content = _string(params, "file_text", "create")
            await self._write(path, content, exclusive=True)
            return ToolResult(output=f"File created successfully at: {path}")
        if command == "str_replace":
            return await self._str_replace(path, params)
        return await self._insert(path, params)

    def _check_path(self, raw: object) -> str:
        if not isinstance(raw, str) or not raw:
            raise ToolError("Parameter `path` is required (an absolute path)")
        if not raw.startswith("/"):
            raise ToolError(f"The path {raw} is not absolute; use e.g. {self.roots[0]}/{raw}")
        path = posixpath.normpath(raw)
        if not any(path == root or path.startswith(root + "/") for root in self.roots):
            raise ToolError(
                f"The path {raw} is outside the directories this editor may use: "
                f"{' and '.join(self.roots)}."
            )
        return path

    async def _helper(self, request: dict[str, Any]) -> dict[str, Any]:
        payload = json.dumps({**request, "roots": list(self.roots), "max_bytes": MAX_FILE_BYTES})
        result = await self._desktop.run(
            ["python3", "-c", HELPER], timeout=self._io_timeout, input=payload.encode()
        )
        if result.timed_out:
            raise ToolError(f"the file operation on {request['path']} timed out")
        try:
            reply: dict[str, Any] = json.loads(result.stdout)
        except ValueError:
            detail = result.stderr.decode(errors="replace").strip().splitlines()
            raise ToolError(
                f"could not access {request['path']}: {detail[-1:] or 'no reply'}"
            ) from None
        error = reply.get("error")
        if error == "escapes":
            raise ToolError(
                f"{request['path']} resolves to {reply.get('real')}, "
                f"outside {' and '.join(self.roots)}"
            )
        if error == "exists":
            raise ToolError(
                f"File already exists at: {request['path']}. Cannot overwrite files using command "
                "`create`; use `str_replace` or `insert` to change it."
            )
        if error == "too large":
            raise ToolError(f"{request['path']} is too large to edit ({reply.get('size')} bytes)")
        if error == "binary":
            raise ToolError(f"{request['path']} is not a UTF-8 text file")
        if error:
            raise ToolError(f"could not access {request['path']}: {error}")
        return reply

    async def _read(self, path: str) -> str:
        reply = await self._helper({"op": "read", "path": path})
        if reply.get("kind") == "missing":
            raise ToolError(f"The path {path} does not exist. Please provide a valid path.")
        if reply.get("kind") == "dir":
            raise ToolError(f"The path {path} is a directory; only `view` works on directories.")
        return str(reply["content"])

    async def _write(self, path: str, content: str, *, exclusive: bool = False) -> None:
        await self._helper(
            {"op": "write", "path": path, "content": content, "exclusive": exclusive}
        )

    def _cap(self, text: str) -> str:
        if self.max_characters is None or len(text) <= self.max_characters:
            return text
        return (
            text[: self.max_characters]
            + f"\n<response clipped: showing {self.max_characters} of {len(text)} characters; "
            "use view_range to see the rest>"
        )

    async def _view(self, path: str, view_range: object) -> ToolResult:
        reply = await self._helper({"op": "read", "path": path})
        kind = reply.get("kind")
        if kind == "missing":
            raise ToolError(f"The path {path} does not exist. Please provide a valid path.")
        if kind == "dir":
            if view_range is not None:
                raise ToolError("view_range is not allowed when `path` points to a directory.")
            # Relative names from the helper, shown under the path the model asked for (which
            # may differ from the resolved one the helper walked).
            listing = "\n".join(posixpath.join(path, str(name)) for name in reply["listing"])
            return ToolResult(
                output=self._cap(
                    f"Here are the files and directories up to 2 levels deep in {path}, "
                    f"excluding hidden items:\n{listing}"
                )
            )
        lines = str(reply["content"]).split("\n")
        start, end = 1, len(lines)
        if view_range is not None:
            start, end = self._range(view_range, len(lines))
        shown = "\n".join(lines[start - 1 : end])
        return ToolResult(
            output=self._cap(
                f"Here's the result of running `cat -n` on {path}:\n{_numbered(shown, start)}"
            )
        )

    @staticmethod
    def _range(view_range: object, count: int) -> tuple[int, int]:
        if (
            not isinstance(view_range, list)
            or len(view_range) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in view_range)
        ):
            raise ToolError("view_range must be a list of two integers: [start_line, end_line]")
        start, end = view_range
        if not 1 <= start <= count:
            raise ToolError(f"Invalid view_range {view_range}: start_line must be 1..{count}")
        if end == -1:
            end = count
        if not start <= end <= count:
            raise ToolError(
                f"Invalid view_range {view_range}: end_line must be {start}..{count}, or -1"
            )
        return start, end

    async def _str_replace(self, path: str, params: Mapping[str, Any]) -> ToolResult:
        old = _string(params, "old_str", "str_replace", empty_ok=False)
        new = params.get("new_str") or ""
        if not isinstance(new, str):
            raise ToolError("Parameter `new_str` must be a string")
        content = await self._read(path)
        occurrences = content.count(old)
        if occurrences == 0:
            raise ToolError(
                f"No replacement was performed, old_str `{old}` did not appear verbatim in {path}."
            )
        if occurrences > 1:
            lines = [n for n, line in enumerate(content.split("\n"), 1) if old in line]
            where = f" in lines {lines}" if lines else ""
            raise ToolError(
                f"No replacement was performed. Multiple occurrences of old_str `{old}`{where}. "
                "Please ensure it is unique (include more surrounding lines)."
            )
        before = content.split(old)[0]
        updated = content.replace(old, new)
        await self._write(path, updated)
        first = before.count("\n") + 1
        return ToolResult(output=self._snippet(path, updated, first, new.count("\n")))

    async def _insert(self, path: str, params: Mapping[str, Any]) -> ToolResult:
        line = params.get("insert_line")
        # insert_text is the 20250728 name; new_str is what older versions used.
        text = params.get("insert_text", params.get("new_str"))
        if not isinstance(line, int) or isinstance(line, bool):
            raise ToolError("Parameter `insert_line` is required for command: insert")
        if not isinstance(text, str):
            raise ToolError("Parameter `insert_text` is required for command: insert")
        lines = (await self._read(path)).split("\n")
        if not 0 <= line <= len(lines):
            raise ToolError(f"Invalid `insert_line` {line}: it must be 0..{len(lines)}")
        updated = "\n".join([*lines[:line], *text.split("\n"), *lines[line:]])
        await self._write(path, updated)
        return ToolResult(output=self._snippet(path, updated, line + 1, text.count("\n")))

    def _snippet(self, path: str, content: str, first: int, extra_lines: int) -> str:
        lines = content.split("\n")
        start = max(1, first - SNIPPET_LINES)
        end = min(len(lines), first + extra_lines + SNIPPET_LINES)
        snippet = _numbered("\n".join(lines[start - 1 : end]), start)
        return self._cap(
            f"The file {path} has been edited. Here's the result of running `cat -n` on a snippet "
            f"of {path}:\n{snippet}\nReview the changes and make sure they are as expected."
        )
