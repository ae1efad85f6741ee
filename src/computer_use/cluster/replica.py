"""An API replica on a Ray cluster (RAY_ADDRESS set): it holds no desktops and no runs.

Each session lives in its session actor (session_actor.py) on a desktop host, which runs its
desktop and its agent loop and writes the session's messages and events to the shared
PostgreSQL database; the replica's event bus (EVENT_BUS=postgres) streams them. So any
replica serves any session: what needs the desktop or the run (a new message, cancel, a
screenshot, the files, the recording, delete, expiry) is a call to the session's actor,
found by name. A session whose actor is gone (its host died or was cut off) becomes `error`,
within HOST_CHECK_SECONDS plus Ray's own detection, with a valid history.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

import ray
from ray._private.state import available_resources_per_node  # a DeveloperAPI
from ray.exceptions import RayActorError
from sqlalchemy import ColumnElement, select, true

from computer_use import errors
from computer_use.cluster.calls import call
from computer_use.cluster.naming import (
    DESKTOP_RESOURCE,
    NAMESPACE,
    actor_of,
    find_session_actor,
    free_desktops,
)
from computer_use.cluster.pool import find_pool_keeper, pool_health, set_pool
from computer_use.cluster.remote_files import RemoteFiles
from computer_use.cluster.remote_recordings import (
    open_download,
    recording_state,
    remove_kept,
)
from computer_use.cluster.remote_runner import RayAgentRunner
from computer_use.cluster.session_actor import START_TIMEOUT, create_session_actor
from computer_use.desktops.files import Files
from computer_use.desktops.recorder import RecordingState
from computer_use.runtime import RuntimeParts
from computer_use.sessions.models import Session, SessionStatus
from computer_use.sessions.recording_reader import RecordingDownload
from computer_use.sessions.records import LIVE_STATUSES
from computer_use.sessions.service import SessionService

logger = logging.getLogger(__name__)

HOST_CHECK_SECONDS = 5.0
PING_TIMEOUT = 10.0
KILL_TIMEOUT = 10.0


class RaySessionService(SessionService):
    """Sessions in session actors: create, screenshot, delete and expiry through them."""

    def __init__(self, **parts: Any) -> None:
        super().__init__(**parts)
        self._hosts_seen: dict[str, dict[str, Any]] = {}  # node id -> the host, once seen

    # --- the cluster instead of this process's desktops ----------------------------------

    async def start_desktops(self) -> dict[str, Any]:
        address = self._settings.ray_address
        await asyncio.to_thread(ray.init, address=address, namespace=NAMESPACE, log_to_driver=False)
        logger.info("sessions run on the Ray cluster at %s", address)
        # The cluster's warm pool (pool.py) takes this replica's settings; 0 drains it.
        settings = self._settings
        await asyncio.to_thread(set_pool, settings.warm_pool_size, settings.warm_pool_browser)
        return self.desktops_health()

    def desktops_health(self) -> dict[str, Any]:
        """Per desktop host: capacity, alive or lost (Ray's view), and the free slots."""
        if not ray.is_initialized():
            return {"backend": "ray", "connected": False}
        hosts = self._desktop_hosts()
        live = [h for h in hosts if h["alive"]]
        return {
            "backend": "ray",
            "connected": True,
            "capacity": sum(h["capacity"] for h in live),
            "free": int(free_desktops()),
            "hosts": hosts,
            "lost_hosts": len(hosts) - len(live),
            "warm_pool": pool_health(),
        }

    def _desktop_hosts(self) -> list[dict[str, Any]]:
        """The desktop hosts this replica has seen, with their free slots: Ray lists a dead
        node without its resources, so a host that died is remembered from when it was
        alive."""
        seen = self._hosts_seen
        alive = set()
        for node in cast(list[dict[str, Any]], ray.nodes()):  # type: ignore[no-untyped-call]
            capacity = node["Resources"].get(DESKTOP_RESOURCE, 0)
            if node["Alive"] and capacity:
                alive.add(node["NodeID"])
                seen[node["NodeID"]] = {
                    "node_id": node["NodeID"],
                    "address": node["NodeManagerAddress"],
                    "capacity": int(capacity),
                }
        free = available_resources_per_node()  # type: ignore[no-untyped-call]
        return [
            {
                **host,
                "alive": node_id in alive,
                "free": int(free.get(node_id, {}).get(DESKTOP_RESOURCE, 0)),
            }
            for node_id, host in list(seen.items())  # the host watcher adds from a thread
        ]

    def desktops_readiness(self) -> str:
        return "ok" if ray.is_initialized() else "unavailable: not connected to Ray"

    async def stop_desktops(self) -> None:
        # The actors are detached: sessions and their runs outlive this replica.
        await asyncio.to_thread(ray.shutdown)

    def background_jobs(self) -> list[Coroutine[Any, Any, None]]:
        return [self._watch_hosts()]

    # --- any replica reaches any session ---------------------------------------------------

    def check_held_here(self, session: Session) -> None:
        return None

    def _held_here(self) -> ColumnElement[bool]:
        return true()

    async def restore_all(self) -> None:
        """Nothing to bring back: the actors outlive the replicas. Lost ones are found by the
        host check."""
        await self.check_hosts()

    async def open(
        self,
        *,
        title: str,
        model: str | None,
        owner: str | None = None,
        record: bool | None = None,
        budget: dict[str, Any] | None = None,
        approval: str | list[str] | None = None,
    ) -> Session:
        recorded = self.wants_recording(record)
        fields: dict[str, Any] = {"title": title, "model": model, "owner": owner, "budget": budget}
        pooled = await self._open_pooled(recorded, approval=approval, **fields)
        if pooled is not None:
            return pooled
        if free_desktops() < 1:
            raise errors.CapacityReached(
                "Every desktop host of the cluster is full; delete a session or try again later."
            )
        session = await self.create(approval=approval, **fields)
        async with self.lock(session.id):
            actor = create_session_actor(session.id)
            try:
                started = await call(actor.start.remote(recorded), timeout=START_TIMEOUT)
            except BaseException as exc:
                logger.exception("desktop of session %s failed to start", session.id)
                ray.kill(actor)
                await self.delete(session_id=session.id)
                if isinstance(exc, errors.DomainError):
                    raise
                raise errors.ServiceUnavailable(
                    f"The session's desktop failed to start: {exc}"
                ) from exc
            await self._activate(session.id, started)
        return await self.get(session_id=session.id)

    async def _activate(self, session_id: str, started: dict[str, Any]) -> None:
        await self.update(session_id=session_id, host=started["host"])
        await self.transition(session_id, SessionStatus.ACTIVE)

    async def _open_pooled(self, recorded: bool, **fields: Any) -> Session | None:
        """The session on a pooled actor of the cluster's warm pool (pool.py), under the id it
        was made with; None when the pool has none ready (or is unreachable)."""
        keeper = find_pool_keeper()
        while keeper is not None:
            try:
                session_id = await call(keeper.take.remote(), timeout=PING_TIMEOUT)
            except errors.ServiceUnavailable:
                logger.warning("the warm pool's keeper does not answer; creating without it")
                return None
            if session_id is None:
                return None
            actor = find_session_actor(session_id)
            try:
                await self.create(session_id=session_id, **fields)
            except BaseException as exc:  # a refusal (an unknown model): the actor is fine
                usable = actor is not None and isinstance(exc, errors.DomainError)
                keeper.give_back.remote(session_id, usable=usable)
                raise
            async with self.lock(session_id):
                try:
                    started = await call(actor.claim.remote(recorded)) if actor else None
                except errors.ServiceUnavailable:
                    started = None
                except BaseException as exc:  # e.g. its recording did not start
                    if actor is not None:
                        ray.kill(actor)  # its reaper frees the slot
                    await self.delete(session_id=session_id)
                    raise errors.ServiceUnavailable(f"The pooled desktop failed: {exc}") from exc
                if started is not None:
                    await self._activate(session_id, started)
                    return await self.get(session_id=session_id)
                # Its desktop died while it waited, or the pool withdrew it: the next one.
                logger.warning("pooled session %s could not be claimed", session_id)
                keeper.give_back.remote(session_id, usable=False)
                await self.delete(session_id=session_id)
        return None

    def viewable(self, session: Session) -> bool:
        # Its actor runs the desktop from `active` on, until expiry, delete or a lost host.
        return session.status in (SessionStatus.ACTIVE, SessionStatus.PROCESSING)

    async def running_actor(self, *, session_id: str, owner: str | None) -> Any:
        """running_desktop's rules, for the session's actor. Counts as activity."""
        session = await self.get(session_id=session_id, owner=owner)
        self.check_not_expired(session)
        actor = actor_of(session_id)
        await self.touch(session_id=session_id)
        return actor

    async def screenshot(self, *, session_id: str, owner: str | None) -> bytes:
        actor = await self.running_actor(session_id=session_id, owner=owner)
        return cast(bytes, await call(actor.screenshot.remote()))

    async def files(self, *, session_id: str, owner: str | None) -> Files:
        return RemoteFiles(await self.running_actor(session_id=session_id, owner=owner))

    async def recording_of(self, session_id: str) -> RecordingState:
        return await recording_state(session_id, (await self.get(session_id=session_id)).host)

    async def recording_download(self, session_id: str) -> RecordingDownload:
        return await open_download(session_id, (await self.get(session_id=session_id)).host)

    async def export_recording(self, session_id: str) -> Path:
        raise errors.ServiceUnavailable(
            "A session's recording is exported on its desktop host; this replica reads it"
            " from there (recording_download)."
        )

    async def running_desktop(self, *, session_id: str, owner: str | None) -> Any:
        raise errors.ServiceUnavailable(
            "A session's desktop is on its desktop host; this replica reaches it through the"
            " session's actor only."
        )

    async def _release_desktop(self, session_id: str, *, expiring: bool = False) -> None:
        await self.closing(session_id)
        self.bus.close(session_id)
        actor = find_session_actor(session_id)
        if actor is None:  # ended (expired: its host may keep its recording), or its host lost
            if not expiring:
                await remove_kept(session_id, (await self.get(session_id=session_id)).host)
            return
        try:
            await call(actor.stop.remote(keep_recording=self.keeps_recording(expiring=expiring)))
        except errors.ServiceUnavailable:
            logger.warning("session %s: its actor did not stop cleanly", session_id)
        ray.kill(actor)
        await _released(session_id)

    # --- lost hosts ----------------------------------------------------------------------

    async def _watch_hosts(self) -> None:
        while True:
            await asyncio.sleep(HOST_CHECK_SECONDS)
            try:
                await asyncio.to_thread(self._desktop_hosts)  # learns hosts while they live
                await asyncio.to_thread(pool_health)  # a keeper Ray restarted refills again
                await self.check_hosts()
            except Exception:
                logger.exception("checking the desktop hosts failed; retrying")

    async def check_hosts(self) -> list[str]:
        """Every live session whose actor is gone becomes `error`; returns their ids."""
        async with self._sessionmaker() as db:
            rows = await db.execute(
                select(Session.id, Session.host).where(
                    Session.status.in_(LIVE_STATUSES), Session.status != SessionStatus.STARTING
                )
            )
            live = list(rows.all())
        results = await asyncio.gather(*(_alive(sid) for sid, _ in live))
        lost = [(sid, host) for (sid, host), alive in zip(live, results, strict=True) if not alive]
        for session_id, host in lost:
            await self._lost(session_id, host)
        return [sid for sid, _ in lost]

    async def _lost(self, session_id: str, host: str | None) -> None:
        detail = f"its desktop host {host} was lost"
        async with self.lock(session_id):
            session = await self.get(session_id=session_id)
            if session.status not in (SessionStatus.ACTIVE, SessionStatus.PROCESSING):
                return
            if session.processing:
                await self.end_lost_run(
                    session_id,
                    f"interrupted: {detail}",
                    f"The agent run was interrupted: {detail}. Create a new session to continue.",
                )
            await self.transition(session_id, SessionStatus.ERROR, detail)
        logger.warning("session %s: %s", session_id, detail)


async def _released(session_id: str, timeout: float = KILL_TIMEOUT) -> None:
    """Until Ray has ended the killed actor (`ray.kill` returns first): then its name and its
    slot are free, and a session created next sees the capacity."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if find_session_actor(session_id) is None:
            return
        await asyncio.sleep(0.05)
    logger.warning("session %s: its actor has its name %.0f s after ray.kill", session_id, timeout)


async def _alive(session_id: str) -> bool:
    """False when the session's actor is gone for good; True when it answers, or may still
    (a slow host is not a lost one)."""
    actor = find_session_actor(session_id)
    if actor is None:
        return False
    try:
        await asyncio.wait_for(actor.ping.remote(), PING_TIMEOUT)
    except RayActorError:
        return False
    except TimeoutError:  # asyncio's: the host is slow, not known lost
        return True
    return True


def replica_parts() -> RuntimeParts:
    """The runtime of an API replica on the cluster (build_runtime's `parts`)."""
    return RuntimeParts(sessions=RaySessionService, runner=RayAgentRunner)
