"""Policies are pure: each test builds replica states by hand and checks the choice."""

from __future__ import annotations

import pytest

from collections import Counter

from mltoolkit.balancer.policies import (
    EWMA_WEIGHT,
    OVERTAKE_MARGIN_S,
    STALE_LATENCIES,
    Ewma,
    LateBinding,
    LeastRequest,
    Policy,
    PowerOfTwo,
    RandomChoice,
    ReplicaState,
    RoundRobin,
    policy_names,
)


def states(*names: str, **weights: float) -> list[ReplicaState]:
    return [ReplicaState(name=n, url=f"http://127.0.0.1:{9000 + i}", weight=weights.get(n, 1.0))
            for i, n in enumerate(names)]  # fmt: skip


def picks(policy: Policy, replicas: list[ReplicaState], n: int, **kwargs: object) -> list[str]:
    out = []
    for _ in range(n):
        chosen = policy.choose(replicas, **kwargs)
        out.append(chosen.name if chosen else None)
    return out


def test_registry_names_and_make():
    assert policy_names() == sorted(Policy.registry)
    ours = {"round_robin", "least_request", "random", "power_of_two", "ewma", "late_binding"}
    assert ours <= set(policy_names())
    assert isinstance(Policy.make("round_robin"), RoundRobin)
    assert isinstance(Policy.make("least_request"), LeastRequest)
    assert isinstance(Policy.make("random"), RandomChoice)
    assert isinstance(Policy.make("power_of_two"), PowerOfTwo)
    assert isinstance(Policy.make("ewma"), Ewma)
    assert isinstance(Policy.make("late_binding"), LateBinding)
    # Each make() is a fresh policy: rotation state is not shared between balancers.
    assert Policy.make("round_robin") is not Policy.make("round_robin")


def test_make_unknown_policy_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown balancer policy 'fastest'.*least_request.*round_robin"):
        Policy.make("fastest")


# -- round robin ------------------------------------------------------------------------------


def test_round_robin_rotates_whatever_the_load():
    replicas = states("a", "b", "c")
    # b is swamped; round robin does not look at load, so b still gets every third request.
    replicas[1].in_flight = 50
    assert picks(RoundRobin(), replicas, 6) == ["a", "b", "c", "a", "b", "c"]


def test_round_robin_skips_unhealthy_and_excluded():
    replicas = states("a", "b", "c")
    replicas[1].healthy = False
    # b is out of rotation: the turn alternates between a and c.
    assert picks(RoundRobin(), replicas, 4) == ["a", "c", "a", "c"]
    # A retry excludes the replica that just failed (a): only c is left.
    assert picks(RoundRobin(), replicas, 2, exclude=frozenset({"a"})) == ["c", "c"]
    # Nothing healthy and not excluded: no choice at all.
    assert RoundRobin().choose(replicas, frozenset({"a", "c"})) is None
    assert RoundRobin().choose([]) is None


def test_round_robin_takes_a_recovered_replica_back():
    replicas = states("a", "b")
    policy = RoundRobin()
    replicas[1].healthy = False
    assert picks(policy, replicas, 2) == ["a", "a"]
    replicas[1].healthy = True
    # b's turns resume at once: over the next four picks each gets two.
    assert sorted(picks(policy, replicas, 4)) == ["a", "a", "b", "b"]


def test_weighted_round_robin_is_proportional_and_smooth():
    replicas = states("a", "b", a=3.0)
    # Credits (a, b) before each pick, +3/+1 per pick, the winner pays the total 4:
    #   (3, 1) → a, a=-1;  (2, 2) → a (first of a tie), a=-2;  (1, 3) → b, b=-1;  (4, 0) → a, a=0
    # so each cycle of four is a a b a: 3:1, and b is not starved behind three a's in a row.
    assert picks(RoundRobin(), replicas, 8) == ["a", "a", "b", "a"] * 2


# -- least request ----------------------------------------------------------------------------


def test_least_request_picks_the_fewest_in_flight():
    replicas = states("a", "b", "c")
    replicas[0].in_flight, replicas[1].in_flight, replicas[2].in_flight = 3, 1, 2
    # b has 1 in flight, fewer than a (3) and c (2): it gets the request, every time while so.
    assert picks(LeastRequest(), replicas, 3) == ["b", "b", "b"]


