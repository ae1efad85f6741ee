from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from computer_use.agent.tools import SessionTools
from computer_use.agent.versions import versions_for
from computer_use.desktops import Desktop
from tests.desktop_fixtures import in_session, session_read, session_write

VERSIONS = versions_for("claude-opus-4-6")
HOME = "/home/user"  # the session's, in its mount namespace


async def edit(tools: SessionTools, **params: object) -> tuple[bool, str]:
    result = await tools.run("str_replace_based_edit_tool", params, VERSIONS)
    return result.is_error, result.text


async def test_create_view_replace_insert(tools: SessionTools, desktop: Desktop) -> None:
    path = f"{HOME}/notes/todo.txt"
    error, text = await edit(tools, command="create", path=path, file_text="one\ntwo\nthree")
    assert (error, text) == (False, f"File created successfully at: {path}")
    assert await session_read(desktop, path) == "one\ntwo\nthree"
    # the session's user owns what its editor wrote, as if its own program had
    assert await in_session(desktop, 'test -O "$1" && echo mine', path) == b"mine\n"

    error, text = await edit(tools, command="view", path=path)
    header = f"Here's the result of running `cat -n` on {path}:"
    assert text == f"{header}\n     1\tone\n     2\ttwo\n     3\tthree"

    error, text = await edit(tools, command="view", path=path, view_range=[2, -1])
    assert text.endswith("     2\ttwo\n     3\tthree") and "\tone" not in text

    error, text = await edit(tools, command="str_replace", path=path, old_str="two", new_str="2")
    assert not error and "has been edited" in text and "     2\t2" in text
    assert await session_read(desktop, path) == "one\n2\nthree"

    error, text = await edit(tools, command="insert", path=path, insert_line=1, insert_text="1.5")
    assert not error
    assert await session_read(desktop, path) == "one\n1.5\n2\nthree"


async def test_str_replace_needs_exactly_one_match(tools: SessionTools, desktop: Desktop) -> None:
    path = f"{HOME}/dup.txt"
    await session_write(desktop, path, "a\nb\na\n")
    error, text = await edit(tools, command="str_replace", path=path, old_str="a", new_str="c")
    assert error and "Multiple occurrences" in text and "[1, 3]" in text
    error, text = await edit(tools, command="str_replace", path=path, old_str="zzz")
    assert error and "did not appear verbatim" in text
    assert await session_read(desktop, path) == "a\nb\na\n"


async def test_view_lists_directories_two_levels_deep(
    tools: SessionTools, desktop: Desktop
) -> None:
    await session_write(desktop, f"{HOME}/a/b/c/deep.txt", "x")
    await session_write(desktop, f"{HOME}/a/file.txt", "x")
    await session_write(desktop, f"{HOME}/.hidden", "x")
    error, text = await edit(tools, command="view", path=HOME)
    assert not error
    assert f"{HOME}/a/" in text and f"{HOME}/a/file.txt" in text
    assert f"{HOME}/a/b/" in text
    assert "deep.txt" not in text and ".hidden" not in text


async def test_view_is_clipped_to_max_characters(desktop: Desktop) -> None:
    tools = SessionTools(desktop, editor_max_characters=100)
    await session_write(desktop, f"{HOME}/big.txt", "x" * 1000)
    error, text = await edit(tools, command="view", path=f"{HOME}/big.txt")
    assert not error and "<response clipped" in text and len(text) < 250
    assert tools.editor.definition(VERSIONS)["max_characters"] == 100


async def test_tmp_is_allowed_and_is_the_sessions_own(
    tools: SessionTools, desktop: Desktop, tmp_path: Path
) -> None:
    target = f"/tmp/cu-edit-{tmp_path.name}.txt"
    assert not (await edit(tools, command="create", path=target, file_text="t"))[0]
    assert await session_read(desktop, target) == "t"
    # the session's /tmp is its own, not the host's
    assert not await asyncio.to_thread(Path(target).exists)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"command": "view", "path": "/etc/passwd"}, "outside the directories"),
        ({"command": "view", "path": "notes.txt"}, "not absolute"),
        ({"command": "view", "path": "/tmp/../etc/passwd"}, "outside the directories"),
        ({"command": "undo_edit", "path": "/tmp/x"}, "undo_edit is not available"),
        ({"command": "delete", "path": "/tmp/x"}, "Unrecognized command"),
    ],
)
async def test_bad_requests_are_refused(
    tools: SessionTools, params: dict[str, object], message: str
) -> None:
    error, text = await edit(tools, **params)
    assert error and message in text


async def test_symlinks_cannot_escape_home(tools: SessionTools, desktop: Desktop) -> None:
    await in_session(desktop, 'ln -s /etc "$1"', f"{HOME}/etc")
    error, text = await edit(tools, command="view", path=f"{HOME}/etc/passwd")
    assert error and "resolves to /etc/passwd" in text


async def test_create_refuses_to_overwrite_and_errors_are_clear(
    tools: SessionTools, desktop: Desktop
) -> None:
    path = f"{HOME}/exists.txt"
    await session_write(desktop, path, "keep")
    error, text = await edit(tools, command="create", path=path, file_text="new")
    assert error and "already exists" in text and await session_read(desktop, path) == "keep"
    error, text = await edit(tools, command="view", path=f"{HOME}/missing.txt")
    assert error and "does not exist" in text
    error, text = await edit(tools, command="insert", path=path, insert_line=9, insert_text="x")
    assert error and "0..1" in text
    error, text = await edit(tools, command="view", path=path, view_range=[3, 4])
    assert error and "start_line" in text
    await session_write(desktop, f"{HOME}/bin.dat", b"\xff\xfe\x00")
    error, text = await edit(tools, command="view", path=f"{HOME}/bin.dat")
    assert error and "not a UTF-8 text file" in text
