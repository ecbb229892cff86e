"""The ``ewma`` policy: latency average x (requests there + 1) / weight, lowest wins.

Unit tests build replica states by hand; one test runs it through the real proxy.
"""

from __future__ import annotations

import heapq
import statistics

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


def test_with_other_balancers_each_request_of_ours_counts_for_theirs_too():
    # Three replicas of the same speed. The replicas report holding 4 requests for each one of
    # ours (4 balancers sharing them): load_sharing = 4. a has one of our requests, b and c two.
    from mltoolkit.balancer.policies import load_sharing

    a, b, c = states("a", "b", "c")
    for replica in (a, b, c):
        with_latency(replica, 0.1)
        replica.reported_load_ewma, replica.own_load_ewma = 4.0, 1.0
    assert load_sharing([a, b, c]) == 4.0
    a.in_flight, b.in_flight, c.in_flight = 1, 2, 2
    # a: 0.1 x (1 x 4 + 1) = 0.5; b, c: 0.1 x (2 x 4 + 1) = 0.9: a.
    assert Ewma().choose([a, b, c]) is a
    # A 2x slower idle replica d: 0.2 x 1 = 0.2 beats a. Without the other balancers' share
    # (load_sharing 1: a costs 0.1 x 2 = 0.2, a tie) a would get its turn: a slot that, with
    # four balancers there, probably holds a queue.
    d = with_latency(ReplicaState(name="d", url="http://127.0.0.1:9100"), 0.2)
    d.reported_load_ewma, d.own_load_ewma = 4.0, 1.0
    policy = Ewma()
    assert [policy.choose([a, b, c, d]).name for _ in range(2)] == ["d", "d"]
    for replica in (a, b, c, d):
        replica.reported_load_ewma = 1.0
    policy = Ewma()
    assert [policy.choose([a, b, c, d]).name for _ in range(2)] == ["a", "d"]


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
    from mltoolkit.balancer.policies import STALE_HALF_LIFE_S, STALE_LATENCIES, latency_estimates

    a, b = states("a", "b")
    now = 1000.0
    a.latency_ewma_s, a.last_answer_at, a.in_flight = 0.010, now, 1
    b.latency_ewma_s, b.last_answer_at = 0.100, now
    # fresh: a costs 10 ms x (1 + 1) = 20 ms, b 100 ms x 1 -> a
    assert latency_estimates([a, b], now=now)["b"] == pytest.approx(0.100)
    # The half-life: STALE_LATENCIES (8) x the best average (10 ms) = 80 ms, at least
    # STALE_HALF_LIFE_S. After 4 half-lives of silence b's gap to the best (90 ms) is
    # 90/16 = 5.6 ms: b estimates 15.6 ms x 1, below a's 20 ms -> b gets the next request
    later = now + 4 * max(STALE_HALF_LIFE_S, STALE_LATENCIES * 0.010)
    assert latency_estimates([a, b], now=later)["b"] == pytest.approx(0.010 + 0.090 / 16)
    a.last_answer_at = later
    b.last_answer_at = now
    policy = Ewma()
    policy.clock = lambda: later  # the policy reads staleness on its own clock
    assert policy.choose([a, b]).name == "b"
    b.last_answer_at = later  # the same average, but fresh: a again
    assert policy.choose([a, b]).name == "a"
    # When the best answers in 100 ms, silence means less: b (300 ms) keeps 1/2 of its gap to
    # a after STALE_LATENCIES x 100 ms.
    a.latency_ewma_s, b.latency_ewma_s = 0.100, 0.300
    b.last_answer_at = now
    assert latency_estimates([a, b], now=now + STALE_LATENCIES * 0.100)["b"] == pytest.approx(0.200)


def test_near_equal_replicas_share_light_load_but_a_slower_one_does_not():
    # a 10 ms, b 11 ms (noise between equal replicas: within EWMA_TIE_TOLERANCE = 25 %), c 30 ms
    # (3x slower). All idle: a and b tie and take turns; c is never chosen.
    a, b, c = states("a", "b", "c")
    with_latency(a, 0.010)
    with_latency(b, 0.011)
    with_latency(c, 0.030)
    policy = Ewma()
    assert [policy.choose([a, b, c]).name for _ in range(4)] == ["a", "b", "a", "b"]


# -- light load, on a simulated clock ----------------------------------------------------------


