"""Balancer policies side by side on one fleet: the same open-loop load against each, repeated.

``compare_policies`` is the side effect: for each policy it brings the deployment up, runs
``repeats`` load tests back to back, and takes it down. ``run_metrics`` and
``comparison_summary`` are the pure part: one row per run, then one row per policy with the
medians over its runs (and the spread of p99), so one unlucky run on a busy host does not decide
the verdict. ``fleet_capacity_rps`` turns a local plan with emulated service times
(``LocalTarget(service_ms=...)``) into the requests/s the fleet can serve, so a load can be
chosen as a fraction of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mltoolkit.errors import SpecError
from mltoolkit.observe.summary import is_error, summarize

RUN_COLUMNS = (
    "policy", "repeat", "requests", "errors", "p50_ms", "p99_ms", "slow_share", "slow_p50_ms",
)  # fmt: skip
SUMMARY_COLUMNS = (
    "runs", "requests", "errors", "p50_ms", "p99_ms", "p99_ms_min", "p99_ms_max", "slow_share",
    "equal_share",
)  # fmt: skip


@dataclass(frozen=True)
class PolicyComparison:
    """What ``compare_policies`` measured.

    ``latency[(policy, repeat)]`` is each run's load-test frame; ``runs`` has one row per run
    (``run_metrics``); ``summary`` one row per policy (``comparison_summary``).
    """

    latency: dict[tuple[str, int], pd.DataFrame]
    runs: pd.DataFrame
    summary: pd.DataFrame


def fleet_capacity_rps(plan: Any) -> float:
    """Requests/s the replicas of a local ``plan`` (a ``Plan`` or its ``resources`` frame) serve at
    most: the sum of 1000 / service_ms.

    Needs emulated service times (``LocalTarget(service_ms=...)``): without them a replica's
    capacity depends on the host, and no number here would mean anything.
    """
    plan = getattr(plan, "resources", plan)
    replicas = plan[plan["kind"] == "replica"]
    if "service_ms" not in plan.columns or replicas.empty or replicas["service_ms"].isna().any():
        raise SpecError(
            "plan.service_ms",
            None if "service_ms" not in plan.columns else replicas["service_ms"].tolist(),
            "an emulated service time for every replica (LocalTarget(service_ms=...))",
        )
    return float((1000.0 / replicas["service_ms"].astype(float)).sum())


def run_metrics(frame: pd.DataFrame, slow_replicas: Iterable[str]) -> dict[str, float]:
    """One load test in a few numbers: requests, errors, p50 and p99 (ms, successes), the share
    of successful requests the ``slow_replicas`` answered, and their median latency (ms; NaN if
    they answered none), which shows that they were the slow ones."""
    overall = summarize(frame).loc["overall"]
    answered = frame[~is_error(frame)]
    is_slow = answered["replica"].isin(set(slow_replicas))
    slow = int(is_slow.sum())
    return {
        "requests": int(len(frame)),
        "errors": int(overall["errors"]),
        "p50_ms": float(overall["p50_ms"]),
        "p99_ms": float(overall["p99_ms"]),
        "slow_share": float(slow / len(answered)) if len(answered) else float("nan"),
        "slow_p50_ms": float(answered.loc[is_slow, "latency_s"].median() * 1000.0)
        if slow
        else float("nan"),
    }


def comparison_summary(runs: pd.DataFrame, equal_share: float) -> pd.DataFrame:
    """One row per policy (in first-seen order): medians over its runs, the p99 spread, totals.

    ``equal_share`` is what the slow replicas would receive if every replica got the same
    number of requests (slow replicas / replicas), shown next to ``slow_share`` to compare.
    """
    grouped = runs.groupby("policy", sort=False)
    summary = pd.DataFrame(
        {
            "runs": grouped.size(),
            "requests": grouped["requests"].sum(),
            "errors": grouped["errors"].sum(),
            "p50_ms": grouped["p50_ms"].median(),
            "p99_ms": grouped["p99_ms"].median(),
            "p99_ms_min": grouped["p99_ms"].min(),
            "p99_ms_max": grouped["p99_ms"].max(),
            "slow_share": grouped["slow_share"].median(),
        }
    )
    summary["equal_share"] = float(equal_share)
    summary.index.name = "policy"
    return summary[list(SUMMARY_COLUMNS)]


def compare_policies(
    target: Any,
    spec_for: Callable[[str], Any],
    policies: Sequence[str],
    *,
    rate: float,
    duration: float,
    slow_replicas: Iterable[str],
    repeats: int = 1,
    X: Any = None,
) -> PolicyComparison:
    """Deploy ``spec_for(policy)`` on ``target`` for each policy, load it ``repeats`` times at
    ``rate`` requests/s for ``duration`` s (open loop), and take it down again.

    ``target`` is anything with ``up(spec)``, ``load_test(rate=, duration=, X=)`` and
    ``down()`` (a ``LocalTarget``). Nothing is left running, also when a run fails.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise SpecError("compare_policies.repeats", repeats, "a whole number >= 1")
    if not policies:
        raise SpecError("compare_policies.policies", policies, "at least one policy name")
    slow = tuple(slow_replicas)
    latency: dict[tuple[str, int], pd.DataFrame] = {}
    rows = []
    replicas = None
    for policy in policies:
        spec = spec_for(policy)
        replicas = spec.replicas
        target.up(spec)
        try:
            for repeat in range(repeats):
                frame = target.load_test(rate=rate, duration=duration, X=X)
                latency[(policy, repeat)] = frame
                rows.append({"policy": policy, "repeat": repeat, **run_metrics(frame, slow)})
        finally:
            target.down()
    runs = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    equal_share = len(slow) / replicas if replicas else np.nan
    return PolicyComparison(latency, runs, comparison_summary(runs, equal_share))
