"""A second live instance with our user prefix or one of our displays refuses to start, before
touching anything of the first; a crashed instance's lock is taken over (real servers)."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from computer_use.desktops.launcher import live_pids_of_uid
from computer_use.desktops.netrules import FAMILY, TABLE
from tests import slots
from tests.conftest import server_env
from tests.desktop_fixtures import fs_force_cleanup
from tests.helpers import REPO, ServerProcess, free_port

PREFIX, BASE = "cu-hl", 1350


def _env(data_dir: Path, prefix: str, base: int) -> dict[str, str]:
    return server_env(
        data_dir, DESKTOP_USER_PREFIX=prefix, DESKTOP_DISPLAY_BASE=str(base), MAX_DISPLAYS="2"
    )


def _second(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`computer-use serve` as an operator would start it; it must exit on its own."""
    return subprocess.run(
        [sys.executable, "-m", "computer_use", "serve", "--migrate", "--port", str(free_port())],
        cwd=REPO,
        env=slots.env({**os.environ, **env}),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _desktop_pids(uid: int) -> set[int]:
    """Xvfb and the window manager of the uid's desktop (x11vnc runs only while watched)."""
    found = set()
    for pid in live_pids_of_uid(uid):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm in ("Xvfb", "jwm"):
            found.add(pid)
    return found


def _chain(prefix: str) -> bool:
    listing = subprocess.run(
        ["nft", "list", "table", FAMILY, TABLE], capture_output=True, text=True, check=False
    )
    return f"sessions_{prefix.replace('-', '_')}" in listing.stdout


def test_a_second_instance_exits_touching_nothing_and_a_dead_ones_lock_is_taken_over(
    tmp_path: Path,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: session users, nftables")
    first = ServerProcess(_env(tmp_path / "a", PREFIX, BASE), tmp_path / "a.log")
    (tmp_path / "a").mkdir()
    try:
        first.start(timeout=180)  # a busy host (2 cores, many suites) makes starts slow
        with first.client() as http:
            created = http.post("/api/v1/sessions", json={"title": "first's"})
            assert created.status_code == 201, created.text
            session_id = created.json()["id"]
        user = f"{slots.prefix(PREFIX)}01"
        uid = pwd.getpwnam(user).pw_uid
        pids = _desktop_pids(uid)  # not Firefox's helpers: they come and go on their own
        assert len(pids) == 2 and _chain(slots.prefix(PREFIX))

        same_prefix = _second(_env(tmp_path / "b", PREFIX, BASE + 40))
        overlapping = _second(_env(tmp_path / "c", "cu-hm", BASE + 1))

        for result, setting in ((same_prefix, "DESKTOP_USER_PREFIX"),
                                (overlapping, "DESKTOP_DISPLAY_BASE")):  # fmt: skip
            assert result.returncode != 0
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and setting in lines[0], result.stderr
            assert "Traceback" not in result.stderr + result.stdout
        assert _desktop_pids(uid) == pids, "the second instance killed our desktop"
        assert _chain(slots.prefix(PREFIX)), "the second instance removed our network rules"
        with first.client() as http:
            assert http.get(f"/api/v1/sessions/{session_id}").json()["status"] == "active"

        first.stop(signal.SIGKILL)  # a crash: its flocks go with it, its desktop stays behind
        assert pids & set(live_pids_of_uid(uid))
        again = ServerProcess(_env(tmp_path / "a", PREFIX, BASE), tmp_path / "a2.log")
        try:
            again.start(timeout=180)
            assert not pids & set(live_pids_of_uid(uid)), "orphans of the crash survived"
            with again.client() as http:
                health = http.get("/api/v1/health").json()["desktops"]
                assert health["instance_lock"] == {"enabled": True, "reason": None}
                assert http.get(f"/api/v1/sessions/{session_id}").json()["status"] == "active"
        finally:
            again.stop()
    finally:
        first.stop(signal.SIGKILL)
        # After a failure the killed server's desktop and mounts would outlive the test.
        fs_force_cleanup(tmp_path / "a", users=(f"{slots.prefix(PREFIX)}01",))
