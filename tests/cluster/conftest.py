"""One real Ray cluster for the package (the guide: one cluster per test run): a head and two
desktop hosts on this machine, host A with 2 session slots and host B with 1, each with its
own desktop range, data directory and the settings a session actor runs the agent with (a
PostgreSQL database of the package's own, EVENT_BUS=postgres, the loopback model's address).

Host B runs in a network namespace of its own (tests/cluster/netns.py), so what passes between
it and the rest crosses a veth pair: the head, host A and every driver (this process, the API
replicas) use the veth's root-side address as their node address, host B the namespace's. Host
B reaches PostgreSQL (which listens on 127.0.0.1 only) through a forwarder on the root-side
address, and the loopback model listens there for both hosts. Without network namespaces (no
`ip`, no privilege) the package skips."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import slots
from tests.cluster.netns import (
    NetnsUnavailable,
    NetworkNamespace,
    TcpForwarder,
    for_slot,
    network_namespace,
)
from tests.cluster.ray_cluster import RayCluster, ray_cluster
from tests.conftest import PG_ADMIN_DSN, _pg_admin
from tests.helpers import free_port

HOSTS = {"host-a": ("cu-ha", 1900, 2), "host-b": ("cu-hb", 1910, 1)}  # prefix, base, slots
IN_NETNS = "host-b"  # the host in a network namespace of its own


@dataclass(frozen=True)
class ClusterSetup:
    cluster: RayCluster
    database_url: str  # on 127.0.0.1, for the processes of the root namespace
    model_port: int  # the loopback model the hosts' actors call (started by the tests)
    netns: NetworkNamespace  # host B's

    @property
    def model_host(self) -> str:
        """Where the model listens: the veth's root-side address, which both hosts reach."""
        return self.cluster.node_ip

    @property
    def model_url(self) -> str:
        return f"http://{self.model_host}:{self.model_port}"


def host_instance(name: str) -> str:
    """A host's name in the sessions' `host`: the machine's name and its user prefix."""
    import socket

    return f"{socket.gethostname()}:{slots.prefix(HOSTS[name][0])}"


def _stop_session_actors() -> None:
    """What a failed test left running: each session actor ends its desktop (processes,
    mounts, slot) before the cluster goes; the hosts' keepers of recordings end."""
    import ray

    from computer_use.cluster.session_actor import NAMESPACE

    for name in ray.util.list_named_actors():
        with contextlib.suppress(Exception):
            actor = ray.get_actor(name, namespace=NAMESPACE)
            if name.startswith("session-"):
                ray.get(actor.stop.remote(), timeout=60)
            ray.kill(actor)


def _unmount_under(directory: Path) -> None:
    """The mounts of sessions whose host was killed (a SIGKILLed actor cannot unmount)."""
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted((p for p in points if p.startswith(f"{directory}/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def _kill_session_users(prefix: str) -> None:
    """Processes a killed host's actors left behind (a SIGKILLed raylet cannot end them)."""
    for slot in range(3):
        with contextlib.suppress(FileNotFoundError):
            subprocess.run(
                ["pkill", "-KILL", "-u", f"{prefix}{slot}-01"],
                check=False,
                stderr=subprocess.DEVNULL,  # a user the host never made
            )


def _with_address(dsn: str, host: str, port: int) -> str:
    """`dsn` with its host and port replaced (its user and database kept)."""
    parts = urlsplit(dsn)
    user = parts.netloc.rpartition("@")[0]
    return parts._replace(netloc=f"{user}@{host}:{port}" if user else f"{host}:{port}").geturl()


def _clean_up_hosts(workdir: Path) -> None:
    for prefix, _, _ in HOSTS.values():
        _kill_session_users(slots.prefix(prefix))
    _unmount_under(workdir)


@pytest.fixture(scope="package")
def ray_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSetup]:
    pytest.importorskip("ray", reason="the cluster extra: pip install -e '.[cluster]'")
    from computer_use.cluster.session_actor import NAMESPACE

    # Undone in reverse: the cluster, the hosts' leftovers, the forwarder, the database, the
    # namespace (its veth pair with it).
    with contextlib.ExitStack() as undo:
        try:
            netns = undo.enter_context(network_namespace(for_slot("hb")))
        except NetnsUnavailable as exc:
            pytest.skip(f"host B runs in a network namespace of its own, and {exc}")
        name = f"cu_ray_{uuid.uuid4().hex[:10]}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        undo.callback(
            lambda: asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        )
        database_url = f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
        pg = urlsplit(PG_ADMIN_DSN)
        forwarder = TcpForwarder(netns.root, (pg.hostname or "127.0.0.1", pg.port or 5432))
        undo.callback(forwarder.stop)
        forwarder.start()
        workdir = tmp_path_factory.mktemp("ray")
        undo.callback(_clean_up_hosts, workdir)
        cluster = undo.enter_context(ray_cluster(workdir, netns.root))
        setup = ClusterSetup(cluster, database_url, free_port(netns.root), netns)
        cluster.start_head()
        cluster.connect(NAMESPACE)  # the hosts join a head that answers
        for host, (prefix, base, desktops) in HOSTS.items():
            in_netns = host == IN_NETNS
            cluster.add_desktop_host(
                host,
                desktops,
                {
                    "DATA_DIR": str(workdir / host),
                    "DESKTOP_USER_PREFIX": prefix,
                    "DESKTOP_DISPLAY_BASE": str(base),
                    "SESSION_TTL_SECONDS": "3600",
                    "DATABASE_URL": _with_address(database_url, netns.root, forwarder.port)
                    if in_netns
                    else database_url,
                    "EVENT_BUS": "postgres",
                    "ANTHROPIC_BASE_URL": setup.model_url,
                    "ANTHROPIC_API_KEY": "",
                },
                netns=netns if in_netns else None,
            )
            # One at a time: two raylets on one address registering together, one of
            # them times out finding its own node in the head's table.
            cluster.wait_for_desktops()
        try:
            yield setup
        except BaseException:
            print(cluster.logs())
            raise
        finally:
            _stop_session_actors()


@pytest.fixture(scope="package")
def cluster(ray_setup: ClusterSetup) -> RayCluster:
    return ray_setup.cluster
