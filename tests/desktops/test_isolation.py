"""The isolation matrix: from inside session A, through A's own sandbox, every way of reaching
session B or the service is denied; a fork bomb and a memory hog in A stay in A.

Own display range (1200+) and users (cu-ia..), so a running server or other suites are never
touched. Needs root, nftables and cgroups: all present on the project's machines, so nothing
here is skipped there.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from computer_use.desktops import Desktop, DesktopManager, netrules
from computer_use.desktops.launcher import collect, live_pids_of_uid, poll_until, run_command
from computer_use.desktops.netrules import FAMILY, TABLE
from tests import slots
from tests.desktop_fixtures import FS_QUOTA_MB, fs_force_cleanup

BASE = slots.display(1200)
PREFIX = slots.prefix("cu-ia")
MEMORY_MB = 256
MAX_TASKS = 96
PYTHON = "/usr/bin/python3"

# Prints the errno name of connect()ing to (host, port), or "connected".
CONNECT = """
import socket, sys, errno
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e)))
"""


@pytest.fixture(scope="module")
async def iso_manager(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DesktopManager]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates users, cgroups and nftables rules")
    data_dir = tmp_path_factory.mktemp("iso-data")
    manager = DesktopManager(
        data_dir,
        width=640,
        height=480,
        max_displays=2,
        isolation_enabled=True,
        disk_quota_mb=FS_QUOTA_MB,
        display_base=BASE,
        user_prefix=PREFIX,
        memory_limit_mb=MEMORY_MB,
        max_processes=MAX_TASKS,
    )
    try:
        await manager.start()
        yield manager
    finally:
        await manager.shutdown()
        fs_force_cleanup(data_dir)


@pytest.fixture(scope="module")
async def session_a(iso_manager: DesktopManager) -> Desktop:
    return await iso_manager.create("iso-a", browser=False)


@pytest.fixture(scope="module")
async def session_b(iso_manager: DesktopManager) -> Desktop:
    return await iso_manager.create("iso-b", browser=False)


@pytest.fixture
def service_port() -> Iterator[int]:
    """A stand-in for the service's API port: a listener on every local address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


async def in_session(desktop: Desktop, argv: list[str], *, timeout: float = 10) -> str:
    """What a command run as the agent's bash tool would print (with the session's X env)."""
    result = await desktop.sandbox.run(argv, timeout=timeout, env=desktop.spec.env())
    return (result.stdout + result.stderr).decode(errors="replace").strip()


async def connect_from(desktop: Desktop, host: str, port: int) -> str:
    return await in_session(desktop, [PYTHON, "-c", CONNECT, host, str(port)])


