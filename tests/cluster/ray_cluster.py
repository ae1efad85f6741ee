"""A real Ray cluster on this machine for the tests and bench/cluster.py: a head and desktop
hosts, each a `ray start --block` in its own process group, ended by that group (never `ray
stop`, which ends every Ray process of the machine, other checkouts' included). The head and
the drivers use `node_ip` (127.0.0.1 by default); a desktop host may run in a network namespace
of its own (tests/cluster/netns.py), with that namespace's address as its node address."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from tests import slots
from tests.cluster.netns import NetworkNamespace
from tests.helpers import StopWaiting, free_port, wait_for

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE_BYTES = 80 * 1024 * 1024  # Ray's default is 30% of the machine's memory

# Ray's token authentication, on every node and client: without the token nothing reaches
# the cluster (docs/SCALING.md). A client reads RAY_AUTH_MODE when it imports ray, so this
# process takes them now, before any test or bench module imports ray.
AUTH_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
if "ray" in sys.modules:
    raise RuntimeError("import tests.cluster.ray_cluster before ray: its client needs the token")
os.environ.update(AUTH_ENV)


class RayProcess:
    """One `ray start --block`: the CLI and everything it starts share its process group."""

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        netns: NetworkNamespace | None = None,
    ) -> None:
        self.log_path = log_path
        prefix = netns.exec_prefix() if netns else []  # `ip netns exec` execs: same group
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*prefix, RAY, "start", "--block", "--disable-usage-stats", *args],
                env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        # SIGTERM makes a node drain (up to 30 s); a test cluster need not wait that long.
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait)
                if sig == signal.SIGKILL or not _group_alive(self.proc.pid):
                    return


def _group_alive(pgid: int) -> bool:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, 0)
        return True
    return False


class RayCluster:
    def __init__(self, workdir: Path, node_ip: str = "127.0.0.1") -> None:
        self.workdir = workdir
        self.node_ip = node_ip  # the head's, and that of every host outside a namespace
        self.port = free_port(node_ip)
        self.address = f"{node_ip}:{self.port}"
        self.temp_dir = f"/tmp/cu{slots.SLOT}-ray"  # short: Ray's unix sockets live under it
        self.auth_env = AUTH_ENV
        self.processes: list[RayProcess] = []
        self.hosts: dict[str, RayProcess] = {}
        self.host_desktops: dict[str, int] = {}
        self.host_ips: dict[str, str] = {}  # each host's node address
        self.desktops = 0  # the `desktop` units of all hosts added
        self.connected = False

    def start_head(self) -> None:
        # The head hosts no desktops: no `desktop` resource, one CPU for Ray's own tasks.
        self.processes.append(
            RayProcess(
                [
                    "--head",
                    f"--port={self.port}",  # never Ray's default 6379: that is Redis's
                    f"--node-ip-address={self.node_ip}",
                    "--num-cpus=1",
                    f"--object-store-memory={OBJECT_STORE_BYTES}",
                    "--include-dashboard=false",
                    f"--temp-dir={self.temp_dir}",
                ],
                self.auth_env,
                self.workdir / "ray-head.log",
            )
        )

    def add_desktop_host(
        self,
        name: str,
        desktops: int,
        env: Mapping[str, str],
        *,
        netns: NetworkNamespace | None = None,
    ) -> None:
        """A node offering `desktops` sessions; `env` is its desktop settings. In `netns` its
        node address is the namespace's, and it joins the head across the veth pair."""
        self.host_ips[name] = netns.inside if netns else self.node_ip
        self.hosts[name] = RayProcess(
            [
                f"--address={self.address}",
                f"--node-ip-address={self.host_ips[name]}",
                "--num-cpus=1",
                f"--object-store-memory={OBJECT_STORE_BYTES}",
                f"--resources={json.dumps({'desktop': desktops})}",
            ],
            slots.env({**self.auth_env, **env, "MAX_DISPLAYS": str(desktops)}),
            self.workdir / f"ray-{name}.log",
            netns=netns,
        )
        self.processes.append(self.hosts[name])
        self.host_desktops[name] = desktops
        self.desktops += desktops

    def kill_host(self, name: str) -> None:
        """The host dies at once: SIGKILL to its raylet, its workers and their actors."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.hosts[name].proc.pid, signal.SIGKILL)
        self.hosts[name].proc.wait(timeout=30)
        self.desktops -= self.host_desktops.pop(name)

    def connect(self, namespace: str, *, timeout: float = 120) -> None:
        """Connects this process as a driver (`ray.init`) once the head answers, then waits
        until every desktop host added has joined; a `ray start` that exits ends the wait."""
        import ray  # the cluster extra: importing this module must not need it

        def head_answers() -> bool:
            for process in self.processes:
                if process.proc.poll() is not None:
                    raise StopWaiting(f"ray start exited:\n{self.logs()}")
            ray.init(address=self.address, namespace=namespace, log_to_driver=False)
            return True

        wait_for(
            head_answers, timeout=timeout, interval=0.5, what=f"the Ray head at {self.address}"
        )
        self.connected = True
        self.wait_for_desktops(timeout=timeout)

    def wait_for_desktops(self, *, timeout: float = 120) -> None:
        """Until every desktop host added has joined; a `ray start` that exits ends the wait."""
        import ray

        def joined() -> bool:
            for process in self.processes:
                if process.proc.poll() is not None:
                    raise StopWaiting(f"ray start exited:\n{self.logs()}")
            return bool(_desktops(ray.cluster_resources) == self.desktops)

        wait_for(joined, timeout=timeout, interval=0.5, what=f"{self.desktops} desktop slots")

    def wait_until_desktops_free(self, *, timeout: float = 60) -> None:
        """Until every `desktop` unit is free again (Ray frees an actor's after `ray.kill`)."""
        import ray

        wait_for(
            lambda: _desktops(ray.available_resources) == self.desktops,
            timeout=timeout,
            what="the desktop slots to be freed",
        )

    def stop(self) -> None:
        if self.connected:
            import ray

            ray.shutdown()
            self.connected = False
        for process in reversed(self.processes):
            process.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(p.log_path.read_text(errors="replace")[-2000:] for p in self.processes)


def _desktops(resources: Callable[[], dict[str, float]]) -> float:
    return resources().get("desktop", 0)


@contextlib.contextmanager
def ray_cluster(workdir: Path, node_ip: str = "127.0.0.1") -> Iterator[RayCluster]:
    cluster = RayCluster(workdir, node_ip)
    try:
        yield cluster
    finally:
        cluster.stop()
