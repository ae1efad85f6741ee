"""The cluster's warm pool (WARM_POOL_SIZE with RAY_ADDRESS): session actors made ahead, so
that creating a session takes one over without waiting for a Ray worker, the project's
imports or a desktop's start.

A pooled actor is an ordinary SessionActor (session_actor.py) created under a session id made
ahead, so its name `session-<id>` is already the final one, and started (its desktop, and
Firefox with WARM_POOL_BROWSER) with no session record yet. One detached keeper actor for the
whole cluster, `warm-pool` in the namespace, holds the ready ids: `take` hands each out once
(the keeper is one actor: its methods run one at a time between awaits), then the replica
writes the session's record under that id and calls the actor's `claim`, which also answers
only once. The keeper holds no CPU and no desktop slot; the pooled actors hold their slots,
so they count against the cluster's capacity, and the keeper creates one only while a
`desktop` slot is free (Ray would leave an actor without a slot pending). It checks its ready
actors and the free slots every TICK seconds: a pooled actor whose desktop died is ended and
replaced. Ray restarts the keeper when its node dies; it then adopts the pooled actors it
finds among the cluster's session actors (so does every SWEEP seconds, for an id a replica
took and never claimed). Every replica's start sets the pool to its WARM_POOL_SIZE and
WARM_POOL_BROWSER (give every replica the same); 0 drains it and ends the keeper.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import ray
from ray.exceptions import RayActorError

from computer_use.cluster.naming import NAMESPACE, find_session_actor, free_desktops, session_ids
from computer_use.cluster.session_actor import START_TIMEOUT, create_session_actor

logger = logging.getLogger(__name__)

KEEPER_NAME = "warm-pool"
TICK = 1.0  # seconds between checks of the ready actors and the free slots
SWEEP = 30.0  # seconds between looks for pooled actors the keeper does not know
CLAIM_GRACE = 60.0  # an id handed out and still unclaimed after this is adopted again
RETRY_AFTER_FAILURE = 5.0
CALL_TIMEOUT = 10.0
EMPTY = {"size": 0, "ready": 0, "claimed": 0, "browser": False}


class PoolKeeper:
    """The detached `warm-pool` actor: the ready pooled sessions' ids, and their refill."""

    def __init__(self, size: int, browser: bool) -> None:
        self.size, self.browser = size, browser
        self.ready: list[str] = []  # ids of started, unclaimed pooled actors, oldest first
        self.taken: dict[str, float] = {}  # id -> when handed out (its claim may follow)
        self.claimed = 0
        self.preparing = 0
        self._filling = asyncio.Lock()  # held while an actor is being made
        self._task: asyncio.Task[None] | None = None
        self._next_sweep = 0.0  # a (re)started keeper looks for pooled actors first

    # --- what replicas call ---------------------------------------------------------------

    async def configure(self, size: int, browser: bool) -> dict[str, Any]:
        """The pool's size and browser setting from now on; pooled actors of the other
        browser setting, or beyond the size, are ended."""
        self._keep_going()
        if browser != self.browser:
            surplus, self.ready = self.ready, []
        else:
            surplus, self.ready = self.ready[size:], self.ready[:size]
        self.size, self.browser = size, browser
        await asyncio.gather(*(_retire(sid) for sid in surplus))
        return await self.health()

    async def take(self) -> str | None:
        """A ready pooled session's id, each only once; None when none is ready."""
        self._keep_going()
        if not self.ready:
            return None
        session_id = self.ready.pop(0)
        self.taken[session_id] = time.monotonic()
        self.claimed += 1
        return session_id

    async def give_back(self, session_id: str, *, usable: bool) -> None:
        """A replica did not claim what it took: back in the pool (its session's record could
        not be written), or ended (`usable` False: its desktop died while it waited)."""
        if self.taken.pop(session_id, None) is not None:
            self.claimed -= 1
        if usable:
            self.ready.insert(0, session_id)
        else:
            await _retire(session_id)

    async def health(self) -> dict[str, Any]:
        self._keep_going()
        return {
            "size": self.size,
            "ready": len(self.ready),
            "claimed": self.claimed,
            "browser": self.browser,
            "preparing": self.preparing,
        }

    async def drain(self) -> int:
        """Stops refilling and ends every ready pooled actor (one being made first finishes);
        returns how many were ended. The caller kills the keeper next."""
        self.size = 0
        task, self._task = self._task, None
        async with self._filling:
            if task is not None:
                task.cancel()
            ready, self.ready = self.ready, []
        await asyncio.gather(*(_retire(sid) for sid in ready))
        return len(ready)

    # --- the refill ------------------------------------------------------------------------

    def _keep_going(self) -> None:
        """Runs the refill loop, started by the first call (also after Ray restarted the
        keeper: every replica asks for the pool's health every HOST_CHECK_SECONDS)."""
        if (self._task is None or self._task.done()) and self.size > 0:
            self._task = asyncio.get_running_loop().create_task(self._keep())

    async def _keep(self) -> None:
        while self.size > 0:
            try:
                if time.monotonic() >= self._next_sweep:
                    await self._adopt()
                    self._next_sweep = time.monotonic() + SWEEP
                await self._check_ready()
                async with self._filling:
                    while self.size > len(self.ready) and free_desktops() >= 1:
                        if not await self._prepare_one():
                            await asyncio.sleep(RETRY_AFTER_FAILURE)
                            break
            except Exception:
                logger.exception("warm pool: a refill pass failed; retrying")
            await asyncio.sleep(TICK)  # polls Ray's free slots: nothing tells of a freed one

    async def _prepare_one(self) -> bool:
        session_id = str(uuid.uuid4())
        actor = create_session_actor(session_id)
        self.preparing += 1
        try:
            await asyncio.wait_for(
                actor.start.remote(browser=self.browser, pooled=True), START_TIMEOUT
            )
        except Exception:
            logger.exception("warm pool: starting a pooled desktop failed")
            ray.kill(actor)
            return False
        finally:
            self.preparing -= 1
        self.ready.append(session_id)
        return True

    async def _check_ready(self) -> None:
        """Drops the ready actors that are gone or taken, and ends those whose desktop died."""
        ids = list(self.ready)
        states = await asyncio.gather(*(_state(sid) for sid in ids))
        for session_id, state in zip(ids, states, strict=True):
            if state == "pooled" or session_id not in self.ready:  # or taken meanwhile
                continue
            self.ready.remove(session_id)
            if state == "failed":
                logger.warning("warm pool: pooled session %s's desktop died", session_id)
                await _retire(session_id)

    async def _adopt(self) -> None:
        """Pooled actors the keeper does not know (it was restarted, or a replica took one and
        never claimed it) join the ready ones; failed ones end."""
        now = time.monotonic()
        self.taken = {s: t for s, t in self.taken.items() if now - t < CLAIM_GRACE}
        known = set(self.ready) | set(self.taken)
        others = [s for s in await asyncio.to_thread(session_ids) if s not in known]
        states = await asyncio.gather(*(_state(sid) for sid in others))
        for session_id, state in zip(others, states, strict=True):
            if state == "pooled" and len(self.ready) < self.size:
                logger.info("warm pool: adopted pooled session %s", session_id)
                self.ready.append(session_id)
            elif state in ("pooled", "failed"):
                await _retire(session_id)


