"""One simulated replica: an aiohttp app that emulates service time with ``asyncio.sleep``.

``POST /predict`` takes a JSON object; its cost (seconds on a speed-1.0 replica) comes from the
``X-Cost`` header, else the body's ``cost`` field, else is drawn from the fleet's distribution.
The request waits FIFO for one of the replica's slots, holds it for ``cost / speed`` seconds
(``x slow_factor`` once slowed), then answers ``{"predictions", "replica", "cost", "service_s",
"queued_s"}``. ``GET /v2/health/ready`` answers 200 while the replica lives. Every answer carries
``X-Replica`` and ``X-In-Flight`` (requests waiting + in service on this replica, not counting the
one being answered).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

from mltoolkit.sim.costs import CostDistribution
from mltoolkit.sim.fleet_spec import DEATH_MODES, ReplicaSpec

REPLICA_HEADER = "X-Replica"
IN_FLIGHT_HEADER = "X-In-Flight"
COST_HEADER = "X-Cost"
MAX_COST_S = 3600.0


class SlotQueue:
    """``k`` slots handed out first come, first served."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._free = slots
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def busy(self) -> int:
        return self.slots - self._free

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed to us just as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next in line
                return
        self._free += 1


def service_time_s(cost_s: float, speed: float, slowed: bool, slow_factor: float) -> float:
    """How long a request of ``cost_s`` holds a slot on a replica of ``speed``."""
    return cost_s / speed * (slow_factor if slowed else 1.0)


@dataclass
class ReplicaCounters:
    """``arrived``: valid predict requests received (answered or not); ``served``: answered;
    ``rejected``: answered 400; ``busy_s``: slot-seconds of completed service."""

    arrived: int = 0
    served: int = 0
    rejected: int = 0
    busy_s: float = 0.0


class BadRequest(Exception):
    pass


def parse_cost(header: str | None, body: Any) -> float | None:
    """The request's cost in seconds, or None when it carries none; ``BadRequest`` if invalid."""
    if header is not None:
        try:
            value: Any = float(header)
        except ValueError:
            raise BadRequest(f"header {COST_HEADER}: {header!r} is not a number") from None
        source = f"header {COST_HEADER}"
    elif isinstance(body, dict) and "cost" in body:
        value, source = body["cost"], "field 'cost'"
    else:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 <= value <= MAX_COST_S
    ):
        raise BadRequest(f"{source}: {value!r} is not allowed; expected seconds from 0 to {MAX_COST_S:g}")
    return float(value)


class SimReplica:
    """The state and HTTP handlers of one replica; ``app`` serves them."""

    def __init__(self, spec: ReplicaSpec, costs: CostDistribution, rng: np.random.Generator) -> None:
        self.spec = spec
        self.costs = costs
        self.rng = rng
        self.queue = SlotQueue(spec.slots)
        self.counters = ReplicaCounters()
        self.slowed = False
        self.slow_factor = spec.slow_factor
        self.dead: str | None = None  # None, "close" or "hang"
        self._tasks: set[asyncio.Task[Any]] = set()
        self._never: asyncio.Future[None] | None = None
        self.app = web.Application(client_max_size=1 << 20)
        self.app.router.add_get("/v2/health/ready", self.health)
        self.app.router.add_post("/predict", self.predict)
        self.app.on_response_prepare.append(self._headers)

    @property
    def in_flight(self) -> int:
        return self.queue.busy + self.queue.waiting

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers[REPLICA_HEADER] = self.spec.name
        response.headers[IN_FLIGHT_HEADER] = str(self.in_flight)

    async def _hang_if_dead(self) -> None:
        if self.dead == "hang":
            if self._never is None:
                self._never = asyncio.get_running_loop().create_future()
            await self._never  # cancelled when the fleet stops

    async def health(self, request: web.Request) -> web.Response:
        await self._hang_if_dead()
        return web.json_response({"replica": self.spec.name, "ready": True})

    async def predict(self, request: web.Request) -> web.Response:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._hang_if_dead()
            try:
                body = await request.json() if request.can_read_body else {}
                if not isinstance(body, dict):
                    raise BadRequest("the body must be a JSON object")
                cost = parse_cost(request.headers.get(COST_HEADER), body)
                instances = body.get("instances", [])
                if not isinstance(instances, list):
                    raise BadRequest("field 'instances': expected a list of rows")
            except (BadRequest, json.JSONDecodeError, UnicodeDecodeError) as exc:
                self.counters.rejected += 1
                raise web.HTTPBadRequest(
                    text=json.dumps({"error": str(exc)}), content_type="application/json"
                ) from None
            self.counters.arrived += 1
            if cost is None:
                cost = float(self.costs.sample(self.rng, 1)[0])
            loop = asyncio.get_running_loop()
            arrived = loop.time()
            await self.queue.acquire()
            try:
                started = loop.time()
                service = service_time_s(cost, self.spec.speed, self.slowed, self.slow_factor)
                await asyncio.sleep(service)
                self.counters.busy_s += service
            finally:
                self.queue.release()
            await self._hang_if_dead()
            self.counters.served += 1
            return web.json_response(
                {
                    "predictions": [0] * len(instances),
                    "replica": self.spec.name,
                    "cost": cost,
                    "service_s": service,
                    "queued_s": started - arrived,
                }
            )
        finally:
            self._tasks.discard(task)

    def slow_down(self, factor: float | None = None) -> None:
        if factor is not None:
            self.slow_factor = factor
        self.slowed = True

    def die(self, mode: str) -> None:
        """Mark the replica dead; the fleet closes its sockets for ``close``."""
        if mode not in DEATH_MODES:
            raise ValueError(f"death mode {mode!r}; expected one of {list(DEATH_MODES)}")
        self.dead = mode
        if mode == "close":
            for task in list(self._tasks):
                task.cancel()

    def release_hung(self) -> None:
        """Let every hung handler end (on fleet stop)."""
        if self._never is not None and not self._never.done():
            self._never.cancel()
        for task in list(self._tasks):
            task.cancel()

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "slots": self.spec.slots,
            "speed": self.spec.speed,
            "busy": self.queue.busy,
            "waiting": self.queue.waiting,
            "in_flight": self.in_flight,
            "arrived": self.counters.arrived,
            "served": self.counters.served,
            "rejected": self.counters.rejected,
            "busy_s": self.counters.busy_s,
            "slowed": self.slowed,
            "slow_factor": self.slow_factor,
            "dead": self.dead,
        }
