"""Session actors on the package's real Ray cluster (a head, host A with 2 slots, host B with
1, in its own network namespace): Ray places them on both hosts (host B's node address is its
namespace's), each starts its session's desktop there on its own slot with its host's own
settings, a screenshot comes back through each and a click lands where it was sent, one more
waits while every slot is taken, and the slots are freed when they end."""

from __future__ import annotations

import collections
import struct
import uuid
from typing import Any

import pytest

from tests import slots
from tests.cluster.conftest import HOSTS, IN_NETNS, ClusterSetup, host_instance
from tests.cluster.ray_cluster import RayCluster

ray = pytest.importorskip("ray", reason="the cluster extra: pip install -e '.[cluster]'")

from computer_use.cluster.session_actor import (  # noqa: E402
    create_session_actor,
    session_actor,
)

DESKTOPS = sum(desktops for _, _, desktops in HOSTS.values())


def _desktop_nodes() -> dict[str, str]:
    """The live desktop hosts' node ids and node addresses."""
    nodes: list[dict[str, Any]] = ray.nodes()
    return {
        n["NodeID"]: n["NodeManagerAddress"]
        for n in nodes
        if n["Alive"] and n["Resources"].get("desktop")
    }


def test_session_actors_take_the_slots_of_the_hosts_and_screenshot_through_them(
    cluster: RayCluster, ray_setup: ClusterSetup
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(DESKTOPS + 1)]
    cpus = ray.available_resources().get("CPU")
    actors = [create_session_actor(session_id) for session_id in ids[:DESKTOPS]]
    try:
        started = ray.get([actor.start.remote() for actor in actors], timeout=180)
        nodes = _desktop_nodes()
        assert {s["node_id"] for s in started} == set(nodes)
        # Each actor on its host's node: host B's address is its network namespace's, so
        # what reaches its actors crosses the veth pair.
        names = {host_instance(name): name for name in HOSTS}
        addresses = {name: cluster.node_ip for name in HOSTS} | {IN_NETNS: ray_setup.netns.inside}
        assert {names[s["host"]]: nodes[s["node_id"]] for s in started} == addresses
        # Each host's own settings: its name, its slots, its range above its display base.
        expected: collections.Counter[tuple[str, int]] = collections.Counter()
        displays = set()
        for name, (_, base, desktops) in HOSTS.items():
            for slot in range(desktops):
                expected[(host_instance(name), slot)] += 1
                displays.add(f":{slots.display(base) + slot + 1}")
        assert collections.Counter((s["host"], s["slot"]) for s in started) == expected
        assert {s["display"] for s in started} == displays
        assert ray.available_resources().get("desktop", 0) == 0
        assert ray.available_resources().get("CPU") == cpus, "a session holds no CPU"

        for session_id in ids[:DESKTOPS]:  # found by name, from any process of the cluster
            png = ray.get(session_actor(session_id).screenshot.remote(), timeout=60)
            assert png.startswith(b"\x89PNG\r\n\x1a\n")
            assert struct.unpack(">II", png[16:24]) == (1024, 768)  # the IHDR chunk
        ray.get(actors[0].click.remote(321, 234), timeout=60)
        assert ray.get(actors[0].cursor_position.remote(), timeout=60) == (321, 234)

        # Every slot is taken: Ray holds the next session until one frees.
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
