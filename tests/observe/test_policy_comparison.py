"""Policy comparison: the pure metrics and summary on hand-made frames, the runs on a fake target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mltoolkit.errors import SpecError
from mltoolkit.observe.policy_comparison import (
    SUMMARY_COLUMNS,
    comparison_summary,
    compare_policies,
    fleet_capacity_rps,
    run_metrics,
)


def frame(replicas: list[str], latencies_ms: list[float], status: list[int] | None = None) -> pd.DataFrame:
    n = len(replicas)
    return pd.DataFrame(
        {
            "scheduled_s": np.arange(n) * 0.01,
            "latency_s": np.asarray(latencies_ms) / 1000.0,
            "status": np.asarray(status or [200] * n, dtype=np.int64),
            "replica": pd.Series(replicas, dtype=object),
            "error": pd.Series([None] * n, dtype=object),
        }
    )


def test_run_metrics_counts_what_the_slow_replicas_answered():
    # 10 requests: 8 answered (2 by the slow replica "c"), 1 HTTP 503 from "c", 1 never answered.
    replicas = ["a", "b", "a", "b", "c", "a", "b", "c", "c", None]
    latencies = [10, 10, 10, 10, 80, 10, 10, 80, 5, np.nan]
    status = [200, 200, 200, 200, 200, 200, 200, 200, 503, 0]
    metrics = run_metrics(frame(replicas, latencies, status), slow_replicas=["c"])
    assert metrics["requests"] == 10 and metrics["errors"] == 2
    assert metrics["slow_share"] == pytest.approx(2 / 8)  # of the answered; errors do not count
    assert metrics["p50_ms"] == pytest.approx(10.0)
    assert metrics["slow_p50_ms"] == pytest.approx(80.0)  # its 503 in 5 ms does not count
    # p99 of [10 x 6, 80, 80] (numpy's linear interpolation): 80
    assert metrics["p99_ms"] == pytest.approx(80.0)


def test_summary_is_the_median_of_each_policys_runs_with_the_p99_spread():
    runs = pd.DataFrame(
        {
            "policy": ["round_robin"] * 3 + ["ewma"] * 3,
            "repeat": [0, 1, 2] * 2,
            "requests": [300] * 6,
            "errors": [0, 1, 0, 0, 0, 0],
            "p50_ms": [30.0, 40.0, 35.0, 20.0, 25.0, 22.0],
            "p99_ms": [3000.0, 900.0, 2500.0, 60.0, 500.0, 80.0],
            "slow_share": [0.25, 0.25, 0.25, 0.02, 0.30, 0.03],
        }
    )
    summary = comparison_summary(runs, equal_share=0.25)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert list(summary.index) == ["round_robin", "ewma"]  # the order they ran in
    ewma = summary.loc["ewma"]
    # one bad run (p99 500 ms, share 0.30) does not decide: the medians are the middle runs
    assert (ewma["p99_ms"], ewma["slow_share"], ewma["p50_ms"]) == (80.0, 0.03, 22.0)
    assert (ewma["p99_ms_min"], ewma["p99_ms_max"]) == (60.0, 500.0)
    assert summary.loc["round_robin", "p99_ms"] == 2500.0
    assert summary.loc["round_robin", "errors"] == 1 and summary.loc["ewma", "requests"] == 900
    assert (summary["runs"] == 3).all() and (summary["equal_share"] == 0.25).all()


def test_fleet_capacity_is_the_sum_of_each_replicas_rate():
    plan = pd.DataFrame(
        {
            "kind": ["replica", "replica", "replica", "balancer"],
            "name": ["m-0", "m-1", "m-2", "m-balancer"],
            "service_ms": [20.0, 20.0, 80.0, np.nan],
        }
    )
    assert fleet_capacity_rps(plan) == pytest.approx(50 + 50 + 12.5)
    plan.loc[1, "service_ms"] = np.nan
    with pytest.raises(SpecError) as info:
        fleet_capacity_rps(plan)
    assert info.value.field == "plan.service_ms"


class FakeTarget:
    """Records up/load/down; each load test answers a frame naming the policy deployed."""

    def __init__(self, fail_on: tuple[str, int] | None = None) -> None:
        self.calls: list[tuple] = []
        self.deployed: str | None = None
        self.fail_on = fail_on
        self.loads = 0

    def up(self, spec):
        self.calls.append(("up", spec.policy))
        self.deployed = spec.policy

    def load_test(self, rate, duration, X=None):
        self.calls.append(("load", self.deployed, rate, duration))
        self.loads += 1
        if self.fail_on == (self.deployed, self.loads):
            raise RuntimeError("the load generator broke")
        slow = {"round_robin": 1, "ewma": 0}[self.deployed]
        return frame(["a", "b", "c", "s" if slow else "a"], [10, 10, 10, 90 if slow else 10])

    def down(self):
        self.calls.append(("down", self.deployed))
        self.deployed = None


class Spec:
    def __init__(self, policy):
        self.policy = policy
        self.replicas = 4


def test_each_policy_is_deployed_once_loaded_repeats_times_and_taken_down():
    target = FakeTarget()
    result = compare_policies(
        target, Spec, ["round_robin", "ewma"], rate=50, duration=2, slow_replicas=["s"], repeats=2
    )
    assert target.calls == [
        ("up", "round_robin"), ("load", "round_robin", 50, 2), ("load", "round_robin", 50, 2),
        ("down", "round_robin"),
        ("up", "ewma"), ("load", "ewma", 50, 2), ("load", "ewma", 50, 2), ("down", "ewma"),
    ]  # fmt: skip
    assert sorted(result.latency) == [("ewma", 0), ("ewma", 1), ("round_robin", 0), ("round_robin", 1)]
    assert list(result.runs["slow_share"]) == [0.25, 0.25, 0.0, 0.0]
    assert list(result.runs["slow_p50_ms"][:2]) == [90.0, 90.0] and result.runs["slow_p50_ms"][2:].isna().all()
    assert result.summary.loc["round_robin", "p99_ms"] > result.summary.loc["ewma", "p99_ms"]
    assert (result.summary["equal_share"] == 0.25).all()  # one slow replica of four


def test_a_failing_run_still_takes_the_deployment_down():
    target = FakeTarget(fail_on=("ewma", 2))
    with pytest.raises(RuntimeError, match="load generator broke"):
        compare_policies(target, Spec, ["round_robin", "ewma"], rate=50, duration=2, slow_replicas=["s"])
    assert target.calls[-1] == ("down", "ewma") and target.deployed is None


@pytest.mark.parametrize("repeats", [0, 1.5, True])
def test_bad_repeats_fail_before_anything_is_deployed(repeats):
    target = FakeTarget()
    with pytest.raises(SpecError) as info:
        compare_policies(target, Spec, ["ewma"], rate=50, duration=2, slow_replicas=[], repeats=repeats)
    assert info.value.field == "compare_policies.repeats"
    assert target.calls == []
