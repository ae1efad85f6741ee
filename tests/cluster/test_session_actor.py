"""A session actor on a real Ray cluster (a head and one desktop host on this machine): Ray
places it on the host with a `desktop` slot, it starts the session's desktop there with the
host's own settings, and a screenshot comes back through it; its slot is freed when it ends."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests import slots
from tests.cluster.ray_cluster import RayCluster, ray_cluster
from tests.helpers import wait_for

ray = pytest.importorskip("ray", reason="the cluster extra: pip install -e '.[cluster]'")

from computer_use.cluster.session_actor import (  # noqa: E402
    NAMESPACE,
    create_session_actor,
    session_actor,
)

DESKTOPS = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    workdir = tmp_path_factory.mktemp("ray")
    with ray_cluster(workdir) as cluster:
        cluster.start_head()
        cluster.add_desktop_host(
            "host-a",
            DESKTOPS,
            {
                "DATA_DIR": str(workdir / "host-a"),
                "DESKTOP_USER_PREFIX": "cu-yn",
                "DESKTOP_DISPLAY_BASE": "1900",
                "SESSION_TTL_SECONDS": "3600",
            },
        )
        wait_for(
            lambda: _connect(cluster),
            timeout=120,
            interval=0.5,
            what=f"the Ray head at {cluster.address}",
        )
        try:
            wait_for(
                lambda: ray.cluster_resources().get("desktop") == DESKTOPS,
                timeout=120,
                interval=0.5,
                what="the desktop host to join",
            )
            yield cluster
        except BaseException:
            print(cluster.logs())
            raise
        finally:
            ray.shutdown()


def _connect(cluster: RayCluster) -> bool:
    for process in cluster.processes:
        assert process.proc.poll() is None, f"ray start exited:\n{cluster.logs()}"
    ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
    return True


def _desktop_host_id() -> str:
    nodes: list[dict[str, Any]] = ray.nodes()
    hosts = [n["NodeID"] for n in nodes if n["Alive"] and n["Resources"].get("desktop")]
    assert len(hosts) == 1
    return str(hosts[0])


def test_a_session_actor_takes_a_desktop_slot_on_a_host_and_screenshots_through_it(
    cluster: RayCluster,
) -> None:
    session_id = str(uuid.uuid4())
    cpus = ray.available_resources().get("CPU")
    actor = create_session_actor(session_id)
    try:
        started = ray.get(actor.start.remote(), timeout=120)
        assert started["host"] == _desktop_host_id()
        assert started["slot"] == 0
        # The host's own settings: its range starts above DESKTOP_DISPLAY_BASE, as in one process.
        assert started["display"] == f":{slots.display(1900) + 1}"
        wait_for(
            lambda: ray.available_resources().get("desktop") == DESKTOPS - 1,
            what="the slot to be taken",
        )
        assert ray.available_resources().get("CPU") == cpus, "a session holds no CPU"

        png = ray.get(session_actor(session_id).screenshot.remote(), timeout=60)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
        assert (width, height) == (1024, 768)
    finally:
        ray.get(actor.stop.remote(), timeout=60)  # its desktop, mounts and slot
        ray.kill(actor)
    wait_for(
        lambda: ray.available_resources().get("desktop") == DESKTOPS,
        timeout=30,
        what="the slot to be freed",
    )
    with pytest.raises(ValueError):
        session_actor(session_id)
