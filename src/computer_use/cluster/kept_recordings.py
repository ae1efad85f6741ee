"""Recordings a desktop host keeps after their sessions' actors ended (RAY_ADDRESS).

In one process an expired session's recording stays where it was made, readable until the
session is deleted (RECORDINGS_ON_EXPIRY=keep). On a host a session's recording is made on
its slot's data directory, which the slot's next actor clears; so a session actor that ends
with its recording kept (`SessionActor.stop(keep_recording=True)`, on expiry) stops it, then
moves it to the host's `DATA_DIR/kept/recordings/<session id>/` (a rename on one file
system), which no slot touches. There the host's keeper, a detached actor named
`recordings-<host>` (naming.keeper_name) pinned to the host's node, holding no CPU, serves
them to every API replica with the session actor's own recording calls (RecordingExports:
state, export, chunked reads) and removes one when its session is deleted.

Each session actor makes sure its host's keeper runs when it starts (Ray's get_if_exists: one
keeper per host), so a replica that finds no keeper knows the host cannot be reached (a 503),
not that the session has no recording (the one-process 404). A keeper dies with its host;
the first session actor after the host's restart starts a new one, which then removes the
kept recordings of sessions deleted meanwhile (`reconcile`, as one process does at its start).
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from sqlalchemy import select

from computer_use.cluster.naming import NAMESPACE, keeper_name
from computer_use.cluster.remote_recordings import RecordingExports
from computer_use.config import Settings
from computer_use.database import create_engine, create_sessionmaker
from computer_use.desktops.recorder import Recordings
from computer_use.sessions.models import Session
from computer_use.sessions.recording_reader import RecordingReader


def kept_recordings(settings: Settings) -> Recordings:
    """The host's kept recordings: `DATA_DIR/kept/recordings/<session id>/`."""
    return Recordings(settings.data_dir / "kept", fps=settings.recording_fps)


async def move_to_kept(recordings: Recordings, session_id: str, settings: Settings) -> None:
    """Moves the session's stopped recording (if it has one) from its slot's `recordings` to
    the host's kept recordings, and makes sure the host's keeper runs."""
    source = recordings.dir(session_id)
    if recordings.exists(session_id):
        target = kept_recordings(settings).dir(session_id)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.move, source, target)
    await asyncio.to_thread(shutil.rmtree, source, True)  # a recording without a frame
    await asyncio.to_thread(ensure_keeper, settings)


def ensure_keeper(settings: Settings) -> Any:
    """The keeper of this host (the caller's node), started if it is not running. It runs
    its `reconcile` once in its life."""
    node = ray.get_runtime_context().get_node_id()
    keeper: Any = (
        ray.remote(RecordingKeeper)
        .options(
            name=keeper_name(settings.instance),
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
        )
        .remote()
    )
    keeper.reconcile.remote()  # a no-op after the first
    return keeper


class RecordingKeeper:
    """The host's kept recordings, for any API replica; runs in a Ray worker on the host."""

    def __init__(self) -> None:
        # The host's own environment (as a session actor's): its DATA_DIR, its database.
        self.settings = Settings(ray_address="")
        self.reader = RecordingReader(kept_recordings(self.settings))
        self.exports: dict[str, RecordingExports] = {}
        self.reconciled = False

    async def ping(self) -> str:
        """The host's name: the keeper is alive."""
        return self.settings.instance

    async def recording(self, session_id: str, verb: str, *args: Any) -> Any:
        """One of a session actor's recording calls (RecordingExports.CALLS), on the kept
        recording of `session_id`."""
        exports = self.exports.get(session_id)
        if exports is None:  # kept until the session is deleted: its exports may be open
            exports = self.exports[session_id] = RecordingExports(lambda: self.reader, session_id)
        return await exports.call(verb, *args)

    async def remove(self, session_id: str) -> None:
        """The session was deleted: its kept recording and any open export of it go."""
        exports = self.exports.pop(session_id, None)
        if exports is not None:
            await exports.close_all()
        await self.reader.recordings.remove(session_id)

    async def reconcile(self) -> None:
        """Once in the keeper's life (the host's first session after a restart): the kept
        recordings of sessions no longer in the database go, with any export left over."""
        if self.reconciled:
            return
        self.reconciled = True
        root = self.reader.recordings.root
        kept = {entry.name for entry in root.iterdir()} if root.is_dir() else set()
        if not kept:
            return
        engine = create_engine(self.settings)
        try:
            async with create_sessionmaker(engine)() as db:
                rows = await db.scalars(select(Session.id).where(Session.id.in_(kept)))
                known = set(rows.all())
        finally:
            await engine.dispose()
        await self.reader.recordings.reconcile(known)
