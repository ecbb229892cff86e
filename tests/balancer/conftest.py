"""Fixtures for the balancer's tests: fake replicas and in-process balancers, all stopped at the end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from mltoolkit.balancer import Balancer, BalancerConfig, BalancerServer, ReplicaTarget, start_server
from mltoolkit.balancer.haproxy_plane import HAProxyPlane, start_haproxy_plane

from .fakes import ClosingServer, FakeReplica


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def replicas() -> AsyncIterator[Callable[..., Awaitable[FakeReplica]]]:
    """``await replicas("a", delay_s=0.1)`` → a started FakeReplica, stopped after the test."""
    started: list[FakeReplica] = []

    async def start(name: str, delay_s: float = 0.0) -> FakeReplica:
        replica = FakeReplica(name, delay_s)
        started.append(replica)
        return await replica.start()

    yield start
    for replica in started:
        await replica.stop()


@pytest.fixture
async def closing_server() -> AsyncIterator[ClosingServer]:
    server = await ClosingServer().start()
    yield server
    await server.stop()


@dataclass
class RunningBalancer:
    url: str
    balancer: Balancer
    server: BalancerServer

    def state(self, name: str) -> Any:
        return next(s for s in self.balancer.states if s.name == name)


@pytest.fixture
async def start_balancer() -> AsyncIterator[Callable[..., Awaitable[RunningBalancer]]]:
    """``await start_balancer([replica, ...], policy=..., **config)`` → a balancer on a free port.

    Targets are ReplicaTargets or anything with ``name`` and ``url`` (FakeReplica, ClosingServer,
    Address).
    """
    servers: list[BalancerServer] = []

    async def start(targets: list[Any], **settings: Any) -> RunningBalancer:
        settings.setdefault("data_plane", "python")  # start_server runs the python data plane
        config = BalancerConfig(
            replicas=tuple(
                t if isinstance(t, ReplicaTarget) else ReplicaTarget(name=t.name, url=t.url)
                for t in targets
            ),
            **settings,
        )
        server = await start_server(config)
        servers.append(server)
        return RunningBalancer(url=server.url, balancer=server.balancer, server=server)

    yield start
    for server in servers:
        await server.close(grace_s=1.0)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


@pytest.fixture
async def plane() -> AsyncIterator[Callable[..., Awaitable[HAProxyPlane]]]:
    """``await plane([replica, ...], policy=...)``: the haproxy data plane in front of them
    (health checks every 0.1 s), closed after the test."""
    started: list[HAProxyPlane] = []

    async def start(targets: list[Any], **values: Any) -> HAProxyPlane:
        values.setdefault("health_interval_s", 0.1)
        replicas = tuple(ReplicaTarget(t.name, t.url) for t in targets)
        started.append(await start_haproxy_plane(BalancerConfig(replicas=replicas, data_plane="haproxy", **values)))
        return started[-1]

    yield start
    for running in started:
        await running.close(grace_s=1.0)
