"""Fixtures for the balancer's tests: fake replicas and in-process balancers, all stopped at the end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from mltoolkit.balancer import BALANCER_KEY, Balancer, BalancerConfig, ReplicaTarget, create_app

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

    def state(self, name: str) -> Any:
        return next(s for s in self.balancer.states if s.name == name)


@pytest.fixture
async def start_balancer() -> AsyncIterator[Callable[..., Awaitable[RunningBalancer]]]:
    """``await start_balancer([replica, ...], policy=..., **config)`` → a balancer on a free port.

    Targets are ReplicaTargets or anything with ``name`` and ``url`` (FakeReplica, ClosingServer,
    Address).
    """
    runners: list[web.AppRunner] = []

    async def start(targets: list[Any], **settings: Any) -> RunningBalancer:
        config = BalancerConfig(
            replicas=tuple(
                t if isinstance(t, ReplicaTarget) else ReplicaTarget(name=t.name, url=t.url)
                for t in targets
            ),
            **settings,
        )
        app = create_app(config)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        runners.append(runner)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return RunningBalancer(url=f"http://{host}:{port}", balancer=app[BALANCER_KEY])

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session
