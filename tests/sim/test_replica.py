"""A simulated replica's behaviour over real HTTP: slots, speed, slowdown, death, bad requests."""

import asyncio

import aiohttp
import pytest

from mltoolkit.sim.fleet_spec import ReplicaSpec
from mltoolkit.sim.replica import BadRequest, SlotQueue, parse_cost, service_time_s

from .conftest import post_predict, running_fleet, wait_until


# -- pure parts ------------------------------------------------------------------------------------

def test_service_time_is_cost_over_speed_times_the_slowdown():
    assert service_time_s(0.3, 0.5, slowed=False, slow_factor=10) == pytest.approx(0.6)
    assert service_time_s(0.3, 0.5, slowed=True, slow_factor=10) == pytest.approx(6.0)


def test_cost_comes_from_the_header_then_the_body():
    assert parse_cost("0.25", {"cost": 9}) == 0.25
    assert parse_cost(None, {"cost": 0.5}) == 0.5
    assert parse_cost(None, {"instances": []}) is None
    for header, body, named in [("abc", {}, "X-Cost"), (None, {"cost": -1}, "'cost'"),
                                (None, {"cost": "1"}, "'cost'"), (None, {"cost": True}, "'cost'")]:
        with pytest.raises(BadRequest, match=named):
            parse_cost(header, body)


def test_slot_queue_is_first_come_first_served_and_survives_cancellation(run):
    async def scenario():
        queue = SlotQueue(1)
        order = []
        await queue.acquire()  # the only slot is taken

        async def wait(tag):
            await queue.acquire()
            order.append(tag)

        first, second, third = (asyncio.ensure_future(wait(t)) for t in "abc")
        await asyncio.sleep(0)
        assert queue.busy == 1 and queue.waiting == 3
        second.cancel()  # a client that gave up leaves the line without taking a slot
        await asyncio.sleep(0)
        queue.release()  # -> a
        await first
        queue.release()  # -> c (b is gone)
        await third
        assert order == ["a", "c"]
        queue.release()
        assert queue.busy == 0 and queue.waiting == 0

    run(scenario())


# -- over HTTP -------------------------------------------------------------------------------------

def test_the_request_beyond_k_slots_waits_for_one(run):
    async def scenario():
        async with running_fleet(ReplicaSpec("a", slots=2)) as fleet, aiohttp.ClientSession() as s:
            url, replica = fleet.urls["a"], fleet.replicas["a"]
            calls = [asyncio.ensure_future(post_predict(s, url, {"cost": 0.3})) for _ in range(3)]
            # State, not time: all three have arrived; two hold the slots, one waits in line.
            await wait_until(lambda: replica.in_flight == 3)
            assert (replica.queue.busy, replica.queue.waiting) == (2, 1)
            async with s.get(url + "/v2/health/ready") as health:
                assert health.headers["X-In-Flight"] == "3"
            answers = await asyncio.gather(*calls)
            queued = sorted(body["queued_s"] for _, _, body in answers)
            # The first two started at once; the third waited for a slot, i.e. at least one
            # full service time (asyncio.sleep never returns early).
            assert queued[1] < 0.3 <= queued[2] + 1e-3
            assert all(status == 200 and h["X-Replica"] == "a" for status, h, _ in answers)
            assert replica.counters.served == 3
            assert replica.counters.busy_s == pytest.approx(0.9)

    run(scenario())


def test_speed_factor_scales_service_time(run):
    async def scenario():
        async with running_fleet(ReplicaSpec("slow", speed=0.25)) as fleet, aiohttp.ClientSession() as s:
            loop = asyncio.get_running_loop()
            sent = loop.time()
            status, headers, body = await post_predict(s, fleet.urls["slow"], {"cost": 0.05, "instances": [[1], [2]]})
            elapsed = loop.time() - sent
            assert status == 200 and body["predictions"] == [0, 0]
            assert body["service_s"] == pytest.approx(0.2)  # 0.05 / 0.25
            assert elapsed >= 0.2 - 1e-3
            assert headers["X-In-Flight"] == "0"  # nothing else was there when it left

    run(scenario())


