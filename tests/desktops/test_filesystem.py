"""HomeManager: per-session homes over a shared base, with a quota, surviving restarts."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from subprocess import PIPE

import pytest

from computer_use.desktops.filesystem import FIREFOX_PROFILE, HomeManager
from computer_use.desktops.launcher import SessionSandbox, live_pids_of_uid, poll_until
from computer_use.desktops.mounts import loop_devices, read_mounts
from computer_use.desktops.overlay import IsolationMode
from computer_use.desktops.quota_image import MIB
from computer_use.desktops.users import SessionUser

from .conftest import FS_USER_PREFIX

CRASHING_SERVER = (
    """
import asyncio, sys
from pathlib import Path
from computer_use.desktops.filesystem import HomeManager
from computer_use.desktops.launcher import SessionSandbox
from computer_use.desktops.users import UserPool

async def main(data_dir: str, *session_ids: str) -> None:
    pool = UserPool(3, prefix={FS_USER_PREFIX!r})
    homes = HomeManager(Path(data_dir), enabled=True, quota_mb=20)
    await homes.setup()
    pids = []
    for slot, session_id in enumerate(session_ids, start=2):
        user = pool.user_for_slot(slot)
        home = await homes.attach(session_id, user)
        sandbox = await SessionSandbox.create(session_id=session_id, user=user, home=home)
        await sandbox.run(["sh", "-c", "echo kept > ~/Desktop/note"], timeout=10)
        program = await sandbox.spawn(["sleep", "600"])
        pids += [sandbox.namespace_pid, program.pid]
    print(*pids, flush=True)
    await asyncio.Event().wait()  # until killed

