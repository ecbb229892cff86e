import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from mltoolkit.sim.costs import CostDistribution
from mltoolkit.sim.fleet import Fleet
from mltoolkit.sim.fleet_spec import FleetSpec, ReplicaSpec

SAFETY_TIMEOUT_S = 60  # a net against hangs, not a performance assertion


@pytest.fixture
def run() -> Callable[[Awaitable[Any]], Any]:
    """Run one async scenario to completion in a fresh event loop."""

    def _run(coro: Awaitable[Any]) -> Any:
        return asyncio.run(asyncio.wait_for(coro, SAFETY_TIMEOUT_S))

    return _run


@asynccontextmanager
async def running_fleet(*replicas: ReplicaSpec, costs: CostDistribution | None = None) -> AsyncIterator[Fleet]:
    """A fleet in this loop, always stopped afterwards (ports freed, hung handlers released)."""
    fleet = Fleet(FleetSpec(replicas=replicas, costs=costs or CostDistribution("constant", 0.01)))
    await fleet.start()
    try:
        yield fleet
    finally:
        await fleet.stop()


async def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll a state condition (not a clock): the scenario proceeds once it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached within the safety timeout")
        await asyncio.sleep(0.01)


async def post_predict(session: aiohttp.ClientSession, url: str, body: Any = None, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    async with session.post(url + "/predict", json=body if body is not None else {}, **kwargs) as response:
        try:
            payload = await response.json(content_type=None)
        except ValueError:
            payload = await response.text()
        return response.status, dict(response.headers), payload