def test_least_request_divides_by_weight():
    replicas = states("big", "small", big=4.0)
    # big: 3 in flight / weight 4 = 0.75 per unit; small: 1 / 1 = 1.0. big has more requests but
    # is less loaded for its size, so it is chosen.
    replicas[0].in_flight, replicas[1].in_flight = 3, 1
    assert LeastRequest().choose(replicas).name == "big"
    # big: 5 / 4 = 1.25 > small 1.0: now small is less loaded.
    replicas[0].in_flight = 5
    assert LeastRequest().choose(replicas).name == "small"


def test_least_request_ties_go_in_turn():
    replicas = states("a", "b", "c")
    # All idle: the tie is broken by rotation, not always by the first replica.
    assert picks(LeastRequest(), replicas, 6) == ["a", "b", "c", "a", "b", "c"]


def test_least_request_skips_unhealthy_and_excluded_even_if_idle():
    replicas = states("a", "b", "c")
    replicas[0].in_flight, replicas[1].in_flight, replicas[2].in_flight = 0, 0, 7
    replicas[0].healthy = False
    # a is idle but out of rotation; b is idle: b.
    assert LeastRequest().choose(replicas).name == "b"
    # A retry after b failed: only c is left, however busy.
    assert LeastRequest().choose(replicas, frozenset({"b"})).name == "c"
    assert LeastRequest().choose(replicas, frozenset({"b", "c"})) is None


def test_record_answer_keeps_the_last_report():
    state = ReplicaState(name="a", url="http://127.0.0.1:9000")
    state.record_answer(0.25, 3)
    assert (state.last_latency_s, state.reported_in_flight) == (0.25, 3)
    # An answer without X-In-Flight updates the latency but keeps the last known count.
    state.record_answer(0.5, None)
    assert (state.last_latency_s, state.reported_in_flight) == (0.5, 3)


# -- random -----------------------------------------------------------------------------------


def test_random_ignores_load_and_follows_weights():
    replicas = states("a", "b", "c", a=2.0)
    replicas[0].in_flight = 40  # a is swamped; random does not look
    counts = Counter(picks(RandomChoice(seed=7), replicas, 4000))
    # Weights 2:1:1: a should get half the picks, b and c a quarter each, load or not. With 4000
    # draws the standard deviation of a share is under 0.01, so +-0.04 is a safe band.
    assert abs(counts["a"] / 4000 - 0.5) < 0.04
    assert abs(counts["b"] / 4000 - 0.25) < 0.04
    assert abs(counts["c"] / 4000 - 0.25) < 0.04


def test_random_is_reproducible_with_a_seed_and_skips_unavailable():
    replicas = states("a", "b", "c")
    assert picks(RandomChoice(seed=3), replicas, 20) == picks(RandomChoice(seed=3), replicas, 20)
    replicas[1].healthy = False
    # b is out of rotation and c excluded (a retry): only a remains, every time.
    assert set(picks(RandomChoice(seed=3), replicas, 20, exclude=frozenset({"c"}))) == {"a"}
    assert RandomChoice(seed=3).choose(replicas, frozenset({"a", "c"})) is None


# -- power of two choices ---------------------------------------------------------------------


def test_power_of_two_with_two_replicas_always_takes_the_less_loaded():
    replicas = states("a", "b")
    replicas[0].in_flight, replicas[1].in_flight = 3, 1
    # With two candidates both are drawn every time, so the comparison always sees b (1 < 3).
    assert set(picks(PowerOfTwo(seed=1), replicas, 50)) == {"b"}


def test_power_of_two_never_takes_the_most_loaded_and_favours_the_least():
    replicas = states("a", "b", "c")
    replicas[0].in_flight, replicas[1].in_flight, replicas[2].in_flight = 0, 1, 5
    counts = Counter(picks(PowerOfTwo(seed=2), replicas, 3000))
    # c (5 in flight) loses every comparison it is drawn into. a (idle) wins whenever it is one of
    # the two drawn: 2 of the 3 equally likely pairs, so about 2/3; b wins only the pair {b, c}.
    assert counts["c"] == 0
    assert abs(counts["a"] / 3000 - 2 / 3) < 0.04
    assert abs(counts["b"] / 3000 - 1 / 3) < 0.04