def drive(policy, replicas, rate_rps, duration_s, latency_of):
    """Send requests every 1/rate_rps seconds of simulated time through ``policy`` to
    ``replicas``, as the proxy would (begin_attempt, end_attempt, record_answer on answers);
    ``latency_of(replica, sent_at)`` is each answer's latency. Returns requests per replica."""
    now = [0.0]
    policy.clock = lambda: now[0]
    answers = []  # heap of (answered at, seq, replica, ticket, sent at)
    counts = {r.name: 0 for r in replicas}
    for i in range(round(rate_rps * duration_s)):
        sent = i / rate_rps
        while answers and answers[0][0] <= sent:
            at, _, replica, ticket, sent_at = heapq.heappop(answers)
            now[0] = at
            replica.end_attempt(ticket, worked=True)
            replica.record_answer(at - sent_at, 0, now=at)
        now[0] = sent
        replica = policy.choose(replicas)
        ticket = replica.begin_attempt(sent)
        heapq.heappush(answers, (sent + latency_of(replica, sent), i, replica, ticket, sent))
        counts[replica.name] += 1
    return counts


def cv(counts):
    values = list(counts.values())
    return statistics.pstdev(values) / statistics.mean(values)


def test_one_pause_does_not_keep_a_replica_out_of_light_load():
    # Three equal replicas answering in 50 ms, 10 requests/s (0.5 in flight on average): light
    # load. The answer to the request sent at 5 s takes 1 s (a pause: garbage collection, a
    # descheduled process). That answer raises its replica's average (50 -> 145 ms); while the
    # replica is silent its estimate decays back and it is tried again -- and the fresh answer,
    # after that silence, must replace the stale average rather than nudge it by 10 %. Before
    # (each retry moved it 10 %, then it sat out the next decay): 71/84/45 requests, CV 0.24.
    paused = []

    def latency_of(replica, sent):
        if 5.0 <= sent and not paused:
            paused.append(replica.name)
            return 1.0
        return 0.050

    counts = drive(Ewma(), states("a", "b", "c"), rate_rps=10, duration_s=20, latency_of=latency_of)
    assert paused and cv(counts) <= 0.1, counts


def test_replicas_woken_from_idle_share_light_load():
    # Equal replicas that answer in 1 ms while busy but in 6 ms when woken from idle (no request
    # in the last 50 ms): measured on a loaded 2-core machine, 1 ms against 3-8 ms. 100 requests/s.
    # Preferring the lowest average keeps the busy replica busy and the others idle: before,
    # 980/10/10, as the quickstart's 17/965/19. Below LATENCY_FLOOR_S latencies are noise.
    last_sent: dict[str, float] = {}

    def latency_of(replica, sent):
        woken = sent - last_sent.get(replica.name, -1.0) > 0.050
        last_sent[replica.name] = sent
        return 0.006 if woken else 0.001

    replicas = states("a", "b", "c")
    counts = drive(Ewma(), replicas, rate_rps=100, duration_s=10, latency_of=latency_of)
    assert cv(counts) <= 0.1, counts


def test_a_3x_slower_replica_still_gets_little_light_load():
    # Light load must not be shared with a replica 3x slower: 30 ms against 90 ms, 10 req/s.
    # It is tried again now and then (its stale estimate decays), never as often as the others.
    counts = drive(
        Ewma(), states("a", "b", "slow"), rate_rps=10, duration_s=30,
        latency_of=lambda replica, sent: 0.090 if replica.name == "slow" else 0.030,
    )
    assert counts["slow"] < 0.5 * min(counts["a"], counts["b"]), counts


def test_ties_go_to_the_replica_left_out_recently():
    # a and b tie when idle. While a has a request in flight (cost x2: not a tie), b takes the
    # next three; once a is free again the ties go to a until the recent shares are even again.
    a, b = states("a", "b")
    with_latency(a, 0.1)
    with_latency(b, 0.1)
    policy = Ewma()
    policy.clock = lambda: 0.0
    assert [policy.choose([a, b]).name for _ in range(2)] == ["a", "b"]
    a.in_flight = 1
    assert [policy.choose([a, b]).name for _ in range(3)] == ["b", "b", "b"]
    a.in_flight = 0
    # a catches up from 1 to b's 4; then an exact tie, to the first listed
    assert [policy.choose([a, b]).name for _ in range(5)] == ["a", "a", "a", "a", "b"]
