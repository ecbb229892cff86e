"""The ``ewma`` policy: latency average x (requests there + 1) / weight, lowest wins.

Unit tests build replica states by hand; one test runs it through the real proxy.
"""

from __future__ import annotations

import pytest

from mltoolkit.balancer.policies import Ewma, LeastRequest, ReplicaState

pytestmark = pytest.mark.anyio


def states(*names: str, **weights: float) -> list[ReplicaState]:
    return [ReplicaState(name=n, url=f"http://127.0.0.1:{9000 + i}", weight=weights.get(n, 1.0))
            for i, n in enumerate(names)]  # fmt: skip


def with_latency(replica: ReplicaState, latency_s: float) -> ReplicaState:
    replica.record_answer(latency_s, None)
    replica.last_answer_at = None  # constructed states are timeless: no staleness decay
    return replica


def test_prefers_the_replica_expected_to_answer_soonest():
    fast, slow = states("fast", "slow")
    with_latency(fast, 0.1)
    with_latency(slow, 0.3)
    policy = Ewma()
    # Both idle: fast costs 0.1 x 1, slow 0.3 x 1: fast.
    assert policy.choose([fast, slow]) is fast
    # fast with 3 in flight: 0.1 x 4 = 0.4 > slow's 0.3 x 1. A request there would wait behind
    # three others; the idle, 3x slower replica answers sooner.
    fast.in_flight = 3
    assert policy.choose([fast, slow]) is slow
    # fast with 1 in flight: 0.1 x 2 = 0.2 < 0.3: stay on fast, where least_request would move
    # to the idle but 3x slower replica.
    fast.in_flight = 1
    assert policy.choose([fast, slow]) is fast
    assert LeastRequest().choose([fast, slow]) is slow


def test_ties_go_in_turn():
    a, b = states("a", "b")
    with_latency(a, 0.25)
    with_latency(b, 0.75)
    # a: 0.25 x (2 + 1) = 0.75 = b: 0.75 x 1. Equal cost: take turns rather than always the first.
    a.in_flight = 2
    policy = Ewma()
    assert [policy.choose([a, b]).name for _ in range(4)] == ["a", "b", "a", "b"]


def test_weight_divides_the_cost():
    big, small = states("big", "small", big=4.0)
    with_latency(big, 0.2)
    with_latency(small, 0.2)
    # big: 0.2 x (3 + 1) / 4 = 0.2; small: 0.2 x (1 + 1) / 1 = 0.4: big, though it has more.
    big.in_flight, small.in_flight = 3, 1
    assert Ewma().choose([big, small]) is big


def test_load_from_other_clients_counts():
    a, b = states("a", "b")
    with_latency(a, 0.1)
    with_latency(b, 0.1)
    # Same speed, both idle as far as this balancer knows; but b's last answer reported 5 requests
    # this balancer did not send: b costs 0.1 x (0 + 5 + 1) = 0.6 against a's 0.1, every time
    # (ignoring that load, they would tie and take turns).
    b.record_answer(0.1, 5)
    assert b.foreign_in_flight == 5
    policy = Ewma()
    assert [policy.choose([a, b]).name for _ in range(3)] == ["a", "a", "a"]


def test_a_replica_not_heard_from_is_assumed_as_fast_as_the_fastest():
    known, new = states("known", "new")
    with_latency(known, 0.1)
    known.in_flight = 1
    # new has no answers yet: counted at 0.1 (the best known), so 0.1 x 1 < known's 0.1 x 2: it is
    # tried, and learns its own latency from the answer.
    assert Ewma().choose([known, new]) is new


def test_with_no_answers_yet_it_is_least_request():
    replicas = states("a", "b", "c")
    replicas[0].in_flight, replicas[1].in_flight, replicas[2].in_flight = 2, 0, 1
    # Every latency unknown counts as 1.0: cost = in flight + 1, so the fewest in flight (b).
    assert Ewma().choose(replicas).name == "b"