def test_power_of_two_compares_load_per_weight():
    replicas = states("big", "small", big=4.0)
    # big: 3 / 4 = 0.75 per unit of weight, small: 1 / 1 = 1.0; big is less loaded for its size.
    replicas[0].in_flight, replicas[1].in_flight = 3, 1
    assert set(picks(PowerOfTwo(seed=5), replicas, 20)) == {"big"}


def test_power_of_two_single_or_no_candidate():
    replicas = states("a", "b")
    replicas[0].in_flight = 9
    assert PowerOfTwo(seed=0).choose(replicas, frozenset({"b"})).name == "a"  # the only one left
    assert PowerOfTwo(seed=0).choose(replicas, frozenset({"a", "b"})) is None


# -- what replica states learn from attempts and answers ----------------------------------------


def test_latency_average_starts_as_the_mean_then_weighs_recent_answers():
    state = ReplicaState(name="a", url="http://127.0.0.1:9000")
    assert state.latency_ewma_s is None
    state.record_answer(0.3, None, now=0.0)
    state.record_answer(0.1, None, now=0.0)
    # The first answers are averaged plainly: (0.3 + 0.1) / 2, not 0.3 nudged by 10 %.
    assert state.latency_ewma_s == pytest.approx(0.2)
    for _ in range(200):
        state.record_answer(1.0, None, now=0.0)
    # Long after, only recent answers count: the average has moved all the way to 1.0 ...
    assert state.latency_ewma_s == pytest.approx(1.0, abs=1e-6)
    # ... and one outlier moves it by EWMA_WEIGHT of the difference, not to the outlier.
    state.record_answer(11.0, None, now=0.0)
    assert state.latency_ewma_s == pytest.approx(1.0 + EWMA_WEIGHT * 10.0)


def test_a_faster_answer_after_a_silence_replaces_the_stale_average():
    state = ReplicaState(name="a", url="http://127.0.0.1:9000")
    for _ in range(50):
        state.record_answer(0.05, None, now=10.0)
    # A slower answer after a silence weighs EWMA_WEIGHT as usual (the estimate never decayed
    # upwards): 0.05 + 0.1 x 1.0.
    state.record_answer(1.05, None, now=20.0)
    assert state.latency_ewma_s == pytest.approx(0.15)
    # A faster answer in 70 ms: half-life STALE_LATENCIES x 70 ms. Two of them of silence leave
    # a quarter of the old average's authority: the answer weighs 3/4 (not EWMA_WEIGHT):
    # 0.15 + 0.75 x (0.07 - 0.15) = 0.09.
    later = 20.0 + 2 * STALE_LATENCIES * 0.07
    state.record_answer(0.07, None, now=later)
    assert state.last_answer_at == later
    assert state.latency_ewma_s == pytest.approx(0.09)
    # Right after, back to EWMA_WEIGHT: 0.09 + 0.1 x (0.05 - 0.09) = 0.086.
    state.record_answer(0.05, None, now=later)
    assert state.latency_ewma_s == pytest.approx(0.086)


def test_reported_and_own_load_are_averaged_for_load_sharing():
    from mltoolkit.balancer.policies import LOAD_SHARE_WEIGHT, load_sharing

    a = ReplicaState(name="a", url="http://127.0.0.1:9000")
    b = ReplicaState(name="b", url="http://127.0.0.1:9001")
    assert load_sharing([a, b]) == 1.0  # no report yet: assume we are alone
    a.record_answer(0.1, None, now=0.0)
    assert a.reported_load_ewma is None  # no X-In-Flight header: nothing learned
    # a held 3 others when it answered ours, and we had none other there: 4 held, 1 ours.
    a.record_answer(0.1, 3, now=0.0)
    assert (a.reported_load_ewma, a.own_load_ewma) == (4.0, 1.0)
    # b: 2 held (1 other), both ours (we have one more in flight).
    b.begin_attempt(0.0)
    b.record_answer(0.1, 1, now=0.0)
    assert (b.reported_load_ewma, b.own_load_ewma) == (2.0, 2.0)
    # Summed: 6 held for 3 ours: 2 requests on a replica per request of ours.
    assert load_sharing([a, b]) == 2.0
    # Later reports move the averages by LOAD_SHARE_WEIGHT: a reports 1 other, which is ours
    # (one more in flight): held 4 + 0.1 x (2 - 4), ours 1 + 0.1 x (2 - 1).
    a.begin_attempt(0.0)
    a.record_answer(0.1, 1, now=0.0)
    assert a.reported_load_ewma == pytest.approx(4.0 + LOAD_SHARE_WEIGHT * (2.0 - 4.0))
    assert a.own_load_ewma == pytest.approx(1.0 + LOAD_SHARE_WEIGHT * (2.0 - 1.0))
    # Alone, the replicas report exactly our own requests: 1.0 (never below, whatever the order
    # in which answers and reports cross).
    c = ReplicaState(name="c", url="http://127.0.0.1:9002")
    c.begin_attempt(0.0)
    c.record_answer(0.1, 0, now=0.0)
    assert load_sharing([c]) == 1.0