def test_cost_in_the_header_wins_and_missing_cost_is_drawn(run):
    async def scenario():
        async with running_fleet(ReplicaSpec("a")) as fleet, aiohttp.ClientSession() as s:
            _, _, body = await post_predict(s, fleet.urls["a"], {"cost": 5}, headers={"X-Cost": "0.02"})
            assert body["cost"] == 0.02
            _, _, body = await post_predict(s, fleet.urls["a"], {})
            assert body["cost"] == pytest.approx(0.01)  # the fleet's constant distribution

    run(scenario())


def test_scheduled_slowdown_multiplies_service_time(run):
    async def scenario():
        async with running_fleet(
            ReplicaSpec("now", slow_at_s=0.0, slow_factor=10.0),
            ReplicaSpec("later", slow_at_s=3600.0, slow_factor=10.0),
        ) as fleet, aiohttp.ClientSession() as s:
            await wait_until(lambda: fleet.replicas["now"].slowed)
            _, _, body = await post_predict(s, fleet.urls["now"], {"cost": 0.02})
            assert body["service_s"] == pytest.approx(0.2)
            _, _, body = await post_predict(s, fleet.urls["later"], {"cost": 0.02})
            assert body["service_s"] == pytest.approx(0.02)

    run(scenario())


def test_death_by_close_drops_in_flight_requests_and_refuses_new_ones(run):
    async def scenario():
        async with running_fleet(ReplicaSpec("victim"), ReplicaSpec("other")) as fleet, \
                aiohttp.ClientSession() as s:
            url, victim = fleet.urls["victim"], fleet.replicas["victim"]
            long_call = asyncio.ensure_future(post_predict(s, url, {"cost": 30}))
            await wait_until(lambda: victim.in_flight == 1)
            await fleet.kill("victim", "close")
            with pytest.raises(aiohttp.ClientError):
                await long_call  # dropped mid-request, not answered after 30 s
            with pytest.raises(aiohttp.ClientConnectorError):
                await post_predict(s, url, {"cost": 0.01})  # connection refused
            # it received the request (counted, so a benchmark sees where work went) but never answered
            assert (victim.counters.arrived, victim.counters.served) == (1, 0)
            status, _, _ = await post_predict(s, fleet.urls["other"], {"cost": 0.01})
            assert status == 200  # the rest of the fleet lives on

    run(scenario())


def test_scheduled_death_by_hang_never_answers(run):
    async def scenario():
        async with running_fleet(ReplicaSpec("zombie", die_at_s=0.0, death_mode="hang")) as fleet, \
                aiohttp.ClientSession() as s:
            await wait_until(lambda: fleet.replicas["zombie"].dead == "hang")
            timeout = aiohttp.ClientTimeout(total=0.5)
            with pytest.raises(asyncio.TimeoutError):
                await s.get(fleet.urls["zombie"] + "/v2/health/ready", timeout=timeout)
            with pytest.raises(asyncio.TimeoutError):
                await post_predict(s, fleet.urls["zombie"], {"cost": 0.0}, timeout=timeout)
        # leaving the block stopped the fleet despite the hung handlers (the safety timeout holds)

    run(scenario())


def test_bad_requests_get_400_naming_the_problem_and_the_replica_stays_up(run):
    async def scenario():
        async with running_fleet(ReplicaSpec("a")) as fleet, aiohttp.ClientSession() as s:
            url = fleet.urls["a"]
            async with s.post(url + "/predict", data=b"{not json") as r:
                assert r.status == 400 and r.headers["X-Replica"] == "a"
            for body, headers, named in [
                ({"cost": -1}, {}, "'cost'"),
                ({"cost": 1e9}, {}, "'cost'"),
                ({}, {"X-Cost": "soon"}, "X-Cost"),
                ({"instances": "rows"}, {}, "instances"),
            ]:
                status, _, answer = await post_predict(s, url, body, headers=headers)
                assert status == 400 and named in answer["error"], (body, answer)
            async with s.post(url + "/predict", json=[1, 2]) as r:
                assert r.status == 400
            async with s.get(url + "/predict") as r:
                assert r.status == 405
            status, _, _ = await post_predict(s, url, {"cost": 0.0})
            assert status == 200
            counters = fleet.replicas["a"].counters
            assert (counters.rejected, counters.arrived, counters.served) == (6, 1, 1)

    run(scenario())
