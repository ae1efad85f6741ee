"""A hostile session, round 2: every probe runs inside a session through its own sandbox (the
agent's bash tool), and must learn nothing of, and break nothing in, other sessions or the host.

Own display range (1300+) and users (cu-ih..), so a running server or other suites are never
touched. Needs root, nftables, cgroups and `ip netns`: all present on the project's machines.
The egress probe only ever targets addresses in a network namespace this module creates.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from computer_use.config import Settings
from computer_use.database import create_engine
from computer_use.datadir import prepare_data_dir
from computer_use.desktops import Desktop, DesktopManager
from computer_use.desktops.launcher import live_pids_of_uid, poll_until
from computer_use.desktops.netrules import EgressPolicy, parse_networks
from computer_use.desktops.slots import abstract_name
from computer_use.desktops.sockets import listening_inodes, socket_inodes_of
from tests import slots
from tests.desktop_fixtures import FS_QUOTA_MB, desktop_reap, fs_force_cleanup
from tests.desktops.conftest import desktop_viewed

from .netns import ECHO_PORT, PRIVATE4, PRIVATE6, PUBLIC4, PUBLIC6, connects, egress_namespace

BASE = slots.display(1300)
PREFIX = slots.prefix("cu-ih")
CPU_LIMIT = 0.5
PYTHON = "/usr/bin/python3"
PG_SOCKET = Path("/run/postgresql/.s.PGSQL.5432")

CONNECT = """
import socket, sys, errno
target = sys.argv[1]
family = socket.AF_UNIX if target[:1] in '/@' else (
    socket.AF_INET6 if ':' in target else socket.AF_INET)
if target.startswith('@'):
    target = '\\0' + target[1:]  # an abstract name
s = socket.socket(family)
s.settimeout(3)
try:
    s.connect(target if family == socket.AF_UNIX else (target, int(sys.argv[2])))
    print("connected")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e)))
"""

# Squats every name a desktop on `displays` would need: the old VNC TCP ports and the
# displays' abstract X sockets; prints "ready" and waits (until killed).
SQUAT = """
import socket, sys, time
held = []
for n in map(int, sys.argv[1:]):
    for family, address in ((socket.AF_INET, ("127.0.0.1", 5900 + n)),
                            (socket.AF_UNIX, "\\0/tmp/.X11-unix/X%d" % n)):
        s = socket.socket(family)
        s.bind(address)
        s.listen(8)
        held.append(s)
