"""Replicas joining and leaving a running ``proxy.Balancer`` of today, and discovery on its app.

``ProxyEngine`` gives today's routing engine (aiohttp pools) the two membership calls the data
plane's new engine has itself (``discovery.ReplicaEngine``):

- ``add_replica(target)``: a new ``ReplicaState`` with its own connection pool, probed once (a
  replica not answering yet starts out of rotation), then probed in the background like the
  static ones; the policy sees it from the next request on. A name in use is an error.
- ``drain_replica(name)``: the replica leaves the list the policy chooses from at once, so it
  gets no new request; returns when the requests already sent to it have finished on its pool,
  which is then closed.

It reaches into the Balancer (``states``, ``_pools``, ``_watchers``, ``_probe_once``, ``_watch``,
``_notify``). When the data plane's engine lands, this module goes: its ``Balancer`` has both calls,
so discovery uses ``EngineReplicaSet(balancer, config.replicas)`` directly.

``attach_discovery(app, api, config)`` makes a balancer app follow a Service's EndpointSlices
while it runs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

import aiohttp
from aiohttp import web

from mltoolkit.balancer.app import BALANCER_KEY
from mltoolkit.balancer.config import ReplicaTarget
from mltoolkit.balancer.discovery import DiscoveryConfig, EndpointSliceFollower, EngineReplicaSet, KubeAPIConfig
from mltoolkit.balancer.policies import ReplicaState
from mltoolkit.balancer.proxy import _NO_AUTO_HEADERS, POOL_KEEPALIVE_S, Balancer

logger = logging.getLogger("mltoolkit.balancer.membership")

DRAIN_POLL_S = 0.02


class ProxyEngine:
    """``add_replica`` / ``drain_replica`` on a started ``Balancer`` while it serves."""

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        # Balancer.start() makes one watcher per static replica, in the order of its states
        self._watchers: dict[str, asyncio.Task[None]] = (
            dict(zip((s.name for s in balancer.states), balancer._watchers))
            if len(balancer._watchers) == len(balancer.states)
            else {}
        )

    def state(self, name: str) -> ReplicaState | None:
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
        if self.state(target.name) is not None or target.name in balancer._pools:
            raise ValueError(f"replica name {target.name!r} is already in use")
        state = ReplicaState(name=target.name, url=target.url, node=target.node, weight=target.weight)
        balancer._pools[state.name] = self._pool()
        await balancer._probe_once(state)
        balancer.states.append(state)
        watcher = asyncio.create_task(balancer._watch(state))
        balancer._watchers.append(watcher)
        self._watchers[state.name] = watcher
        balancer._notify()
        logger.info("replica %s added (%s)", target.name, target.url)

    async def drain_replica(self, name: str) -> None:
        balancer = self.balancer
        state = self.state(name)
        if state is None:
            raise ValueError(f"no replica named {name!r}; the replicas are {[s.name for s in balancer.states]}")
        balancer.states.remove(state)  # no new request chooses it from now on
        balancer._notify()
        watcher = self._watchers.pop(name, None)
        if watcher is not None:
            watcher.cancel()
            if watcher in balancer._watchers:
                balancer._watchers.remove(watcher)
        logger.info("replica %s draining (%d in flight)", name, state.in_flight)
        while state.in_flight > 0:
            await asyncio.sleep(DRAIN_POLL_S)
        pool = balancer._pools.pop(name, None)
        if pool is not None:
            await pool.close()
        logger.info("replica %s removed (%d served)", name, state.served)


def attach_discovery(
    app: web.Application,
    api: KubeAPIConfig,
    config: DiscoveryConfig,
    engine: type[ProxyEngine] = ProxyEngine,
) -> None:
    """Make the balancer app follow ``config.service``'s EndpointSlices while it runs.

    The follower starts after the balancer (``create_app`` registers that first) and lists before
    the app listens, so the first request already sees the ready replicas; a refused service
    account stops the start-up with a ``DiscoveryError`` that says which permission is missing.
    """

    async def follow(app: web.Application) -> AsyncIterator[None]:
        balancer = app[BALANCER_KEY]
        replicas = EngineReplicaSet(engine(balancer), balancer.config.replicas)
        follower = EndpointSliceFollower(api, config, replicas)
        try:
            await follower.start()
            yield
        finally:
            await follower.stop()
            await replicas.settled()

    app.cleanup_ctx.append(follow)