def test_skips_unhealthy_and_excluded():
    fast, slow = states("fast", "slow")
    with_latency(fast, 0.1)
    with_latency(slow, 0.5)
    fast.healthy = False
    assert Ewma().choose([fast, slow]) is slow
    fast.healthy = True
    assert Ewma().choose([fast, slow], frozenset({"fast"})) is slow
    assert Ewma().choose([fast, slow], frozenset({"fast", "slow"})) is None


# -- through the proxy --------------------------------------------------------------------------


async def test_through_the_proxy_one_at_a_time_requests_go_to_the_faster_replica(
    replicas, start_balancer, client
):
    fast = await replicas("fast", delay_s=0.01)
    slow = await replicas("slow", delay_s=0.3)
    lb = await start_balancer([fast, slow], policy="ewma")
    answered_by = []
    for _ in range(20):  # one at a time: in flight is always 0, only the latencies differ
        async with client.post(lb.url + "/predict", json={"instances": [[1]]}) as response:
            assert response.status == 200
            answered_by.append(response.headers["X-Replica"])
    # Each replica is tried while its latency is unknown; after that the 30x slower one costs
    # more than the fast one every time (least_request would alternate, 10 each). A loaded
    # machine may delay some fast answers, so a little slack: the slow one gets at most 3.
    assert answered_by.count("slow") <= 3
    assert lb.state("fast").latency_ewma_s < lb.state("slow").latency_ewma_s


async def test_through_the_proxy_fast_failures_do_not_count_as_fast_answers(
    replicas, start_balancer, client
):
    a = await replicas("a")
    lb = await start_balancer([a], policy="ewma")
    for _ in range(3):
        async with client.get(lb.url + "/status/500") as response:
            assert response.status == 500
    # Three answers, all 5xx in about a millisecond: none of them is the replica's speed.
    assert lb.state("a").failed == 3 and lb.state("a").last_latency_s is not None
    assert lb.state("a").latency_ewma_s is None
    async with client.get(lb.url + "/status/200") as response:
        assert response.status == 200
    assert lb.state("a").latency_ewma_s is not None  # a successful answer is


def test_a_stale_average_decays_so_a_recovered_replica_is_tried_again():
    # a answered recently in 10 ms; b was slow once (100 ms) and has not answered since, so
    # without decay ewma would never choose it again and never learn it recovered.
    from mltoolkit.balancer.policies import STALE_HALF_LIFE_S, latency_estimates

    a, b = states("a", "b")
    now = 1000.0
    a.latency_ewma_s, a.last_answer_at, a.in_flight = 0.010, now, 1
    b.latency_ewma_s, b.last_answer_at = 0.100, now
    # fresh: a costs 10 ms x (1 + 1) = 20 ms, b 100 ms x 1 -> a
    assert latency_estimates([a, b], now=now)["b"] == pytest.approx(0.100)
    # after 4 half-lives of silence b's gap to the best (90 ms) is 90/16 = 5.6 ms: b estimates
    # 15.6 ms x 1, below a's 20 ms -> b gets the next request
    later = now + 4 * STALE_HALF_LIFE_S
    assert latency_estimates([a, b], now=later)["b"] == pytest.approx(0.010 + 0.090 / 16)
    a.last_answer_at = later
    b.last_answer_at = now
    import mltoolkit.balancer.policies as policies

    original = policies.time.monotonic
    policies.time.monotonic = lambda: later
    try:
        assert Ewma().choose([a, b]).name == "b"
        b.last_answer_at = later  # the same average, but fresh: a again
        assert Ewma().choose([a, b]).name == "a"
    finally:
        policies.time.monotonic = original


def test_near_equal_replicas_share_light_load_but_a_slower_one_does_not():
    # a 10 ms, b 11 ms (noise between equal replicas: within EWMA_TIE_TOLERANCE = 25 %), c 30 ms
    # (3x slower). All idle: a and b tie and take turns; c is never chosen.
    a, b, c = states("a", "b", "c")
    with_latency(a, 0.010)
    with_latency(b, 0.011)
    with_latency(c, 0.030)
    policy = Ewma()
    assert [policy.choose([a, b, c]).name for _ in range(4)] == ["a", "b", "a", "b"]