print("ready", flush=True)
time.sleep(3600)
"""


@pytest.fixture(scope="module")
async def manager(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DesktopManager]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates users, cgroups, nftables rules, namespaces")
    data_dir = tmp_path_factory.mktemp("hostile-data")
    manager = DesktopManager(
        data_dir,
        width=640,
        height=480,
        max_displays=3,
        isolation_enabled=True,
        disk_quota_mb=FS_QUOTA_MB,
        display_base=BASE,
        user_prefix=PREFIX,
        memory_limit_mb=512,
        max_processes=128,
        cpu_limit=CPU_LIMIT,
    )
    try:
        await manager.start()
        yield manager
    finally:
        await manager.shutdown()
        fs_force_cleanup(data_dir)


@pytest.fixture(scope="module")
async def attacker(manager: DesktopManager) -> Desktop:
    return await manager.create("hostile-a", browser=False)


async def in_session(desktop: Desktop, argv: list[str], *, timeout: float = 10) -> str:
    result = await desktop.run(argv, timeout=timeout)
    return (result.stdout + result.stderr).decode(errors="replace").strip()


async def connect_from(desktop: Desktop, target: str, port: int = 0) -> str:
    return await in_session(desktop, [PYTHON, "-c", CONNECT, target, str(port)])


async def test_health_reports_every_measure_on(manager: DesktopManager, attacker: Desktop) -> None:
    health = manager.health()
    for measure in (
        "process_view", "network", "egress", "resource_limits", "cpu_limit", "seccomp",
        "private_dirs", "vnc", "instance_lock", "abstract_sockets",
    ):  # fmt: skip
        assert health[measure]["enabled"] is True, (measure, health[measure])
        assert health[measure]["reason"] is None, (measure, health[measure])
    assert health["cpu_limit"]["cpus_per_session"] == CPU_LIMIT


async def test_squatting_vnc_ports_and_display_names_neither_hijacks_nor_blocks_a_new_session(
    manager: DesktopManager, attacker: Desktop
) -> None:
    others = [s.display_number for s in manager.slots.all_slots() if s.index != attacker.slot]
    squat = await attacker.spawn([PYTHON, "-c", SQUAT, *map(str, others)])
    try:
        assert squat.stdout is not None
        async with asyncio.timeout(10):
            assert (await squat.stdout.readline()).strip() == b"ready"
        # The editor tool plants X files too: in the session's own /tmp, nobody else's.
        planted = " ".join(f"/tmp/.X11-unix/X{n} /tmp/.X{n}-lock" for n in others)
        await in_session(attacker, ["sh", "-c", f"touch {planted}"])
        assert manager.health()["free_slots"] == 2

        victim = await manager.create("hostile-b", browser=False)

        assert victim.slot_info.display_number in others
        # The squatter lost the name it held (killed), and the victim's own Xvfb holds it.
        xvfb = victim.supervisor.components["xvfb"].proc
        assert xvfb is not None
        held = listening_inodes(abstract_name(victim.slot_info.display_number))
        assert held and held <= socket_inodes_of(xvfb.pid)
        assert await victim.screenshot()
        # The viewer's way in is the victim's own x11vnc, started for the viewer, on a
        # socket only it holds ...
        async with desktop_viewed(victim):
            vnc = victim.supervisor.components["vnc"].proc
            assert vnc is not None
            assert listening_inodes(str(victim.vnc_socket)) <= socket_inodes_of(vnc.pid)
            with socket.socket(socket.AF_UNIX) as viewer:
                viewer.connect(str(victim.vnc_socket))
                assert viewer.recv(12) == b"RFB 003.008\n"
            # ... which the attacker cannot reach, nor list, nor replace.
            assert await connect_from(attacker, str(victim.vnc_socket)) in ("ENOENT", "EACCES")
        await manager.destroy("hostile-b")
    finally:
        await desktop_reap(squat)


async def test_files_and_ipc_of_a_session_are_gone_before_its_slot_is_reused(
    manager: DesktopManager, attacker: Desktop
) -> None:
    first = await manager.create("hostile-c", browser=False)
    uid, slot = first.user.uid, first.slot
    written = await in_session(
        first,
        ["sh", "-c", "for d in /tmp /var/tmp /dev/shm; do echo s3cret > $d/left; done; "
         "ipcmk -Q >/dev/null && ipcmk -S 1 >/dev/null && ipcmk -M 4096 >/dev/null && echo ok"],
    )  # fmt: skip
    assert written == "ok"
    await manager.destroy("hostile-c")

    second = await manager.create("hostile-d", browser=False)
    try:
        assert (second.user.uid, second.slot) == (uid, slot)  # same slot, same uid
        seen = await in_session(second, ["sh", "-c", "cat /tmp/left /var/tmp/left /dev/shm/left"])
        assert "s3cret" not in seen
        ipc = await in_session(second, ["sh", "-c", f"ipcs -q -s -m | grep -cw {uid} || true"])
        assert ipc == "0", await in_session(second, ["ipcs"])
        for directory in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock"):
            assert not [e for e in os.scandir(directory) if _owner(e.path) == uid], directory
        # The private directories are capped (RAM-backed, charged to the session's cgroup).
        df = await in_session(second, ["df", "--output=target,size", "/var/tmp", "/dev/shm"])
        assert all(int(line.split()[1]) <= 256 * 1024 for line in df.splitlines()[1:]), df
    finally:
        await manager.destroy("hostile-d")


def _owner(path: str) -> int | None:
    try:
        return os.lstat(path).st_uid
    except OSError:
        return None


@pytest.mark.skipif(not PG_SOCKET.exists(), reason="no local PostgreSQL socket on this host")
async def test_host_unix_sockets_are_out_of_reach(
    attacker: Desktop, manager: DesktopManager
) -> None:
    with socket.socket(socket.AF_UNIX) as control:
        control.connect(str(PG_SOCKET))  # the service itself reaches it
    assert await connect_from(attacker, str(PG_SOCKET)) == "ENOENT"
    psql = await in_session(
        attacker, ["psql", "-h", "/run/postgresql", "-U", "postgres", "-c", "select 1"]
    )
    assert "No such file" in psql or "could not connect" in psql, psql
    # /run shows the session's own runtime directory and nothing else of the host's (mount(8)
    # keeps its utab for the namespace's own mounts in /run/mount).
    assert (await in_session(attacker, ["ls", "-A", "/run"])).split() == ["computer-use", "mount"]
    listing = await in_session(attacker, ["ls", "-A", str(manager.runtime_root)])
    assert listing == str(attacker.slot_info.display_number)


@pytest.fixture
def daemon_socket() -> Iterator[Path]:
    """A daemon's socket outside /run and /tmp (under /var/lib, world-writable, as careless
    daemons leave them), listening; this process is the daemon."""
    directory = Path(f"/var/lib/cu-probe-{os.getpid()}")
    directory.mkdir(mode=0o755)
    path = directory / "daemon.sock"
    try:
        with socket.socket(socket.AF_UNIX) as daemon:
            daemon.bind(str(path))
            os.chmod(path, 0o777)
            daemon.listen(1)
            yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def test_host_sockets_outside_run_and_tmp_are_covered(
    manager: DesktopManager, daemon_socket: Path
) -> None:
    """Covered in the namespace of a session started after the daemon: refused."""
    session = await manager.create("hostile-h", browser=False)
    try:
        with socket.socket(socket.AF_UNIX) as control:
            control.connect(str(daemon_socket))  # reachable outside the sessions
        assert await connect_from(session, str(daemon_socket)) == "ECONNREFUSED"
    finally:
        await manager.destroy("hostile-h")


# Listens on an abstract name, connects to it from the same process, prints the outcome.
OWN_ABSTRACT = """
import socket, os
name = "\\0cu-own-%d" % os.getpid()
server = socket.socket(socket.AF_UNIX)
server.bind(name)
server.listen(1)
client = socket.socket(socket.AF_UNIX)
client.connect(name)
print("connected")
"""


async def test_abstract_unix_sockets_of_the_host_and_other_sessions_are_out_of_reach(
    attacker: Desktop, manager: DesktopManager
) -> None:
    """Abstract sockets have no file to hide: Landlock scoping keeps a session to its own."""
    assert manager.health()["abstract_sockets"]["enabled"] is True
    host_name = f"@cu-host-probe-{os.getpid()}"
    with socket.socket(socket.AF_UNIX) as host_program:  # a program of the host, as root
        host_program.bind("\0" + host_name[1:])
        host_program.listen(1)
        with socket.socket(socket.AF_UNIX) as control:
            control.connect("\0" + host_name[1:])  # reachable outside the sessions
        assert await connect_from(attacker, host_name) == "EPERM"
    victim = await manager.create("hostile-g", browser=False)
    try:
        victim_x = abstract_name(victim.slot_info.display_number)
        assert listening_inodes(victim_x)  # B's X server listens there
        assert await connect_from(attacker, victim_x) == "EPERM"
        # A's own X server, through the socket file in A's private /tmp: the desktop works.
        own = f"/tmp/.X11-unix/X{attacker.slot_info.display_number}"
        assert await connect_from(attacker, own) == "connected"
        # B's socket file is in B's private /tmp (A's has at most what A planted itself).
        victims_file = await connect_from(attacker, victim_x.replace("@", "/", 1))
        assert victims_file in ("ENOENT", "ECONNREFUSED")
        xdpyinfo = await attacker.run(["xdpyinfo"], timeout=10)
        assert xdpyinfo.returncode == 0, xdpyinfo.stderr
        # Scoped, not switched off: what a session itself listens on it can still use.
        assert await in_session(attacker, [PYTHON, "-c", OWN_ABSTRACT]) == "connected"
    finally:
        await manager.destroy("hostile-g")


async def test_a_session_cannot_create_user_namespaces_or_trace(attacker: Desktop) -> None:
    for argv in (["unshare", "-r", "id"], ["unshare", "-U", "true"], ["unshare", "-n", "true"]):
        out = await in_session(attacker, argv)
        assert "Operation not permitted" in out, (argv, out)
    ptrace = "import ctypes; c = ctypes.CDLL(None, use_errno=True); "
    ptrace += "print(c.ptrace(0, 0, 0, 0), ctypes.get_errno())"  # PTRACE_TRACEME
    assert await in_session(attacker, [PYTHON, "-c", ptrace]) == "-1 1"  # EPERM
    # Everything else a desktop does still works (threads, fork, exec, sockets).
    assert await in_session(attacker, [PYTHON, "-c", "import threading, subprocess; "
                                        "t = threading.Thread(target=print, args=('ok',)); "
                                        "t.start(); t.join()"]) == "ok"  # fmt: skip


# -- egress: only to addresses in a network namespace this module creates ------------------


@pytest.fixture(scope="module")
def egress_target() -> Iterator[None]:
    with egress_namespace():
        yield


async def test_egress_reaches_the_internet_but_not_private_ranges(
    egress_target: None, attacker: Desktop, manager: DesktopManager
) -> None:
    for host in (PRIVATE4, PUBLIC4, PRIVATE6, PUBLIC6):
        assert connects(host), f"control: the service reaches {host}"
    assert await connect_from(attacker, PUBLIC4, ECHO_PORT) == "connected"
    assert await connect_from(attacker, PUBLIC6, ECHO_PORT) == "connected"
    assert await connect_from(attacker, PRIVATE4, ECHO_PORT) == "ECONNREFUSED"
    assert await connect_from(attacker, PRIVATE6, ECHO_PORT) == "ECONNREFUSED"

    uids = [u.uid for u in manager.users.all_users()]
    saved = manager.network.egress
    try:  # SESSION_EGRESS_ALLOW opens a denied range; SESSION_EGRESS_DENY closes an open one
        manager.network.egress = EgressPolicy(
            allow=parse_networks(f"{PRIVATE4}/32"), deny=parse_networks(f"{PUBLIC6}/128")
        )
        await manager.network.install(uids)
        assert await connect_from(attacker, PRIVATE4, ECHO_PORT) == "connected"
        assert await connect_from(attacker, PUBLIC6, ECHO_PORT) == "ECONNREFUSED"
        assert await connect_from(attacker, PRIVATE6, ECHO_PORT) == "ECONNREFUSED"
    finally:
        manager.network.egress = saved
        await manager.network.install(uids)


# -- CPU --------------------------------------------------------------------------------------


def _cpu_file(desktop: Desktop, name: str) -> str:
    assert desktop.sandbox.cgroup is not None
    for directory in desktop.sandbox.cgroup.dirs:
        if (directory / name).is_file():
            return (directory / name).read_text().strip()
    raise FileNotFoundError(f"{name}: the session has no cpu cgroup")


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def _screenshot_ms(desktop: Desktop, count: int) -> float:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        await desktop.screenshot()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def test_a_cpu_hog_is_capped_and_another_sessions_screenshots_stay_fast(
    manager: DesktopManager, attacker: Desktop
) -> None:
    if "cpu.max" in os.listdir(attacker.sandbox.cgroup.dirs[0]):  # type: ignore[union-attr]
        assert _cpu_file(attacker, "cpu.max") == f"{int(CPU_LIMIT * 100_000)} 100000"
    else:
        assert _cpu_file(attacker, "cpu.cfs_quota_us") == str(int(CPU_LIMIT * 100_000))
    other = await manager.create("hostile-e", browser=False)
    hog = await attacker.spawn(["sh", "-c", "for i in 1 2 3 4; do yes >/dev/null & done; wait"])
    try:
        baseline = await _screenshot_ms(other, 10)
        await poll_until(
            lambda: len([p for p in live_pids_of_uid(attacker.user.uid) if _comm(p) == "yes"]) == 4,
            timeout=5,
            what="the hog's 4 busy loops",
        )
        loops = [p for p in live_pids_of_uid(attacker.user.uid) if _comm(p) == "yes"]
        used, started = _cpu_seconds(loops), time.monotonic()
        during = await _screenshot_ms(other, 20)
        await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - started)))
        share = (_cpu_seconds(loops) - used) / (time.monotonic() - started)
        print(
            f"\nscreenshot of another session (640x480): {baseline:.1f} ms idle, "
            f"{during:.1f} ms while 4 busy loops run in a session capped at {CPU_LIMIT} CPU "
            f"(x{during / baseline:.2f}); the loops got {share:.2f} CPU"
        )
        assert share <= CPU_LIMIT * 1.2 + 0.05  # 4 loops on 2 cores would take up to 2.0
        assert during < 1000
    finally:
        await desktop_reap(hog)
        await manager.destroy("hostile-e")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# -- DATA_DIR -------------------------------------------------------------------------------


async def test_a_session_cannot_read_the_data_dir(attacker: Desktop) -> None:
    # Outside /tmp (a session's /tmp is private anyway): where an operator would put it.
    data_dir = Path(f"/var/lib/cu{slots.SLOT}-hostile-{os.getpid()}") / "data"
    try:
        prepare_data_dir(data_dir)  # what `computer-use serve` and the lifespan do
        settings = Settings(data_dir=data_dir, database_url="")
        engine = create_engine(settings)
        async with engine.begin() as conn:
            await conn.exec_driver_sql("create table t (secret text)")
            await conn.exec_driver_sql("insert into t values ('the-db-secret')")
        await engine.dispose()
        database = data_dir / "computer_use.db"
        assert database.stat().st_mode & 0o777 == 0o600
        assert data_dir.stat().st_mode & 0o777 == 0o700
        out = await in_session(attacker, ["sh", "-c", f"ls {data_dir}; cat {database}"])
        assert "the-db-secret" not in out and "Permission denied" in out, out
        os.chmod(data_dir, 0o755)  # an old install: the next start tightens it again
        prepare_data_dir(data_dir)
        assert data_dir.stat().st_mode & 0o777 == 0o700
    finally:
        await asyncio.to_thread(shutil.rmtree, data_dir.parent, True)


# -- a display that goes down gets a new cookie ---------------------------------------------


async def test_a_display_restarts_with_a_fresh_cookie(manager: DesktopManager) -> None:
    """A squatter on a display's abstract name while it is down may be offered its cookie
    (the service's own reconnects); the restarted display no longer accepts that cookie."""
    victim = await manager.create("hostile-f", browser=False)
    try:
        old = victim.spec.xauthority.read_bytes()
        xvfb = victim.supervisor.components["xvfb"]
        assert xvfb.proc is not None
        old_pid = xvfb.proc.pid
        os.kill(old_pid, 9)
        await poll_until(
            lambda: xvfb.proc is not None and xvfb.proc.pid != old_pid and xvfb.state == "running",
            timeout=15,
            what="Xvfb to come back",
        )
        assert victim.spec.xauthority.read_bytes() != old
        assert await victim.screenshot()  # the service follows the new cookie
        stale = victim.spec.runtime_dir / "stale-cookie"
        stale.write_bytes(old)
        os.chown(stale, victim.user.uid, victim.user.gid)
        out = await in_session(
            victim, ["env", f"XAUTHORITY={stale}", "xdpyinfo", "-display", victim.display]
        )
        assert "unable to open display" in out, out
    finally:
        await manager.destroy("hostile-f")
