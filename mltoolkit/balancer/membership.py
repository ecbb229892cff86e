"""``BalancerMembership``: discovery's ``ReplicaSet`` over the routing engine of ``proxy.Balancer``.

Discovery (``mltoolkit.balancer.discovery``) decides which replicas to add, drain or remove; this
adapter performs it on a running ``Balancer``:

- **add**: a new ``ReplicaState`` with its own connection pool, probed once (so a replica that
  is not answering yet starts out of rotation), then probed in the background like the static
  ones; the policy sees it from the next request on. A known name at another URL is replaced
  (the old one drained).
- **drain / remove**: the replica leaves the list the policy chooses from at once, so it gets no
  new request; requests already sent to it finish on its pool, which is closed when the last
  one is answered.

It uses the Balancer's attributes (``states``, ``_pools``, ``_watchers``, ``_probe_once``,
``_watch``, ``_notify``): it is the bridge until the data plane offers the same calls itself,
at which point this file shrinks to nothing.
"""

from __future__ import annotations

import asyncio
import logging

from typing import AsyncIterator

import aiohttp
from aiohttp import web

from mltoolkit.balancer.app import BALANCER_KEY
from mltoolkit.balancer.config import ReplicaTarget
from mltoolkit.balancer.discovery import DiscoveryConfig, EndpointSliceFollower, KubeAPIConfig
from mltoolkit.balancer.policies import ReplicaState
from mltoolkit.balancer.proxy import _NO_AUTO_HEADERS, POOL_KEEPALIVE_S, Balancer

logger = logging.getLogger("mltoolkit.balancer.membership")

DRAIN_POLL_S = 0.05


class BalancerMembership:
    """Add, drain and remove replicas of a started ``Balancer`` while it serves."""

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.draining: dict[str, asyncio.Task[None]] = {}  # by the drained state's id
        # Balancer.start() makes one watcher per static replica, in the order of its states
        self._watchers: dict[str, asyncio.Task[None]] = (
            dict(zip((s.name for s in balancer.states), balancer._watchers))
            if len(balancer._watchers) == len(balancer.states)
            else {}
        )

    def _state(self, name: str) -> ReplicaState | None:
        return next((s for s in self.balancer.states if s.name == name), None)

    def _pool(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.balancer.config.max_connections_per_replica, keepalive_timeout=POOL_KEEPALIVE_S
            ),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_NO_AUTO_HEADERS,
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def add_replica(self, target: ReplicaTarget) -> None:
        balancer = self.balancer
        known = self._state(target.name)
        if known is not None:
            if (known.url, known.node) == (target.url, target.node):
                return
            await self.drain_replica(target.name)
        state = ReplicaState(name=target.name, url=target.url, node=target.node, weight=target.weight)
        balancer._pools[state.name] = self._pool()
        await balancer._probe_once(state)
        balancer.states.append(state)
        watcher = asyncio.create_task(balancer._watch(state))
        balancer._watchers.append(watcher)
        self._watchers[state.name] = watcher
        balancer._notify()

    async def drain_replica(self, name: str) -> None:
        balancer = self.balancer
        state = self._state(name)
        if state is None:
            return
        balancer.states.remove(state)  # no new request chooses it from now on
        balancer._notify()
        watcher = self._watchers.pop(name, None)
        if watcher is not None:
            watcher.cancel()
            if watcher in balancer._watchers:
                balancer._watchers.remove(watcher)
        pool = balancer._pools.pop(name, None)
        key = f"{name}@{id(state)}"
        self.draining[key] = asyncio.create_task(self._close_when_idle(key, state, pool))

    async def remove_replica(self, name: str) -> None:
        await self.drain_replica(name)

    async def _close_when_idle(self, key: str, state: ReplicaState, pool: aiohttp.ClientSession | None) -> None:
        try:
            while state.in_flight > 0:
                await asyncio.sleep(DRAIN_POLL_S)
            if pool is not None:
                await pool.close()
            logger.info("replica %s drained (%d served)", state.name, state.served)
        finally:
            self.draining.pop(key, None)

    async def drained(self) -> None:
        """Wait until every drained replica's in-flight requests have finished."""
        while self.draining:
            await asyncio.gather(*list(self.draining.values()), return_exceptions=True)


def attach_discovery(
    app: web.Application,
    api: KubeAPIConfig,
    config: DiscoveryConfig,
    membership: type[BalancerMembership] = BalancerMembership,
) -> None:
    """Make the balancer app follow ``config.service``'s EndpointSlices while it runs.

    The follower starts after the balancer (``create_app`` registers that first) and lists before
    the app listens, so the first request already sees the ready replicas; a refused service
    account stops the start-up with a ``DiscoveryError`` that says which permission is missing.
    """

    async def follow(app: web.Application) -> AsyncIterator[None]:
        replicas = membership(app[BALANCER_KEY])
        follower = EndpointSliceFollower(api, config, replicas)
        try:
            await follower.start()
            yield
        finally:
            await follower.stop()
            await replicas.drained()

    app.cleanup_ctx.append(follow)
