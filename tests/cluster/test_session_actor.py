"""Session actors on a real Ray cluster (a head and one desktop host with 2 slots on this
machine): Ray places them on the host, each starts its session's desktop there on its own slot
with the host's own settings, a screenshot comes back through each and a click lands where it
was sent, a third waits while the host is full, and the slots are freed when they end."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests import slots
from tests.cluster.ray_cluster import RayCluster, ray_cluster

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
        try:
            cluster.connect(NAMESPACE)
            yield cluster
        except BaseException:
            print(cluster.logs())
            raise


def _desktop_host_id() -> str:
    nodes: list[dict[str, Any]] = ray.nodes()
    hosts = [n["NodeID"] for n in nodes if n["Alive"] and n["Resources"].get("desktop")]
    assert len(hosts) == 1
    return str(hosts[0])


def test_session_actors_take_the_slots_of_a_host_and_screenshot_through_it(
    cluster: RayCluster,
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(DESKTOPS + 1)]
    cpus = ray.available_resources().get("CPU")
    actors = [create_session_actor(session_id) for session_id in ids[:DESKTOPS]]
    try:
        started = ray.get([actor.start.remote() for actor in actors], timeout=180)
        assert {s["host"] for s in started} == {_desktop_host_id()}
        assert sorted(s["slot"] for s in started) == [0, 1]
        # The host's own settings: its range starts above DESKTOP_DISPLAY_BASE, as in one process.
        base = slots.display(1900)
        assert sorted(s["display"] for s in started) == [f":{base + 1}", f":{base + 2}"]
        assert ray.available_resources().get("desktop", 0) == 0
        assert ray.available_resources().get("CPU") == cpus, "a session holds no CPU"

        for session_id in ids[:DESKTOPS]:  # found by name, from any process of the cluster
            png = ray.get(session_actor(session_id).screenshot.remote(), timeout=60)
            assert png.startswith(b"\x89PNG\r\n\x1a\n")
            assert struct.unpack(">II", png[16:24]) == (1024, 768)  # the IHDR chunk
        ray.get(actors[0].click.remote(321, 234), timeout=60)
        assert ray.get(actors[0].cursor_position.remote(), timeout=60) == (321, 234)

        # The host is full: Ray holds the next session until a slot frees.
        waiting = create_session_actor(ids[DESKTOPS])
        with pytest.raises(ray.exceptions.GetTimeoutError):
            ray.get(waiting.start.remote(), timeout=3)
        ray.kill(waiting)
    finally:
        for actor in actors:
            ray.get(actor.stop.remote(), timeout=60)  # its desktop, mounts and slot
            ray.kill(actor)
    cluster.wait_until_desktops_free(timeout=30)
    for session_id in ids:
        with pytest.raises(ValueError):
            session_actor(session_id)
