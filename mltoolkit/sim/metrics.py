"""Pure measurements over one benchmark run: latency percentiles, throughput, error rate, how
evenly the replicas were used, and how fast a balancer routed around a slowed or dead replica."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mltoolkit.sim.ideal import IdealResult
from mltoolkit.sim.trace import ArrivalTrace


@dataclass(frozen=True)
class RunMetrics:
    """``util_cv``: coefficient of variation across replicas of busy slot-seconds per slot (0 =
    every replica equally busy). ``served_cv``: the same over requests served per replica."""

    requests: int
    p50_ms: float
    p99_ms: float
    throughput_rps: float
    error_rate: float
    util_cv: float
    served_cv: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def coefficient_of_variation(values: Sequence[float] | np.ndarray) -> float:
    """Population standard deviation / mean; NaN for an empty or all-zero sample."""
    array = np.asarray(values, dtype=float)
    if array.size == 0 or array.mean() == 0:
        return math.nan
    return float(array.std() / array.mean())


def _percentile_ms(latency_s: np.ndarray, q: float) -> float:
    return float(np.percentile(latency_s, q) * 1000) if latency_s.size else math.nan


def _answers_per_second(scheduled_s: np.ndarray, answered_at_s: np.ndarray) -> float:
    first, last = float(scheduled_s.min()), float(scheduled_s.max())
    if last <= first:
        return math.nan
    return float((answered_at_s <= last).sum() / (last - first))


def measured_metrics(
    requests: pd.DataFrame, busy_s: Sequence[float], served: Sequence[int], slots: Sequence[int]
) -> RunMetrics:
    """Metrics of a replayed run: ``requests`` is ``replay_async``'s frame; ``busy_s`` and
    ``served`` the per-replica counter increments over the run; ``slots`` per replica.

    Percentiles are over answered requests (status 200). Throughput is answers per second while
    arrivals were offered: answers that arrived by the last scheduled send, over that span (a
    heavy-tailed straggler after the end does not stretch it; an overloaded system falls short)."""
    ok = requests["status"].to_numpy() == 200
    latency = requests["latency_s"].to_numpy(dtype=float)[ok]
    scheduled = requests["scheduled_s"].to_numpy(dtype=float)
    n = len(requests)
    throughput = _answers_per_second(scheduled, scheduled[ok] + latency) if n else math.nan
    return RunMetrics(
        requests=n,
        p50_ms=_percentile_ms(latency, 50),
        p99_ms=_percentile_ms(latency, 99),
        throughput_rps=throughput,
        error_rate=float((~ok).sum() / n) if n else math.nan,
        util_cv=coefficient_of_variation(np.asarray(busy_s, dtype=float) / np.asarray(slots)),
        served_cv=coefficient_of_variation(served),
    )


def ideal_metrics(result: IdealResult, trace: ArrivalTrace, slots: Sequence[int]) -> RunMetrics:
    """The same metrics for a simulation of ``trace``: the central queue's (``ideal_for``) or
    K balancers' (``simulate_balancers``)."""
    n = len(trace)
    return RunMetrics(
        requests=n,
        p50_ms=_percentile_ms(result.latency_s, 50),
        p99_ms=_percentile_ms(result.latency_s, 99),
        throughput_rps=_answers_per_second(trace.times_s, trace.times_s + result.latency_s) if n else math.nan,
        error_rate=0.0,
        util_cv=coefficient_of_variation(result.busy_s / np.asarray(slots)),
        served_cv=coefficient_of_variation(result.served),
    )


def reroute_time_s(
    sample_times_s: Sequence[float] | np.ndarray,
    arrived: Sequence[float] | np.ndarray,
    fault_at_s: float,
    max_rate_rps: float,
    end_s: float,
    window_s: float = 2.0,
) -> float:
    """Seconds from ``fault_at_s`` until the balancer stops overloading a replica, from that
    replica's own count of requests received (``arrived``, cumulative, sampled at
    ``sample_times_s``; counted by the replica, so requests it never answered count too).

    Routed around = from then on, in every whole window of ``window_s`` from the fault up to
    ``end_s``, it received at most ``max_rate_rps``. Returns the end of the last window above the
    limit (0 if none was), or NaN if the final window is still above it: never routed around.
    """
    times = np.asarray(sample_times_s, dtype=float)
    counts = np.asarray(arrived, dtype=float)
    above, lefts = [], []
    left = fault_at_s
    while left + window_s <= end_s + 1e-9:
        received = np.interp(left + window_s, times, counts) - np.interp(left, times, counts)
        lefts.append(left)
        if received / window_s > max_rate_rps:
            above.append(left)
        left += window_s
    if not above:
        return 0.0
    if above[-1] == lefts[-1]:
        return math.nan
    return above[-1] + window_s - fault_at_s


def failures_since(
    requests: pd.DataFrame, at_s: float, end_s: float, window_s: float = 2.0
) -> tuple[int, float]:
    """Requests without a 200 answer, and the seconds from ``at_s`` to the scheduled time of the
    last of them (0 if none failed or the last was sent before ``at_s``, e.g. dropped in flight);
    NaN if failures go on into the final ``window_s`` before ``end_s``: never routed around."""
    scheduled = requests["scheduled_s"].to_numpy(dtype=float)
    failed = requests["status"].to_numpy() != 200
    if not failed.any():
        return 0, 0.0
    last = float(scheduled[failed].max())
    if last >= end_s - window_s:
        return int(failed.sum()), math.nan
    return int(failed.sum()), max(0.0, last - at_s)
