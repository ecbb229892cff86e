"""Arrival traces: when each request is sent and how much work it carries.

The same trace is replayed against every system under test and fed to the ideal, so that
differences come from the systems, not from the luck of the draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mltoolkit.errors import SpecError
from mltoolkit.sim.costs import CostDistribution
from mltoolkit.sim.fleet_spec import FleetSpec


@dataclass(frozen=True)
class ArrivalTrace:
    """Send times (seconds from the start, non-decreasing) and costs (seconds on a speed-1.0
    replica) of the requests, in send order."""

    times_s: np.ndarray
    costs_s: np.ndarray

    def __post_init__(self) -> None:
        times = np.asarray(self.times_s, dtype=float)
        costs = np.asarray(self.costs_s, dtype=float)
        if times.ndim != 1 or costs.shape != times.shape:
            raise SpecError(
                "ArrivalTrace.costs_s", f"shape {costs.shape}", f"one cost per time, shape {times.shape}"
            )
        if not np.all(np.isfinite(times)) or (times.size and times[0] < 0):
            raise SpecError("ArrivalTrace.times_s", "negative or non-finite times", "finite times >= 0")
        if np.any(np.diff(times) < 0):
            raise SpecError("ArrivalTrace.times_s", "decreasing times", "non-decreasing send times")
        if not np.all(np.isfinite(costs)) or np.any(costs < 0):
            raise SpecError("ArrivalTrace.costs_s", "negative or non-finite costs", "finite costs >= 0")
        object.__setattr__(self, "times_s", times)
        object.__setattr__(self, "costs_s", costs)

    def __len__(self) -> int:
        return int(self.times_s.size)

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1]) if self.times_s.size else 0.0


def poisson_trace(
    rate_rps: float, duration_s: float, costs: CostDistribution, seed: int = 0
) -> ArrivalTrace:
    """Open-loop Poisson arrivals at ``rate_rps`` for ``duration_s`` seconds, costs drawn from
    ``costs``. Times and costs come from independent streams of ``seed``."""
    if not isinstance(rate_rps, (int, float)) or isinstance(rate_rps, bool) or not (
        math.isfinite(rate_rps) and 0 < rate_rps <= 1e6
    ):
        raise SpecError("rate_rps", rate_rps, "requests per second, > 0 and <= 1e6")
    if not isinstance(duration_s, (int, float)) or isinstance(duration_s, bool) or not (
        math.isfinite(duration_s) and 0 < duration_s <= 1e6
    ):
        raise SpecError("duration_s", duration_s, "seconds, > 0 and <= 1e6")
    if not isinstance(costs, CostDistribution):
        raise SpecError("costs", costs, "a CostDistribution")
    time_rng, cost_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    # Draw a few more gaps than the expected count, then cut at the duration.
    expected = rate_rps * duration_s
    n = int(expected + 10 * math.sqrt(expected) + 10)
    times = np.cumsum(time_rng.exponential(1.0 / rate_rps, n))
    while times[-1] < duration_s:  # astronomically rare; keep drawing rather than truncate
        more = times[-1] + np.cumsum(time_rng.exponential(1.0 / rate_rps, n))
        times = np.concatenate([times, more])
    times = times[times < duration_s]
    return ArrivalTrace(times_s=times, costs_s=costs.sample(cost_rng, times.size))


def trace_at_utilization(
    fleet: FleetSpec, utilization: float, duration_s: float, seed: int = 0
) -> ArrivalTrace:
    """Poisson arrivals offering ``utilization`` of the fleet's capacity
    (capacity = sum(slots x speed) / mean cost), costs from the fleet's ``costs``."""
    if not isinstance(utilization, (int, float)) or isinstance(utilization, bool) or not (
        math.isfinite(utilization) and 0 < utilization <= 10
    ):
        raise SpecError("utilization", utilization, "a fraction of fleet capacity, > 0 and <= 10")
    return poisson_trace(utilization * fleet.capacity_rps(), duration_s, fleet.costs, seed)
