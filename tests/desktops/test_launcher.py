"""SessionSandbox: every program of a session runs as its user, in its own mount namespace."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from subprocess import PIPE

import pytest

from computer_use.desktops.filesystem import HomeManager
from computer_use.desktops.launcher import (
    SandboxError,
    SessionSandbox,
    live_pids_of_uid,
    poll_until,
)
from computer_use.desktops.mounts import loop_devices
from computer_use.desktops.users import SessionUser

MakeSandbox = Callable[[str, SessionUser | None, Path], Awaitable[SessionSandbox]]
MakeHomes = Callable[..., Awaitable[HomeManager]]


def _session_id() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def _attached(homes: HomeManager, user: SessionUser) -> tuple[str, Path]:
    session_id = _session_id()
    return session_id, await homes.attach(session_id, user)


async def _sh(sandbox: SessionSandbox, script: str) -> str:
    result = await sandbox.run(["sh", "-c", script], timeout=10)
    assert result.returncode == 0, result
    return result.stdout.decode()


def _exists(path: str | Path) -> bool:
    return os.path.exists(path)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_homes_are_isolated_and_at_the_same_path_in_every_session(
    fs_homes: HomeManager, fs_users: list[SessionUser], fs_sandboxes: MakeSandbox
) -> None:
    id_a, home_a = await _attached(fs_homes, fs_users[0])
    id_b, home_b = await _attached(fs_homes, fs_users[1])
    a = await fs_sandboxes(id_a, fs_users[0], home_a)
    b = await fs_sandboxes(id_b, fs_users[1], home_b)
    assert a.mode == b.mode == "namespace"
    assert a.home_path == b.home_path == "/home/user"

    await _sh(a, "echo only-in-a > /home/user/Downloads/note.txt")

    assert await _sh(a, "cat ~/Downloads/note.txt") == "only-in-a\n"
    assert await _sh(b, "ls -A ~/Downloads") == ""
    assert _read(f"{home_a}/Downloads/note.txt") == b"only-in-a\n"
    assert not _exists(home_b / "Downloads" / "note.txt")
    # the cwd is the mounted home, not the empty host directory beneath it
    assert await _sh(b, "pwd; echo $HOME; ls") == "/home/user\n/home/user\nDesktop\nDownloads\n"


async def test_commands_run_as_the_session_user_without_extra_groups_or_privileges(
    fs_homes: HomeManager, fs_users: list[SessionUser], fs_sandboxes: MakeSandbox
) -> None:
    session_id, home = await _attached(fs_homes, fs_users[0])
    sandbox = await fs_sandboxes(session_id, fs_users[0], home)
    user = fs_users[0]

    assert await _sh(sandbox, "id -u; id -g; id -G") == f"{user.uid}\n{user.gid}\n{user.gid}\n"
    assert await _sh(sandbox, "grep NoNewPrivs /proc/self/status") == "NoNewPrivs:\t1\n"
    env = dict(
        line.split("=", 1) for line in (await _sh(sandbox, "env")).splitlines() if "=" in line
    )
    assert env["USER"] == env["LOGNAME"] == user.name
    assert env["HOME"] == "/home/user" and env["TMPDIR"] == "/tmp"
    assert env["LANG"] == "C.UTF-8"
    assert "ANTHROPIC_API_KEY" not in env  # the server's environment does not leak in


async def test_a_user_cannot_reach_another_sessions_home_through_the_host_path(
    fs_homes: HomeManager, fs_users: list[SessionUser], fs_sandboxes: MakeSandbox
) -> None:
    _, home_a = await _attached(fs_homes, fs_users[0])
    id_b, home_b = await _attached(fs_homes, fs_users[1])
    await asyncio.to_thread((home_a / "secret").write_text, "a's")
    b = await fs_sandboxes(id_b, fs_users[1], home_b)

    result = await b.run(["cat", str(home_a / "secret")], timeout=5)

    assert result.returncode != 0 and result.stdout == b""


async def test_tmp_var_tmp_dev_shm_and_the_x11_directory_are_private_to_each_session(
    fs_homes: HomeManager, fs_users: list[SessionUser], fs_sandboxes: MakeSandbox
) -> None:
    id_a, home_a = await _attached(fs_homes, fs_users[0])
    id_b, home_b = await _attached(fs_homes, fs_users[1])
    a = await fs_sandboxes(id_a, fs_users[0], home_a)
    b = await fs_sandboxes(id_b, fs_users[1], home_b)
    marker = f"only-in-{id_a}"
    planted = [f"/tmp/{marker}", f"/var/tmp/{marker}", f"/dev/shm/{marker}", "/tmp/.X11-unix/X9"]

    await _sh(a, "touch " + " ".join(planted))

    assert await _sh(a, "ls /tmp") == f"{marker}\n"
    assert await _sh(b, "ls /tmp /var/tmp /dev/shm /tmp/.X11-unix") == (
        "/dev/shm:\n\n/tmp:\n\n/tmp/.X11-unix:\n\n/var/tmp:\n"
    )
    assert not any(_exists(path) for path in planted)
    # The session's X11 directory is its own, not the host's (a host that never ran an X
    # server outside a session has none).
    inside = await _sh(b, "stat -c '%d %i' /tmp/.X11-unix")
    with contextlib.suppress(FileNotFoundError):
        host_x11 = os.stat("/tmp/.X11-unix")
        assert inside != f"{host_x11.st_dev} {host_x11.st_ino}\n"
    assert (await _sh(b, "stat -c '%a %U' /tmp/.X11-unix")) == "1777 root\n"


async def test_spawned_pid_is_the_program_itself_in_its_own_process_group(
    fs_homes: HomeManager, fs_users: list[SessionUser], fs_sandboxes: MakeSandbox
) -> None:
    session_id, home = await _attached(fs_homes, fs_users[0])
    sandbox = await fs_sandboxes(session_id, fs_users[0], home)

    proc = await sandbox.spawn(["sleep", "60"], env={"MARKER": "x"}, cwd="/home/user/Downloads")

    # nsenter and setpriv exec (never fork) on their way to the program
    await poll_until(
        lambda: _read(f"/proc/{proc.pid}/comm") == b"sleep\n",
        timeout=5,
        what="the exec chain to reach sleep",
    )
    assert os.getpgid(proc.pid) == proc.pid
    assert os.stat(f"/proc/{proc.pid}").st_uid == fs_users[0].uid
    assert os.readlink(f"/proc/{proc.pid}/cwd") == "/home/user/Downloads"
    assert b"MARKER=x" in _read(f"/proc/{proc.pid}/environ").split(b"\0")
    proc.kill()
    await proc.wait()


async def test_run_passes_input_and_environment_and_returns_both_streams(
    fs_homes: HomeManager, fs_users: list[SessionUser], fs_sandboxes: MakeSandbox
) -> None:
    session_id, home = await _attached(fs_homes, fs_users[0])
    sandbox = await fs_sandboxes(session_id, fs_users[0], home)

    result = await sandbox.run(
        ["sh", "-c", 'cat; echo "$GREETING" >&2; exit 3'],
        timeout=5,
        env={"GREETING": "héllo"},
        input="ünïcode in\n".encode(),
    )

    assert result.returncode == 3 and not result.timed_out
    assert result.stdout == "ünïcode in\n".encode()
    assert result.stderr == "héllo\n".encode()


async def test_run_timeout_kills_the_whole_process_group(
    fs_homes: HomeManager, fs_users: list[SessionUser], fs_sandboxes: MakeSandbox
) -> None:
    session_id, home = await _attached(fs_homes, fs_users[0])
    sandbox = await fs_sandboxes(session_id, fs_users[0], home)

    result = await sandbox.run(["sh", "-c", "sleep 60 & echo $!; wait"], timeout=0.5)

    assert result.timed_out and result.returncode is None
    background = int(result.stdout)
    await poll_until(lambda: not _pid_alive(background), timeout=5, what="background sleep")


async def test_cancelling_run_kills_the_command(
    fs_homes: HomeManager, fs_users: list[SessionUser], fs_sandboxes: MakeSandbox
) -> None:
    user = fs_users[0]
    session_id, home = await _attached(fs_homes, user)
    sandbox = await fs_sandboxes(session_id, user, home)
    run = asyncio.create_task(sandbox.run(["sleep", "60"], timeout=60))
    await poll_until(lambda: bool(live_pids_of_uid(user.uid)), timeout=5, what="sleep to start")
    (sleeper,) = live_pids_of_uid(user.uid)

    run.cancel()

    with pytest.raises(asyncio.CancelledError):
        await run
    await poll_until(lambda: not _pid_alive(sleeper), timeout=5, what="the command to die")


async def test_close_kills_every_process_of_the_session_even_escaped_daemons(
    fs_homes: HomeManager, fs_users: list[SessionUser]
) -> None:
    user = fs_users[0]
    session_id, home = await _attached(fs_homes, user)
    sandbox = await SessionSandbox.create(session_id=session_id, user=user, home=home)
    # a new session and process group, orphaned: a pid we were never told about
    daemon = await sandbox.run(
        ["setsid", "--wait", "sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], timeout=5
    )
    escaped = int(daemon.stdout)
    assert _pid_alive(escaped) and os.getpgid(escaped) != os.getpgid(os.getpid())
    spawned = await sandbox.spawn(["sleep", "300"], stdout=PIPE)

    await sandbox.close()

    assert live_pids_of_uid(user.uid) == []
    assert not _pid_alive(escaped)
    assert spawned.returncode is not None  # reaped
    await sandbox.close()  # idempotent
    with pytest.raises(SandboxError, match="closed"):
        await sandbox.spawn(["true"])


async def test_another_sessions_namespace_does_not_pin_a_removed_sessions_loop_device(
    fs_homes: HomeManager, fs_users: list[SessionUser], fs_sandboxes: MakeSandbox
) -> None:
    id_a, _ = await _attached(fs_homes, fs_users[0])
    id_b, home_b = await _attached(fs_homes, fs_users[1])
    # b's namespace is born while a is mounted, so it starts with copies of a's mounts
    b = await fs_sandboxes(id_b, fs_users[1], home_b)
    image_a = fs_homes.paths(id_a).image

    await fs_homes.remove(id_a)

    assert not [dev for dev, backing in loop_devices() if backing == image_a]
    assert await _sh(b, "echo still-works > ~/f; cat ~/f") == "still-works\n"


async def test_without_a_user_the_sandbox_runs_directly_as_ourselves(
    tmp_path: Path, fs_sandboxes: MakeSandbox
) -> None:
    sandbox = await fs_sandboxes(_session_id(), None, tmp_path)

    out = await _sh(sandbox, 'id -u; echo "$HOME"; echo "$TMPDIR"; pwd')

    uid, home, tmpdir, cwd = out.splitlines()
    assert sandbox.mode == "direct"
    assert (int(uid), home, cwd) == (os.getuid(), str(tmp_path), str(tmp_path))
    assert _exists(tmpdir) and tmpdir != "/tmp"
    await sandbox.close()
    assert not _exists(tmpdir)
