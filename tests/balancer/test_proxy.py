"""The proxy over real HTTP: fake replicas on loopback ports, an in-process balancer, a real client."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from typing import Any

import aiohttp
import pytest
from yarl import URL

from mltoolkit.balancer import ReplicaTarget
from mltoolkit.balancer.policies import Policy, candidates

from .fakes import Address, free_port, wait_until

pytestmark = pytest.mark.anyio


async def predict(client: aiohttp.ClientSession, url: str) -> tuple[int, str | None, Any]:
    async with client.post(url + "/predict", json={"instances": [[1, 2], [3, 4]]}) as response:
        return response.status, response.headers.get("X-Replica"), await response.json()


async def replicas_doc(client: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with client.get(url + "/-/replicas") as response:
        assert response.status == 200
        return await response.json()


# -- passing requests and answers through ------------------------------------------------------


async def test_method_path_query_body_and_headers_pass_through(replicas, start_balancer, client):
    replica = await replicas("r1")
    lb = await start_balancer([replica])
    body = bytes(range(256))  # not valid UTF-8: must arrive byte for byte
    async with client.put(
        URL(lb.url + "/echo/a%20b/c?x=1&y=a%2Fb&y=2", encoded=True),  # sent exactly as written
        data=body,
        headers={"X-Test": "yes", "Content-Type": "application/octet-stream"},
    ) as response:
        assert response.status == 201  # the replica's status, not a generic 200
        echoed = await response.json()
        returned = response.headers
    assert echoed["method"] == "PUT"
    assert echoed["path"] == "/echo/a b/c"
    assert echoed["query"] == "x=1&y=a%2Fb&y=2"  # still encoded as the client sent it
    assert base64.b64decode(echoed["body_b64"]) == body
    sent = dict((k.lower(), v) for k, v in echoed["headers"])
    assert sent["x-test"] == "yes"
    assert sent["content-type"] == "application/octet-stream"
    assert sent["host"] == f"127.0.0.1:{replica.port}"
    assert sent["x-forwarded-for"] == "127.0.0.1"
    # The replica's headers come back: X-Replica, custom ones, both Set-Cookie lines; not the
    # hop-by-hop ones (Keep-Alive, X-Hop which the replica named in Connection).
    assert returned["X-Replica"] == "r1"
    assert returned["X-Custom"] == "kept"
    assert returned.getall("Set-Cookie") == ["a=1", "b=2"]
    assert "X-Hop" not in returned and "Keep-Alive" not in returned

    async with client.get(lb.url + "/echo/plain") as response:
        echoed = await response.json()
    assert (echoed["method"], echoed["body_b64"]) == ("GET", "")

    # The replica's error statuses pass back unchanged, with its own body.
    async with client.get(lb.url + "/status/404") as response:
        assert response.status == 404
        assert (await response.json())["replica"] == "r1"


# -- policies over real replicas ---------------------------------------------------------------


async def _occupy(slow, lb_url: str, client) -> asyncio.Task:
    """A request held by ``slow`` (ties rotate, so it may take a second try); returns its task."""
    for _ in range(4):
        task = asyncio.create_task(predict(client, lb_url))
        await wait_until(lambda: task.done() or slow.in_progress == 1, what="a request on a replica")
        if not task.done():
            return task
        assert task.result()[1] != slow.name
    raise AssertionError("no request reached the slow replica")


async def test_least_request_sends_new_work_to_the_idle_replica(replicas, start_balancer, client):
    slow = await replicas("slow")
    fast = await replicas("fast")
    lb = await start_balancer([slow, fast], policy="least_request")
    slow.hold()  # slow answers nothing until released
    held = await _occupy(slow, lb.url, client)
    fast_before = fast.predicts

    # slow has 1 request in flight, fast 0 after each answer: every new request goes to fast.
    answers = [await predict(client, lb.url) for _ in range(10)]
    assert [replica for _, replica, _ in answers] == ["fast"] * 10
    assert fast.predicts - fast_before == 10
    assert slow.predicts == 1

    slow.release()
    assert (await held)[:2] == (200, "slow")


async def test_round_robin_keeps_feeding_the_busy_replica(replicas, start_balancer, client):
    slow = await replicas("slow")
    fast = await replicas("fast")
    lb = await start_balancer([slow, fast], policy="round_robin")
    slow.hold()
    held = await _occupy(slow, lb.url, client)
    fast_before = fast.predicts

    # Round robin ignores load: of 10 new requests, 5 queue behind the held one on slow.
    tasks = [asyncio.create_task(predict(client, lb.url)) for _ in range(10)]
    await wait_until(lambda: fast.predicts - fast_before == 5 and slow.in_progress == 6,
                     what="5 requests on each replica")  # fmt: skip
    assert slow.predicts == 6  # the held one plus 5: an equal share, however busy it is

    slow.release()
    answers = await asyncio.gather(held, *tasks)
    assert Counter(replica for _, replica, _ in answers[1:]) == {"slow": 5, "fast": 5}
    assert all(status == 200 for status, _, _ in answers)


async def _closed_loop(client, url: str, total: int, workers: int) -> Counter:
    """``workers`` clients, each sending its next request when the last is answered."""
    jobs = list(range(total))
    served: Counter = Counter()

    async def worker() -> None:
        while jobs:
            jobs.pop()
            status, replica, _ = await predict(client, url)
            assert status == 200
            served[replica] += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return served


async def test_fast_and_slow_replicas_under_both_policies(replicas, start_balancer, client):
    fast = await replicas("fast")
    slow = await replicas("slow", delay_s=0.5)
    rr = await start_balancer([fast, slow], policy="round_robin")
    lr = await start_balancer([fast, slow], policy="least_request")

    # Two clients, 12 requests. Round robin alternates strictly: slow serves half, 6, and both
    # clients spend most of their time waiting on it.
    by_rr = await _closed_loop(client, rr.url, total=12, workers=2)
    assert by_rr == {"fast": 6, "slow": 6}
    # Least request gives slow a request only when slow is idle and fast is not: about one per
    # 0.5 s while the fast one answers the rest, so slow serves a small share.
    by_lr = await _closed_loop(client, lr.url, total=12, workers=2)
    assert by_lr["fast"] + by_lr["slow"] == 12
    assert by_lr["slow"] <= 3, by_lr


async def test_weights_split_round_robin_traffic(replicas, start_balancer, client):
    big = await replicas("big")
    small = await replicas("small")
    lb = await start_balancer(
        [ReplicaTarget("big", big.url, weight=3), ReplicaTarget("small", small.url)],
        policy="round_robin",
    )
    answers = [await predict(client, lb.url) for _ in range(8)]
    # Weights 3:1 → 6 of 8 requests to big.
    assert Counter(replica for _, replica, _ in answers) == {"big": 6, "small": 2}


# -- health -------------------------------------------------------------------------------------


async def test_a_killed_replica_leaves_rotation_and_comes_back(replicas, start_balancer, client):
    a = await replicas("a")
    b = await replicas("b")
    lb = await start_balancer([a, b], policy="round_robin", health_interval_s=0.05)
    assert Counter([(await predict(client, lb.url))[1] for _ in range(4)]) == {"a": 2, "b": 2}

    await b.stop()
    await wait_until(lambda: not lb.state("b").healthy, what="b out of rotation")
    b_attempts = lb.state("b").served + lb.state("b").failed
    answers = [await predict(client, lb.url) for _ in range(10)]
    assert all(answer[:2] == (200, "a") for answer in answers)
    # No attempt on b after it was taken out (an attempt would have counted as failed and
    # needed a retry); the balancer's report agrees.
    assert lb.state("b").served + lb.state("b").failed == b_attempts
    doc = await replicas_doc(client, lb.url)
    assert [(r["name"], r["healthy"]) for r in doc["replicas"]] == [("a", True), ("b", False)]

    await b.start()  # the same port again
    await wait_until(lambda: lb.state("b").healthy, what="b back in rotation")
    b_before = b.predicts
    served = Counter([(await predict(client, lb.url))[1] for _ in range(4)])
    assert served == {"a": 2, "b": 2}
    assert b.predicts - b_before == 2


@pytest.mark.parametrize("sickness", ["hangs", "answers 503"])
async def test_a_replica_that_stops_answering_health_leaves_rotation(
    sickness, replicas, start_balancer, client
):
    a = await replicas("a")
    b = await replicas("b")
    lb = await start_balancer(
        [a, b], policy="round_robin", health_interval_s=0.05, health_timeout_s=0.2
    )
    if sickness == "hangs":
        b.health_hangs = True
    else:
        b.health_status = 503
    await wait_until(lambda: not lb.state("b").healthy, what="b out of rotation")
    b_before = b.predicts
    assert {(await predict(client, lb.url))[1] for _ in range(6)} == {"a"}
    assert b.predicts == b_before

    b.health_hangs, b.health_status = False, 200
    await wait_until(lambda: lb.state("b").healthy, what="b back in rotation")
    assert {(await predict(client, lb.url))[1] for _ in range(4)} == {"a", "b"}


async def test_a_replica_slow_to_probe_but_answering_requests_stays_in(
    replicas, start_balancer, client
):
    a = await replicas("a")
    b = await replicas("b")
    lb = await start_balancer(
        [a, b], policy="round_robin", health_interval_s=0.05, health_timeout_s=0.2
    )
    b.health_hangs = True  # every probe of b from now on times out...
    probes_before = b.health_probes
    b_before = b.predicts
    # ...but b keeps answering its share of requests, so it stays in rotation.
    while b.health_probes < probes_before + 4:
        assert (await predict(client, lb.url))[0] == 200
        assert lb.state("b").healthy
    assert b.predicts > b_before
    # Without requests, two more timeouts take it out.
    await wait_until(lambda: not lb.state("b").healthy, what="b out of rotation")


# -- failures: retry, 502, 503, 504 ------------------------------------------------------------


@pytest.mark.parametrize("failure", ["disconnect", "refused"])
async def test_a_connection_failure_is_retried_on_another_replica(
    failure, replicas, closing_server, start_balancer, client
):
    good = await replicas("good")
    if failure == "disconnect":
        bad: Any = closing_server  # accepts, then hangs up without answering
    else:
        bad = await replicas("bad")  # healthy at start, then gone: connection refused
    # Probes far apart, so only the proxied request can notice the failure.
    lb = await start_balancer([bad, good], policy="round_robin", health_interval_s=60)
    assert lb.state(bad.name).healthy
    if failure == "refused":
        await bad.stop()
    connections_before = getattr(bad, "connections", 0)

    status, replica, answer = await predict(client, lb.url)
    # Round robin picks bad first; the client never sees that failure, only good's answer.
    assert (status, replica) == (200, "good")
    assert answer["predictions"] == [3, 7]
    if failure == "disconnect":
        assert closing_server.connections > connections_before  # the first attempt went there
    bad_state, good_state = lb.state(bad.name), lb.state("good")
    assert (bad_state.failed, bad_state.served, bad_state.healthy) == (1, 0, False)
    assert (good_state.served, good_state.failed) == (1, 0)


async def test_without_retries_a_connection_failure_is_a_502(
    replicas, closing_server, start_balancer, client
):
    good = await replicas("good")
    lb = await start_balancer(
        [closing_server, good], policy="round_robin", health_interval_s=60, retries=0
    )
    async with client.post(lb.url + "/predict", json={"instances": [[1]]}) as response:
        assert response.status == 502
        error = (await response.json())["error"]
    assert "closing" in error and "retries allowed: 0" in error
    assert good.predicts == 0


async def test_http_error_statuses_are_not_retried(replicas, start_balancer, client):
    a = await replicas("a")
    b = await replicas("b")
    lb = await start_balancer([a, b], policy="round_robin")
    async with client.get(lb.url + "/status/500") as response:
        assert response.status == 500
        assert (await response.json())["replica"] == "a"
    # Only a saw it: a 500 is the replica's answer, passed back, not a reason to try b.
    assert (a.received, b.received) == (["/status/500"], [])
    assert (lb.state("a").failed, lb.state("a").healthy) == (1, True)


async def test_timeout_is_a_504_and_not_retried(replicas, start_balancer, client):
    slow = await replicas("slow")
    other = await replicas("other")
    lb = await start_balancer([slow, other], policy="round_robin", request_timeout_s=0.5)
    slow.hold()  # never answers within the timeout
    async with client.post(lb.url + "/predict", json={"instances": [[1]]}) as response:
        assert response.status == 504
        assert response.content_type == "application/json"
        error = (await response.json())["error"]
    assert "'slow' did not answer" in error and "0.5 s" in error
    assert other.predicts == 0
    # A slow answer is not a dead replica: it stays in rotation (its health probes still pass).
    assert (lb.state("slow").failed, lb.state("slow").healthy, lb.state("slow").in_flight) == (1, True, 0)
    # And the balancer is still serving.
    assert (await predict(client, lb.url))[:2] == (200, "other")


async def test_no_healthy_replica_is_a_503(start_balancer, client):
    nobody = [Address("a", f"http://127.0.0.1:{free_port()}"),
              Address("b", f"http://127.0.0.1:{free_port()}")]  # fmt: skip
    lb = await start_balancer(nobody)
    async with client.post(lb.url + "/predict", json={"instances": [[1]]}) as response:
        assert response.status == 503
        error = (await response.json())["error"]
    assert error.startswith("no healthy replica") and "a, b" in error
    async with client.get(lb.url + "/-/health") as response:
        assert response.status == 200  # the balancer itself is up
        assert (await response.json())["healthy_replicas"] == 0


# -- counters ------------------------------------------------------------------------------------


async def test_counters_add_up(replicas, start_balancer, client):
    fakes = [await replicas("a"), await replicas("b", delay_s=0.05), await replicas("c")]
    lb = await start_balancer(fakes, policy="least_request")
    answers = await asyncio.gather(*(predict(client, lb.url) for _ in range(30)))
    for path in ["/status/500"] * 3 + ["/status/404"] * 2:
        async with client.get(lb.url + path) as response:
            await response.read()

    doc = await replicas_doc(client, lb.url)
    rows = {r["name"]: r for r in doc["replicas"]}
    assert doc["policy"] == "least_request"
    # Each attempt reached exactly one fake replica and was counted once by the balancer:
    # served (answers below 500) + failed (5xx) per replica equals what that replica received.
    for fake in fakes:
        assert rows[fake.name]["served"] + rows[fake.name]["failed"] == len(fake.received)
        assert rows[fake.name]["in_flight"] == 0
    # 30 predictions + 2 404s served, 3 500s failed, and the X-Replica headers agree.
    assert sum(r["served"] for r in rows.values()) == 32
    assert sum(r["failed"] for r in rows.values()) == 3
    by_header = Counter(replica for _, replica, _ in answers)
    for fake in fakes:
        assert by_header[fake.name] == fake.predicts
    # Each answer's latency and the replica's X-In-Flight report were recorded.
    assert all(s.last_latency_s is not None and s.last_latency_s > 0 for s in lb.balancer.states)
    assert all(s.reported_in_flight is not None for s in lb.balancer.states)


# -- a policy that holds requests back ----------------------------------------------------------


@pytest.fixture
def holding_policies():
    """Two late-binding policies for these tests, removed from the registry afterwards.

    ``test_one_at_a_time`` holds a request until some replica is idle; ``test_never`` holds
    every request (a replica that never frees up, as far as the proxy can tell).
    """

    class OneAtATime(Policy):
        name = "test_one_at_a_time"

        def choose(self, replicas, exclude=frozenset()):
            idle = [r for r in candidates(replicas, exclude) if r.in_flight == 0]
            return idle[0] if idle else None

    class Never(Policy):
        name = "test_never"

        def choose(self, replicas, exclude=frozenset()):
            return None

    yield
    del Policy.registry[OneAtATime.name], Policy.registry[Never.name]


async def test_a_policy_may_hold_a_request_until_a_replica_frees_up(
    holding_policies, replicas, start_balancer, client
):
    a = await replicas("a")
    lb = await start_balancer([a], policy="test_one_at_a_time")
    a.hold()
    first = asyncio.create_task(predict(client, lb.url))
    await wait_until(lambda: a.in_progress == 1, what="the first request on a")
    second = asyncio.create_task(predict(client, lb.url))
    await asyncio.sleep(0.2)  # let the second request reach the balancer (no result depends on it)
    a.release()
    # The second request waited in the balancer instead of getting a 503, and a never had two
    # requests at once.
    assert [(await first)[0], (await second)[0]] == [200, 200]
    assert a.max_in_progress == 1 and a.predicts == 2


async def test_a_held_request_times_out_with_a_504(holding_policies, replicas, start_balancer, client):
    a = await replicas("a")
    lb = await start_balancer([a], policy="test_never", request_timeout_s=0.3)
    async with client.post(lb.url + "/predict", json={"instances": [[1]]}) as response:
        assert response.status == 504
        assert "no replica became free" in (await response.json())["error"]
    assert a.predicts == 0


# -- replicas joining and leaving at run time -----------------------------------------------------


async def test_a_replica_added_at_run_time_gets_traffic(replicas, start_balancer, client):
    a = await replicas("a")
    b = await replicas("b")
    lb = await start_balancer([a], policy="round_robin")
    assert {(await predict(client, lb.url))[1] for _ in range(4)} == {"a"}
    await lb.balancer.add_replica(ReplicaTarget("b", b.url, node="node-1"))
    assert Counter([(await predict(client, lb.url))[1] for _ in range(4)]) == {"a": 2, "b": 2}
    doc = await replicas_doc(client, lb.url)
    assert [(r["name"], r["node"], r["healthy"]) for r in doc["replicas"]] == [
        ("a", "", True), ("b", "node-1", True),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="'b' is already in use"):
        await lb.balancer.add_replica(ReplicaTarget("b", b.url))


async def test_a_draining_replica_finishes_its_requests_and_gets_no_new_ones(
    replicas, start_balancer, client
):
    a = await replicas("a")
    b = await replicas("b")
    lb = await start_balancer([a, b], policy="round_robin")
    b.hold()
    held = await _occupy(b, lb.url, client)
    drained = asyncio.create_task(lb.balancer.drain_replica("b"))
    await wait_until(lambda: lb.balancer.report()["replicas"][1]["draining"], what="b draining")
    # While b drains: new requests all go to a, and b's request in flight is not cut off.
    assert {(await predict(client, lb.url))[1] for _ in range(6)} == {"a"}
    assert b.predicts == 1
    await asyncio.sleep(0.2)  # the drain must still be waiting for b's request
    assert not drained.done()
    b.release()
    assert (await held)[:2] == (200, "b")
    await asyncio.wait_for(drained, 15)
    doc = await replicas_doc(client, lb.url)
    assert [r["name"] for r in doc["replicas"]] == ["a"]
    with pytest.raises(ValueError, match="no replica named 'b'"):
        await lb.balancer.drain_replica("b")


# -- hedging a request stuck on a replica ---------------------------------------------------------


async def test_a_request_stuck_on_a_replica_is_hedged_to_another(replicas, start_balancer, client):
    a = await replicas("a")
    b = await replicas("b")
    lb = await start_balancer([a, b], policy="round_robin", hedge=True, hedge_min_s=0.2)
    for _ in range(4):  # a, b, a, b: both have latency averages now
        assert (await predict(client, lb.url))[0] == 200
    a.hold()  # a stops answering, as a stopped (SIGSTOP) process would
    # a's turn: the request waits there, then a copy goes to b, whose answer comes back.
    assert (await predict(client, lb.url))[:2] == (200, "b")
    assert a.predicts == 3 and b.predicts == 3
    rows = {r["name"]: r for r in (await replicas_doc(client, lb.url))["replicas"]}
    assert (rows["a"]["hedged"], rows["b"]["hedged"]) == (0, 1)
    # the stuck attempt is not cancelled: it still holds a slot on a, so the policy sees a as
    # busy (a cancelled one made a hung replica look idle and draw more requests)
    assert lb.state("a").in_flight == 1
    a.release()
    await wait_until(lambda: lb.state("a").in_flight == 0, what="the stuck attempt answered")
    assert lb.state("a").failed == 0 and a.predicts == 3  # its late answer was dropped, not resent
    # Answers that come in time are never copied.
    for _ in range(4):
        assert (await predict(client, lb.url))[0] == 200
    rows = {r["name"]: r for r in (await replicas_doc(client, lb.url))["replicas"]}
    assert rows["b"]["hedged"] == 1 and rows["a"]["hedged"] == 0
    async with client.get(lb.url + "/-/metrics") as response:
        assert 'mltoolkit_balancer_hedged_total{replica="b",node=""} 1' in await response.text()


async def test_without_hedging_a_stuck_request_waits_for_its_replica(replicas, start_balancer, client):
    a = await replicas("a")
    b = await replicas("b")
    lb = await start_balancer([a, b], policy="round_robin", hedge_min_s=0.05)
    for _ in range(2):
        assert (await predict(client, lb.url))[0] == 200
    a.hold()
    stuck = asyncio.create_task(predict(client, lb.url))
    await wait_until(lambda: a.in_progress == 1, what="the request on a")
    await asyncio.sleep(0.3)  # well past what a hedge would have waited
    assert b.predicts == 1 and not stuck.done()
    a.release()
    assert (await stuck)[:2] == (200, "a")