async def _state(session_id: str) -> str:
    """A session actor's pool_state; `gone` when it has no actor or it does not answer."""
    actor = find_session_actor(session_id)
    if actor is None:
        return "gone"
    try:
        return str(await asyncio.wait_for(actor.pool_state.remote(), CALL_TIMEOUT))
    except (RayActorError, TimeoutError):
        return "gone"


async def _retire(session_id: str) -> None:
    """Ends a pooled actor, unless a session claimed it meanwhile."""
    actor = find_session_actor(session_id)
    if actor is None:
        return
    try:
        if await asyncio.wait_for(actor.withdraw.remote(), START_TIMEOUT):
            ray.kill(actor)
    except (RayActorError, TimeoutError):
        ray.kill(actor)  # not answering: its reaper (reaper.py) frees its slot
    except Exception:
        logger.exception("warm pool: ending pooled session %s failed", session_id)
        ray.kill(actor)


# --- for replicas and operators ------------------------------------------------------------


def find_pool_keeper() -> Any | None:
    """The cluster's pool keeper, or None when there is no pool."""
    try:
        return ray.get_actor(KEEPER_NAME, namespace=NAMESPACE)
    except ValueError:
        return None


def pool_health(timeout: float = 2.0) -> dict[str, Any]:
    """The cluster's warm pool as its keeper reports it (size 0 when there is none). Blocks
    (a health request waits at most `timeout`)."""
    keeper = find_pool_keeper()
    if keeper is None:
        return dict(EMPTY)
    try:
        return dict(ray.get(keeper.health.remote(), timeout=timeout))
    except (RayActorError, ray.exceptions.GetTimeoutError) as exc:
        return {**EMPTY, "error": f"the pool's keeper does not answer ({type(exc).__name__})"}


def set_pool(size: int, browser: bool) -> dict[str, Any]:
    """The cluster's pool from now on (a replica's start: its WARM_POOL_SIZE and
    WARM_POOL_BROWSER): the keeper is made if there is none; 0 drains the pool. Blocks."""
    if size <= 0:
        drain_pool()
        return dict(EMPTY)
    keeper: Any = (
        ray.remote(PoolKeeper)
        .options(
            name=KEEPER_NAME,
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_restarts=-1,  # its node died: Ray starts it elsewhere, and it adopts
        )
        .remote(size, browser)
    )
    return dict(ray.get(keeper.configure.remote(size, browser), timeout=START_TIMEOUT))


def drain_pool() -> int:
    """Ends the cluster's pooled actors and its keeper (how an operator empties the pool, and
    what a replica started with WARM_POOL_SIZE=0 does); returns how many were ended. Blocks."""
    keeper = find_pool_keeper()
    if keeper is None:
        return 0
    ended = int(ray.get(keeper.drain.remote(), timeout=START_TIMEOUT))
    ray.kill(keeper)
    logger.info("warm pool drained: %d pooled sessions ended", ended)
    return ended