asyncio.run(main(*sys.argv[1:]))
"""
).replace("{FS_USER_PREFIX!r}", repr(FS_USER_PREFIX))

MakeSandbox = Callable[[str, SessionUser | None, Path], Awaitable[SessionSandbox]]
MakeHomes = Callable[..., Awaitable[HomeManager]]


def _session_id() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def _mounts_under(root: Path) -> list[Path]:
    return [m.mount_point for m in read_mounts() if root in m.mount_point.parents]


def _loops_under(root: Path) -> list[str]:
    return [device for device, backing in loop_devices() if root in backing.parents]


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _exists(path: Path) -> bool:
    return os.path.exists(path)


def _read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


async def _sh(sandbox: SessionSandbox, script: str) -> str:
    result = await sandbox.run(["sh", "-c", script], timeout=20)
    assert result.returncode == 0, result
    return result.stdout.decode()


async def test_setup_picks_kernel_overlay_with_an_enforced_quota_as_root(
    fs_homes: HomeManager,
) -> None:
    assert fs_homes.mode is IsolationMode.OVERLAY
    assert fs_homes.quota_enforced
    assert "overlay" in fs_homes.reason
    assert not list(fs_homes.data_dir.glob(".probe-*"))  # the probe cleaned up after itself


async def test_base_layer_has_the_skeleton_and_a_firefox_profile_without_first_run_noise(
    fs_homes: HomeManager,
) -> None:
    base = fs_homes.base_dir
    for name in ("Downloads", "Desktop", ".config", FIREFOX_PROFILE):
        assert _exists(base / name)
    user_js = _read(base / FIREFOX_PROFILE / "user.js")
    for pref in (
        'user_pref("browser.shell.checkDefaultBrowser", false);',
        'user_pref("browser.aboutwelcome.enabled", false);',
        'user_pref("datareporting.policy.dataSubmissionEnabled", false);',
        'user_pref("toolkit.telemetry.enabled", false);',
        'user_pref("browser.sessionstore.max_resumed_crashes", -1);',
        'user_pref("app.update.auto", false);',
        'user_pref("browser.startup.homepage", "about:blank");',
    ):
        assert pref in user_js
    assert "Path=session.default" in _read(base / ".mozilla/firefox/profiles.ini")


async def test_attach_gives_the_session_user_a_private_home_with_the_base_content(
    fs_homes: HomeManager, fs_users: list[SessionUser]
) -> None:
    user = fs_users[0]
    session_id = _session_id()

    home = await fs_homes.attach(session_id, user)

    assert home == fs_homes.paths(session_id).home and home in _mounts_under(fs_homes.data_dir)
    for path in (home, home / "Downloads", home / FIREFOX_PROFILE / "user.js"):
        assert (path.lstat().st_uid, path.lstat().st_gid) == (user.uid, user.gid)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    session_dir = fs_homes.paths(session_id).root.stat()
    assert (session_dir.st_uid, stat.S_IMODE(session_dir.st_mode)) == (0, 0o700)
    assert fs_homes.has_files(session_id)
    assert await fs_homes.attach(session_id, user) == home  # idempotent
    await fs_homes.remove(session_id)


async def test_an_idle_sessions_image_costs_almost_no_disk(
    fs_homes: HomeManager, fs_users: list[SessionUser]
) -> None:
    session_id = _session_id()
    await fs_homes.attach(session_id, fs_users[0])

    image = fs_homes.paths(session_id).image.stat()

    assert image.st_size == fs_homes.quota_mb * MIB
    assert image.st_blocks * 512 < 1 * MIB
    await fs_homes.remove(session_id)


async def test_files_survive_detach_and_attach_like_a_server_restart(
    fs_homes: HomeManager, fs_users: list[SessionUser]
) -> None:
    session_id = _session_id()
    home = await fs_homes.attach(session_id, fs_users[0])
    _write(home / "Desktop" / "note.txt", "still here")

    await fs_homes.detach(session_id)

    assert not _mounts_under(fs_homes.paths(session_id).root)
    assert not [d for d, b in loop_devices() if b == fs_homes.paths(session_id).image]
    assert fs_homes.has_files(session_id)
    home = await fs_homes.attach(session_id, fs_users[1])  # even under another slot's user
    assert _read(home / "Desktop" / "note.txt") == "still here"
    assert (home / "Desktop" / "note.txt").stat().st_uid == fs_users[1].uid
    await fs_homes.remove(session_id)


async def test_writing_past_the_quota_fails_with_enospc_and_other_sessions_still_write(
    fs_homes: HomeManager, fs_users: list[SessionUser], fs_sandboxes: MakeSandbox
) -> None:
    id_a, id_b = _session_id(), _session_id()
    a = await fs_sandboxes(id_a, fs_users[0], await fs_homes.attach(id_a, fs_users[0]))
    b = await fs_sandboxes(id_b, fs_users[1], await fs_homes.attach(id_b, fs_users[1]))

    too_much = fs_homes.quota_mb + 5
    result = await a.run(
        ["dd", "if=/dev/zero", "of=/home/user/Downloads/big", "bs=1M", f"count={too_much}"],
        timeout=30,
    )

    assert result.returncode != 0
    assert b"No space left on device" in result.stderr
    image = fs_homes.paths(id_a).image.stat()
    quota = fs_homes.quota_mb * MIB
    assert image.st_size == quota and image.st_blocks * 512 <= quota
    await _sh(b, "dd if=/dev/zero of=/home/user/Downloads/ok bs=1M count=5 2>/dev/null")
    # deleting frees the quota again (and, through discard, the host's disk)
    await _sh(a, "rm ~/Downloads/big && echo fits > ~/Downloads/small")


async def test_remove_leaves_no_mount_no_loop_device_and_no_directory(
    fs_homes: HomeManager, fs_users: list[SessionUser]
) -> None:
    session_id = _session_id()
    await fs_homes.attach(session_id, fs_users[0])
    root = fs_homes.paths(session_id).root
    assert _mounts_under(root) and _loops_under(root)

    await fs_homes.remove(session_id)

    assert not _mounts_under(root)
    assert not _loops_under(root)
    assert not _exists(root)
    assert not fs_homes.has_files(session_id)


async def test_reconcile_after_a_crash_cleans_mounts_loops_processes_and_gone_sessions(
    fs_make_homes: MakeHomes, fs_users: list[SessionUser]
) -> None:
    data_dir = (await fs_make_homes()).data_dir
    keep, drop = _session_id(), _session_id()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_SERVER, str(data_dir), keep, drop, stdout=PIPE
    )
    assert server.stdout is not None
    holder_a, program_a, holder_b, program_b = map(
        int, (await asyncio.wait_for(server.stdout.readline(), 30)).split()
    )

    server.kill()
    await server.wait()

    # the namespace holders die with the server, the session's programs do not
    await poll_until(
        lambda: not _pid_alive(holder_a) and not _pid_alive(holder_b),
        timeout=5,
        what="the namespace holders to die with the server",
    )
    assert _pid_alive(program_a) and _pid_alive(program_b)
    assert _mounts_under(data_dir / "sessions") and _loops_under(data_dir)

    homes = await fs_make_homes(data_dir=data_dir)  # the restarted server
    for user in fs_users[1:]:
        await SessionSandbox.kill_user_processes(user)
    await homes.reconcile(keep={keep})

    assert not live_pids_of_uid(fs_users[1].uid) and not live_pids_of_uid(fs_users[2].uid)
    assert not _mounts_under(data_dir / "sessions")
    assert not _loops_under(data_dir)
    assert not _exists(homes.paths(drop).root)
    assert homes.has_files(keep)
    home = await homes.attach(keep, fs_users[1])
    assert _read(home / "Desktop" / "note") == "kept\n"
    await homes.remove(keep)


@pytest.mark.parametrize("mode", [IsolationMode.FUSE, IsolationMode.COPY])
async def test_forced_fallback_modes_isolate_and_persist_homes(
    mode: IsolationMode,
    fs_make_homes: MakeHomes,
    fs_users: list[SessionUser],
    fs_sandboxes: MakeSandbox,
) -> None:
    homes = await fs_make_homes(force_mode=mode)
    assert homes.mode is mode and not homes.quota_enforced
    id_a, id_b = _session_id(), _session_id()
    home_a = await homes.attach(id_a, fs_users[0])
    home_b = await homes.attach(id_b, fs_users[1])
    a = await fs_sandboxes(id_a, fs_users[0], home_a)
    b = await fs_sandboxes(id_b, fs_users[1], home_b)

    await _sh(a, "echo mine > ~/Desktop/note; test -f ~/.mozilla/firefox/session.default/user.js")

    assert await _sh(b, "ls -A ~/Desktop") == ""
    assert await _sh(b, "id -u") == f"{fs_users[1].uid}\n"
    await a.close()
    await homes.detach(id_a)
    assert not _mounts_under(homes.paths(id_a).root)
    home_a = await homes.attach(id_a, fs_users[0])
    assert _read(home_a / "Desktop" / "note") == "mine\n"
    await homes.remove(id_a)
    assert not _exists(homes.paths(id_a).root)


async def test_disabled_isolation_gives_every_session_the_same_shared_home(
    fs_make_homes: MakeHomes, fs_users: list[SessionUser]
) -> None:
    homes = await fs_make_homes(enabled=False)

    home_a = await homes.attach(_session_id(), fs_users[0])
    home_b = await homes.attach(_session_id(), fs_users[0])

    assert homes.mode is IsolationMode.OFF and not homes.quota_enforced
    assert home_a == home_b == homes.data_dir / "shared-home"
    assert _exists(home_a / FIREFOX_PROFILE / "user.js")


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", ".hidden", "x" * 200])
async def test_session_ids_that_could_escape_the_sessions_directory_are_refused(
    fs_homes: HomeManager, bad: str
) -> None:
    with pytest.raises(ValueError, match="invalid session id"):
        await fs_homes.attach(bad, None)
