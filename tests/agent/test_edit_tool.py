from __future__ import annotations

import os
from pathlib import Path

import pytest

from computer_use.agent.tools import SessionTools
from computer_use.agent.versions import versions_for
from tests.agent.xvfb_desktop import XvfbDesktop

VERSIONS = versions_for("claude-opus-4-6")


def read(path: str) -> str:
    return Path(path).read_text()


def remove(path: str) -> None:
    Path(path).unlink(missing_ok=True)


async def edit(tools: SessionTools, **params: object) -> tuple[bool, str]:
    result = await tools.run("str_replace_based_edit_tool", params, VERSIONS)
    return result.is_error, result.text


async def test_create_view_replace_insert(tools: SessionTools, desktop: XvfbDesktop) -> None:
    path = f"{desktop.home}/notes/todo.txt"
    error, text = await edit(tools, command="create", path=path, file_text="one\ntwo\nthree")
    assert (error, text) == (False, f"File created successfully at: {path}")
    assert read(path) == "one\ntwo\nthree"

    error, text = await edit(tools, command="view", path=path)
    header = f"Here's the result of running `cat -n` on {path}:"
    assert text == f"{header}\n     1\tone\n     2\ttwo\n     3\tthree"

    error, text = await edit(tools, command="view", path=path, view_range=[2, -1])
    assert text.endswith("     2\ttwo\n     3\tthree") and "\tone" not in text

    error, text = await edit(tools, command="str_replace", path=path, old_str="two", new_str="2")
    assert not error and "has been edited" in text and "     2\t2" in text
    assert read(path) == "one\n2\nthree"

    error, text = await edit(tools, command="insert", path=path, insert_line=1, insert_text="1.5")
    assert not error
    assert read(path) == "one\n1.5\n2\nthree"


async def test_str_replace_needs_exactly_one_match(
    tools: SessionTools, desktop: XvfbDesktop
) -> None:
    path = desktop.home / "dup.txt"
    path.write_text("a\nb\na\n")
    error, text = await edit(tools, command="str_replace", path=str(path), old_str="a", new_str="c")
    assert error and "Multiple occurrences" in text and "[1, 3]" in text
    error, text = await edit(tools, command="str_replace", path=str(path), old_str="zzz")
    assert error and "did not appear verbatim" in text
    assert path.read_text() == "a\nb\na\n"


async def test_view_lists_directories_two_levels_deep(
    tools: SessionTools, desktop: XvfbDesktop
) -> None:
    (desktop.home / "a" / "b" / "c").mkdir(parents=True)
    (desktop.home / "a" / "b" / "c" / "deep.txt").write_text("x")
    (desktop.home / "a" / "file.txt").write_text("x")
    (desktop.home / ".hidden").write_text("x")
    error, text = await edit(tools, command="view", path=str(desktop.home))
    assert not error
    assert f"{desktop.home}/a/" in text and f"{desktop.home}/a/file.txt" in text
    assert f"{desktop.home}/a/b/" in text
    assert "deep.txt" not in text and ".hidden" not in text


async def test_view_is_clipped_to_max_characters(desktop: XvfbDesktop) -> None:
    tools = SessionTools(desktop, home=str(desktop.home), editor_max_characters=100)
    (desktop.home / "big.txt").write_text("x" * 1000)
    error, text = await edit(tools, command="view", path=f"{desktop.home}/big.txt")
    assert not error and "<response clipped" in text and len(text) < 250
    assert tools.editor.definition(VERSIONS)["max_characters"] == 100


async def test_tmp_is_allowed(tools: SessionTools, tmp_path: Path) -> None:
    target = f"/tmp/cu-edit-{os.getpid()}-{tmp_path.name}.txt"
    try:
        assert not (await edit(tools, command="create", path=target, file_text="t"))[0]
    finally:
        remove(target)


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


async def test_symlinks_cannot_escape_home(tools: SessionTools, desktop: XvfbDesktop) -> None:
    (desktop.home / "etc").symlink_to("/etc")
    error, text = await edit(tools, command="view", path=f"{desktop.home}/etc/passwd")
    assert error and "resolves to /etc/passwd" in text


async def test_create_refuses_to_overwrite_and_errors_are_clear(
    tools: SessionTools, desktop: XvfbDesktop
) -> None:
    path = desktop.home / "exists.txt"
    path.write_text("keep")
    error, text = await edit(tools, command="create", path=str(path), file_text="new")
    assert error and "already exists" in text and path.read_text() == "keep"
    error, text = await edit(tools, command="view", path=f"{desktop.home}/missing.txt")
    assert error and "does not exist" in text
    error, text = await edit(
        tools, command="insert", path=str(path), insert_line=9, insert_text="x"
    )
    assert error and "0..1" in text
    error, text = await edit(tools, command="view", path=str(path), view_range=[3, 4])
    assert error and "start_line" in text
    (desktop.home / "bin.dat").write_bytes(b"\xff\xfe\x00")
    error, text = await edit(tools, command="view", path=f"{desktop.home}/bin.dat")
    assert error and "not a UTF-8 text file" in text