def test_failed_answers_never_make_a_replica_look_faster():
    state = ReplicaState(name="a", url="http://127.0.0.1:9000")
    state.record_answer(0.5, None)
    # A 500 in 1 ms: kept as the last latency, but the average stays (else a replica failing
    # fast would look like the fastest and draw every request).
    state.record_answer(0.001, None, failed=True)
    assert (state.last_latency_s, state.latency_ewma_s) == (0.001, 0.5)
    # A failure slower than the average does raise it: slow and failing is still slow.
    state.record_answer(1.5, None, failed=True)
    assert state.latency_ewma_s == pytest.approx(1.0)  # the mean of 0.5 and 1.5
    # Before any answer, a failed one is not taken as the replica's speed either.
    fresh = ReplicaState(name="b", url="http://127.0.0.1:9001")
    fresh.record_answer(0.001, None, failed=True)
    assert fresh.latency_ewma_s is None


def test_foreign_load_is_what_the_replica_reports_beyond_our_own():
    state = ReplicaState(name="a", url="http://127.0.0.1:9000")
    ticket = state.begin_attempt(0.0)
    state.begin_attempt(0.0)
    state.end_attempt(ticket, worked=True)
    # One of ours is still there; the replica reports 4 others: 3 came from someone else.
    state.record_answer(0.1, 4)
    assert (state.reported_in_flight, state.foreign_in_flight) == (4, 3)
    # A report below our own count (an answer we have not read yet) means no foreign load.
    state.record_answer(0.1, 0)
    assert state.foreign_in_flight == 0


def test_an_answer_overtaking_earlier_attempts_proves_parallel_service():
    state = ReplicaState(name="a", url="http://127.0.0.1:9000")
    first = state.begin_attempt(0.0)
    second = state.begin_attempt(1.0)
    assert state.in_flight == 2
    # In order (first, then second): a single FIFO slot would do the same; nothing learned.
    state.end_attempt(first, worked=True)
    state.end_attempt(second, worked=True)
    assert (state.in_flight, state.parallel_seen) == (0, 1)
    # Three sent a second apart; the third answers while the other two are still unanswered:
    # with FIFO service those two had started and not finished, so three were served at once.
    tickets = [state.begin_attempt(t) for t in (10.0, 11.0, 12.0)]
    state.end_attempt(tickets[2], worked=True)
    assert state.parallel_seen == 3
    state.end_attempt(tickets[0], worked=True)
    state.end_attempt(tickets[1], worked=True)
    assert (state.in_flight, state.parallel_seen) == (0, 3)  # the most seen is kept


def test_overtaking_proves_nothing_when_not_answered_or_sent_too_close():
    state = ReplicaState(name="a", url="http://127.0.0.1:9000")
    slow = state.begin_attempt(0.0)
    failed = state.begin_attempt(1.0)
    # A failure (refused, dropped, 5xx, or a GET that takes no slot) overtaking: nothing learned.
    state.end_attempt(failed, worked=False)
    assert state.parallel_seen == 1
    # Sent within OVERTAKE_MARGIN_S of the earlier one: it may simply have arrived first.
    close = state.begin_attempt(OVERTAKE_MARGIN_S / 2)
    state.end_attempt(close, worked=True)
    assert state.parallel_seen == 1
    state.end_attempt(slow, worked=True)
    assert state.in_flight == 0
