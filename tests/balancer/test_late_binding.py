"""The ``late_binding`` policy: requests wait in the balancer until a replica has a free slot.

Unit tests build replica states by hand. The proxy tests use ``SlotReplica``: a replica with
``k`` slots served first come, first served, whose requests either take ``cost`` seconds or wait
until the test releases them, so what reached which replica, and when, is visible.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from mltoolkit.balancer.policies import OVERTAKE_MARGIN_S, LateBinding, ReplicaState

from .fakes import free_port, wait_until

pytestmark = pytest.mark.anyio


def states(*names: str, **weights: float) -> list[ReplicaState]:
    return [ReplicaState(name=n, url=f"http://127.0.0.1:{9000 + i}", weight=weights.get(n, 1.0))
            for i, n in enumerate(names)]  # fmt: skip


def name(replica: ReplicaState | None) -> str | None:
    return replica.name if replica is not None else None


# -- choices on constructed states ----------------------------------------------------------------


def test_a_free_slot_on_the_fastest_replica_wins():
    fast, slow = states("fast", "slow")
    fast.record_answer(0.1, None)
    slow.record_answer(0.3, None)
    policy = LateBinding(slots=2)
    # Both have free slots: the faster one, as the central queue's "fastest free slot".
    assert name(policy.choose([fast, slow])) == "fast"
    fast.in_flight = 1
    assert name(policy.choose([fast, slow])) == "fast"  # one of fast's two slots is still free
    # fast is full (2 of 2): slow's free slot, however slow, rather than queueing on fast.
    fast.in_flight = 2
    assert name(policy.choose([fast, slow])) == "slow"
    # Every slot busy and the slot count fixed: hold the request (None) until one frees.
    slow.in_flight = 2
    assert policy.choose([fast, slow]) is None
    # A slot frees on slow: the held request can go there.
    slow.in_flight = 1
    assert name(policy.choose([fast, slow])) == "slow"


def test_weight_is_a_preference_among_free_replicas():
    a, b = states("a", "b", b=4.0)
    a.record_answer(0.1, None)
    b.record_answer(0.2, None)
    # a: 0.1 / 1 = 0.1, b: 0.2 / 4 = 0.05 per unit of weight: b, though its answers took longer.
    assert name(LateBinding(slots=1).choose([a, b])) == "b"


def test_unknown_replicas_count_as_the_fastest_known_and_ties_go_in_turn():
    a, b, c = states("a", "b", "c")
    policy = LateBinding(slots=1)
    # Nothing known: all equal, so the free replicas take turns.
    assert [name(policy.choose([a, b, c])) for _ in range(3)] == ["a", "b", "c"]
    a.record_answer(0.1, None)
    b.record_answer(0.5, None)
    # c has not answered yet: counted as fast as a (0.1), so a and c share, b (0.5) waits its turn.
    assert {name(policy.choose([a, b, c])) for _ in range(4)} == {"a", "c"}


def test_skips_unhealthy_and_excluded_and_holds_nothing_when_none_is_left():
    a, b = states("a", "b")
    a.healthy = False
    policy = LateBinding(slots=1)
    assert name(policy.choose([a, b])) == "b"
    # b excluded (a retry) and a out of rotation: no candidate at all, so None, and the proxy
    # answers 503 at once instead of waiting (it waits only while candidates exist).
    assert policy.choose([a, b], frozenset({"b"})) is None


def test_learned_slots_are_the_most_seen_in_parallel_on_any_replica():
    a, b = states("a", "b")
    policy = LateBinding()  # learn
    assert policy.slots_per_replica([a, b]) == 1  # nothing seen yet: one slot each
    b.parallel_seen = 3
    # Replicas of one deployment run the same server: what b showed holds for a too.
    assert policy.slots_per_replica([a, b]) == 3
    a.in_flight, b.in_flight = 2, 3
    # b is full at 3; a, with 2 in flight, still has a free third slot.
    assert name(policy.choose([a, b])) == "a"
    assert LateBinding(slots=2).slots_per_replica([a, b]) == 2  # a fixed count is not learned


def test_when_all_are_full_one_request_at_a_time_probes_for_another_slot():
    fast, slow = states("fast", "slow")
    fast.record_answer(0.1, None)
    slow.record_answer(0.3, None)
    fast.in_flight = slow.in_flight = 1  # learned 1 slot each: all full
    policy = LateBinding()
    # No probe is out: one request goes over the limit, to the fastest replica, to find out
    # whether it serves two at once.
    assert name(policy.choose([fast, slow])) == "fast"
    fast.in_flight = 2
    # That probe is still out (fast has 2 of 1): the next request is held, not sent over too.
    assert policy.choose([fast, slow]) is None
    # With a fixed slot count there is no probing at all.
    fast.in_flight = 1
    assert LateBinding(slots=1).choose([fast, slow]) is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_bad_slot_count_is_refused(bad):
    with pytest.raises(ValueError, match=r"late_binding slots: .*whole number >= 1 or None"):
        LateBinding(slots=bad)


# -- through the proxy ----------------------------------------------------------------------------


class SlotReplica:
    """``POST /predict`` with ``{"cost": s}`` holds one of ``slots`` for s seconds, or with
    ``{"hold": true}`` until ``release()``; requests beyond the slots wait in FIFO order;
    ``{"bad": true}`` is answered 400 at once."""

    def __init__(self, name: str, slots: int) -> None:
        self.name = name
        self.slots = slots
        self.port = free_port()
        self.arrived = 0  # /predict requests that reached the replica
        self.in_service = 0
        self.waiting = 0
        self.max_waiting = 0  # the longest queue inside the replica
        self._free = slots
        self._queue: deque[asyncio.Future[None]] = deque()
        self._gate = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def release(self) -> None:
        self._gate.set()

    async def _acquire(self) -> None:
        if self._free > 0 and not self._queue:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        self.waiting += 1
        self.max_waiting = max(self.max_waiting, self.waiting)
        try:
            await waiter
        finally:
            self.waiting -= 1

    def _release_slot(self) -> None:
        if self._queue:
            self._queue.popleft().set_result(None)
        else:
            self._free += 1

    async def _predict(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.arrived += 1
        if body.get("bad"):  # rejected at once, as a server does with bad input: no slot taken
            return web.json_response({"error": "bad"}, status=400)
        await self._acquire()
        self.in_service += 1
        try:
            if body.get("hold"):
                await self._gate.wait()
            else:
                await asyncio.sleep(body["cost"])
        finally:
            self.in_service -= 1
            self._release_slot()
        headers = {"X-Replica": self.name, "X-In-Flight": str(self.in_service + self.waiting)}
        return web.json_response({"replica": self.name}, headers=headers)

    async def _ready(self, request: web.Request) -> web.Response:
        return web.json_response({"ready": True})

    async def start(self) -> SlotReplica:
        app = web.Application()
        app.router.add_get("/v2/health/ready", self._ready)
        app.router.add_post("/predict", self._predict)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture
async def slot_replicas() -> AsyncIterator[Callable[[str, int], asyncio.Future[SlotReplica]]]:
    started: list[SlotReplica] = []

    async def start(name: str, slots: int) -> SlotReplica:
        replica = SlotReplica(name, slots)
        started.append(replica)
        return await replica.start()

    yield start
    for replica in started:
        await replica.stop()


async def send(client: aiohttp.ClientSession, url: str, body: dict) -> str:
    async with client.post(url + "/predict", json=body) as response:
        assert response.status == 200, await response.text()
        return response.headers["X-Replica"]


@pytest.mark.parametrize("policy", ["late_binding", "least_request"])
async def test_short_requests_do_not_queue_behind_a_long_one(
    policy, slot_replicas, start_balancer, client
):
    """Two one-slot replicas; one is busy with a long request. Late binding holds the short
    requests in the balancer and gives each to the other replica as it frees, so none is stuck
    behind the long one; least_request (the contrast) sends some to the busy replica."""
    a = await slot_replicas("a", 1)
    b = await slot_replicas("b", 1)
    lb = await start_balancer([a, b], policy=policy)
    if policy == "late_binding":
        lb.balancer.policy = LateBinding(slots=1)  # known slots: no probing in this test
    long = asyncio.create_task(send(client, lb.url, {"hold": True}))
    await wait_until(lambda: a.in_service + b.in_service == 1, what="the long request in service")
    busy, other = (a, b) if a.in_service else (b, a)
    shorts = [asyncio.create_task(send(client, lb.url, {"cost": 0.02})) for _ in range(6)]
    if policy == "late_binding":
        # Every short request is answered while the long one still holds its replica, all by the
        # other replica, one at a time: the balancer was their queue.
        assert await asyncio.gather(*shorts) == [other.name] * 6
        assert busy.arrived == 1 and other.arrived == 6
        assert other.max_waiting == 0 and busy.max_waiting == 0
        busy.release()
        assert await long == busy.name
    else:
        # least_request sees 1 in flight on each replica at times and sends a short request to
        # the busy one, where it waits behind the long request.
        await wait_until(lambda: busy.arrived >= 2, what="a short request on the busy replica")
        assert busy.max_waiting >= 1
        busy.release()
        await asyncio.gather(long, *shorts)


async def test_learns_two_slots_and_never_queues_more_than_one_probe(
    slot_replicas, start_balancer, client
):
    a = await slot_replicas("a", 2)
    b = await slot_replicas("b", 2)
    lb = await start_balancer([a, b], policy="late_binding")
    policy = lb.balancer.policy
    assert isinstance(policy, LateBinding) and policy.slots is None
    held = [asyncio.create_task(send(client, lb.url, {"hold": True})) for _ in range(2)]
    await wait_until(lambda: a.in_service == b.in_service == 1, what="one held request on each")
    assert policy.slots_per_replica(lb.balancer.states) == 1  # nothing learned yet
    await asyncio.sleep(3 * OVERTAKE_MARGIN_S)  # so that the probe is clearly sent after them
    # Both replicas full as far as the balancer knows (1 slot): this request is the probe. It
    # finds a free second slot, is answered before the held one there: two slots, learned.
    await send(client, lb.url, {"cost": 0.01})
    assert policy.slots_per_replica(lb.balancer.states) == 2
    # Now two per replica: two more held requests fill every slot without any waiting.
    held += [asyncio.create_task(send(client, lb.url, {"hold": True})) for _ in range(2)]
    await wait_until(lambda: a.in_service == 2 and b.in_service == 2, what="all four slots held")
    assert a.max_waiting == b.max_waiting == 0
    await asyncio.sleep(3 * OVERTAKE_MARGIN_S)
    # All full again: one probe goes out and queues inside a replica (there is no third slot);
    # the next requests stay in the balancer while that probe is out.
    probe = asyncio.create_task(send(client, lb.url, {"cost": 0.1}))
    await wait_until(lambda: a.waiting + b.waiting == 1, what="the probe queued in a replica")
    later = [asyncio.create_task(send(client, lb.url, {"cost": 0.01})) for _ in range(3)]
    await asyncio.sleep(0.3)  # give the proxy time to (wrongly) send them; nothing depends on it
    # 4 held + the first probe (answered) + this probe reached the replicas; the 3 later did not.
    assert a.arrived + b.arrived == 6 and a.waiting + b.waiting == 1
    a.release()
    b.release()
    await asyncio.gather(probe, *later, *held)
    # The probe finished after the held requests it queued behind: no third slot was "seen".
    assert policy.slots_per_replica(lb.balancer.states) == 2
    assert max(a.max_waiting, b.max_waiting) == 1
    doc_row = lb.balancer.report()["replicas"][0]
    assert doc_row["parallel_seen"] == lb.state(doc_row["name"]).parallel_seen


async def test_answers_that_take_no_slot_teach_nothing_about_slots(
    slot_replicas, start_balancer, client
):
    a = await slot_replicas("a", 1)
    lb = await start_balancer([a], policy="late_binding")
    held = asyncio.create_task(send(client, lb.url, {"hold": True}))
    await wait_until(lambda: a.in_service == 1, what="the held request in service")
    await asyncio.sleep(3 * OVERTAKE_MARGIN_S)
    # A GET (health, metadata) and a rejected POST pass the held request, answered by a
    # one-slot replica without a slot: neither shows it serving two requests at once.
    async with client.get(lb.url + "/v2/health/ready") as response:
        assert response.status == 200
    async with client.post(lb.url + "/predict", json={"bad": True}) as response:
        assert response.status == 400
    assert lb.state("a").parallel_seen == 1
    a.release()
    await held
    assert lb.state("a").parallel_seen == 1
