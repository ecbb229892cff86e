"""Policies are pure: each test builds replica states by hand and checks the choice."""

from __future__ import annotations

import pytest

from mltoolkit.balancer.policies import LeastRequest, Policy, ReplicaState, RoundRobin, policy_names


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
    assert {"round_robin", "least_request"} <= set(policy_names())
    assert isinstance(Policy.make("round_robin"), RoundRobin)
    assert isinstance(Policy.make("least_request"), LeastRequest)
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