def primary_address() -> str | None:
    """This host's address on its default route (packets to it still go through `lo`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
        return None if address.startswith("127.") else address


async def test_health_reports_every_isolation_measure_on(iso_manager: DesktopManager) -> None:
    health = iso_manager.health()
    for measure in ("process_view", "network", "resource_limits"):
        assert health[measure]["enabled"] is True, (measure, health[measure])
        assert health[measure]["reason"] is None
    assert health["resource_limits"]["memory_limit_mb"] == MEMORY_MB
    assert health["resource_limits"]["max_processes"] == MAX_TASKS


async def test_a_session_cannot_read_another_sessions_files(
    session_a: Desktop, session_b: Desktop
) -> None:
    await in_session(session_b, ["sh", "-c", "echo secret-b > /home/user/secret.txt"])
    assert await in_session(session_b, ["cat", "/home/user/secret.txt"]) == "secret-b"
    b_home = session_b.sandbox.home
    b_pid = max(live_pids_of_uid(session_b.user.uid))
    for path in (f"{b_home}/secret.txt", f"/proc/{b_pid}/root/home/user/secret.txt"):
        out = await in_session(session_a, ["cat", path])
        assert "secret-b" not in out
        assert "Permission denied" in out or "No such file" in out, out
    assert "secret" not in await in_session(session_a, ["ls", "-a", "/home/user"])


async def test_a_session_sees_only_its_own_processes(
    session_a: Desktop, session_b: Desktop
) -> None:
    # A shell with a child of its own lists the processes (`sleep` ends with the probe).
    probe = ["sh", "-c", "sleep 30 & ps -e -o pid=,comm=; kill $!"]
    rows = [line.split() for line in (await in_session(session_a, probe)).splitlines()]
    listed = {int(pid): comm for pid, comm in rows}
    b_pids = set(live_pids_of_uid(session_b.user.uid))
    assert b_pids and not listed.keys() & b_pids
    assert {"sh", "sleep", "ps"} <= set(listed.values())  # what it started is listed
    assert 1 not in listed  # nor is anything of root's
    # Each program of a session is its own Landlock domain (landlock.py), which also hides
    # the session's other programs: the X server is not this shell's business.
    xvfb = session_a.supervisor.components["xvfb"].proc
    assert xvfb is not None and xvfb.pid not in listed


async def test_a_session_cannot_signal_another_sessions_processes(
    session_a: Desktop, session_b: Desktop
) -> None:
    b_pids = sorted(live_pids_of_uid(session_b.user.uid))
    script = (
        "import os, sys, errno\n"
        "for pid in map(int, sys.argv[1:]):\n"
        "    try:\n"
        "        os.kill(pid, 9)\n"
        "        print('killed', pid)\n"
        "    except OSError as e:\n"
        "        print(errno.errorcode[e.errno])\n"
    )
    out = (await in_session(session_a, [PYTHON, "-c", script, *map(str, b_pids)])).split("\n")
    assert out == ["EPERM"] * len(b_pids)
    assert set(b_pids) <= set(live_pids_of_uid(session_b.user.uid))


async def test_a_session_cannot_use_another_sessions_display(
    session_a: Desktop, session_b: Desktop
) -> None:
    own = await in_session(session_a, ["xdpyinfo", "-display", session_a.spec.client_display])
    assert "screen #0" in own  # the client works on the session's own display
    for display in (session_b.display, session_b.spec.client_display):
        other = await in_session(session_a, ["xdpyinfo", "-display", display])
        assert "unable to open display" in other
    b_cookie = session_b.spec.xauthority
    out = await in_session(session_a, ["cat", str(b_cookie)])
    assert "Permission denied" in out or "No such file" in out


async def test_a_session_cannot_connect_to_another_sessions_vnc_socket(
    session_a: Desktop, session_b: Desktop
) -> None:
    await session_b.open_vnc()  # someone watches session b: its x11vnc runs
    with socket.socket(socket.AF_UNIX) as service:
        service.connect(str(session_b.vnc_socket))  # reachable for the service (its proxy)
        assert service.recv(12) == b"RFB 003.008\n"
    script = (
        "import socket, sys, errno\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    s.connect(sys.argv[1]); print('connected')\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
    )
    try:
        out = await in_session(session_a, [PYTHON, "-c", script, str(session_b.vnc_socket)])
    finally:
        session_b.close_vnc()
    assert out in ("EACCES", "ENOENT"), out


async def test_a_session_cannot_call_the_services_port(
    session_a: Desktop, service_port: int
) -> None:
    with socket.create_connection(("127.0.0.1", service_port), timeout=3):
        pass
    targets = ["127.0.0.1", "127.0.0.2"]
    if (address := primary_address()) is not None:
        targets.append(address)
    for host in targets:
        assert await connect_from(session_a, host, service_port) == "ECONNREFUSED", host
    assert await connect_from(session_a, "::1", service_port) == "ECONNREFUSED"


async def test_network_rules_only_match_loopback_so_other_hosts_stay_reachable(
    session_a: Desktop,
) -> None:
    listing = await run_command(["nft", "list", "table", FAMILY, TABLE])
    rules = [
        line.strip()
        for line in listing.stdout.decode().splitlines()
        if "meta skuid" in line and str(session_a.user.uid) in line
    ]
    # Loopback rejected whatever the port; elsewhere only the egress policy's ranges.
    assert any('oifname "lo"' in rule and rule.endswith("reject") for rule in rules)
    assert all('oifname "lo"' in rule or "daddr" in rule for rule in rules)
    # A datagram to another host leaves (sendto succeeds); one to this host is dropped by the
    # rule before it is sent (EPERM from the output hook).
    script = (
        "import socket, sys, errno\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n"
        "    s.sendto(b'x', (sys.argv[1], 9)); print('sent')\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
    )
    if primary_address() is not None:
        assert await in_session(session_a, [PYTHON, "-c", script, "198.51.100.1"]) == "sent"
    assert await in_session(session_a, [PYTHON, "-c", script, "127.0.0.1"]) == "EPERM"


def _cgroup_value(desktop: Desktop, name: str) -> str:
    assert desktop.sandbox.cgroup is not None
    for directory in desktop.sandbox.cgroup.dirs:
        if (directory / name).is_file():
            return (directory / name).read_text().strip()
    raise FileNotFoundError(name)


def _pids_limit_hits(desktop: Desktop) -> int:
    events = dict(line.split() for line in _cgroup_value(desktop, "pids.events").splitlines())
    return int(events["max"])


async def _time_command(desktop: Desktop) -> float:
    start = time.monotonic()
    assert await in_session(desktop, ["echo", "ok"], timeout=10) == "ok"
    return time.monotonic() - start


async def test_a_fork_bomb_is_contained_in_its_session(
    session_a: Desktop, session_b: Desktop
) -> None:
    assert _cgroup_value(session_a, "pids.max") == str(MAX_TASKS)
    assert _cgroup_value(session_b, "pids.max") == str(MAX_TASKS)
    before = _pids_limit_hits(session_a)
    bomb = await session_a.sandbox.spawn(
        ["bash", "-c", "b() { b | b & }; b"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    run = asyncio.ensure_future(collect(bomb, timeout=6))
    try:
        await poll_until(
            lambda: _pids_limit_hits(session_a) > before, timeout=5, what="A's pids limit"
        )
        # B (and our event loop) stay responsive while A's bomb is at its limit.
        assert await _time_command(session_b) < 2.0
        assert int(_cgroup_value(session_a, "pids.current")) <= MAX_TASKS
    finally:
        await run
        async with asyncio.timeout(10):
            while True:  # the timeout killed its group; stragglers forked during the kill
                try:
                    os.killpg(bomb.pid, 9)
                except ProcessLookupError:
                    break
                await asyncio.sleep(0.05)
    assert not session_a.failed
    assert await _time_command(session_a) < 2.0


async def test_a_memory_hog_is_killed_by_its_sessions_limit(
    session_a: Desktop, session_b: Desktop
) -> None:
    limit = int(_cgroup_value(session_a, "memory.limit_in_bytes")) if _v1() else None
    if limit is not None:
        assert limit == MEMORY_MB * 1024 * 1024
    hog = f"x = b'x' * ({MEMORY_MB * 2} * 2**20); print('survived')"
    result = await session_a.sandbox.run([PYTHON, "-c", hog], timeout=30)
    assert result.returncode == -9 and b"survived" not in result.stdout
    assert await _time_command(session_b) < 2.0
    assert not session_a.failed
    assert await session_a.screenshot()  # A's display server was not the victim


def _v1() -> bool:
    return not Path("/sys/fs/cgroup/cgroup.controllers").is_file()


async def test_shutdown_removes_the_rules_and_cgroups(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data_dir = tmp_path_factory.mktemp("iso-shutdown")
    manager = DesktopManager(
        data_dir,
        width=640,
        height=480,
        max_displays=1,
        isolation_enabled=True,
        disk_quota_mb=FS_QUOTA_MB,
        display_base=BASE + 50,
        user_prefix="cu-ib",
    )
    try:
        await manager.start()
        desktop = await manager.create("iso-c", browser=False)
        assert desktop.sandbox.cgroup is not None
        dirs = desktop.sandbox.cgroup.dirs
        assert all(d.is_dir() for d in dirs)
        chain = manager.network.chain
        listing = await run_command(["nft", "list", "table", FAMILY, TABLE])
        assert chain in listing.stdout.decode()
    finally:
        await manager.shutdown()
        fs_force_cleanup(data_dir)
    assert not any(d.exists() for d in dirs)
    assert not any(d.parent.exists() for d in dirs)
    listing = await run_command(["nft", "list", "table", FAMILY, TABLE], check=False)
    assert chain not in listing.stdout.decode()


def test_a_loopback_resolver_stays_reachable(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# docker\nnameserver 127.0.0.11\nnameserver 10.0.0.2\nnameserver ::1\n")
    servers = netrules.nameservers(resolv)
    assert servers == ["127.0.0.11", "10.0.0.2", "::1"]
    script = netrules.NetworkRules(name="cu-x").ruleset([1001, 1002], servers)
    lines = script.splitlines()
    reject = next(i for i, line in enumerate(lines) if line.endswith(" reject"))
    accepts = [i for i, line in enumerate(lines) if "dport 53 accept" in line]
    assert len(accepts) == 6 and max(accepts) < reject
    assert "ip daddr 127.0.0.11 udp dport 53" in script and "ip6 daddr ::1 tcp dport 53" in script
    assert 'oifname "lo"' in lines[reject]


async def test_without_nft_the_network_rules_are_reported_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(netrules, "_nft", lambda: None)
    rules = netrules.NetworkRules(name="cu-x")
    await rules.install([1001])
    assert rules.health()["enabled"] is False
    assert "nftables" in str(rules.health()["reason"])
