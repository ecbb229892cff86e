import math

import numpy as np
import pytest

from mltoolkit.errors import SpecError
from mltoolkit.sim.costs import CostDistribution
from mltoolkit.sim.fleet_spec import uneven_fleet
from mltoolkit.sim.trace import ArrivalTrace, poisson_trace, trace_at_utilization


def test_poisson_trace_has_the_requested_rate_and_exponential_gaps():
    trace = poisson_trace(200.0, 100.0, CostDistribution("constant", 0.01), seed=1)
    # The count in T seconds is Poisson(rate x T) = Poisson(20000): standard deviation 141,
    # so 5 sigma is 707.
    assert abs(len(trace) - 20_000) < 5 * math.sqrt(20_000)
    gaps = np.diff(trace.times_s)
    assert np.all(gaps >= 0) and trace.times_s[0] >= 0 and trace.duration_s < 100.0
    # Exponential gaps: mean 1/rate = 5 ms and coefficient of variation 1 (tolerances ~5 sigma).
    assert gaps.mean() == pytest.approx(0.005, rel=0.04)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)
    assert np.all(trace.costs_s == 0.01)


def test_same_seed_same_trace_other_seed_other_trace():
    costs = CostDistribution("pareto", 0.1)
    a, b = (poisson_trace(50, 10, costs, seed=4) for _ in range(2))
    c = poisson_trace(50, 10, costs, seed=5)
    assert np.array_equal(a.times_s, b.times_s) and np.array_equal(a.costs_s, b.costs_s)
    assert not np.array_equal(a.times_s[:10], c.times_s[:10])


def test_trace_at_utilization_offers_that_share_of_capacity():
    fleet = uneven_fleet(16, slots=1, costs=CostDistribution("exponential", 0.1))
    # capacity = (12 x 1 + 4 x 1/3) / 0.1 s = 133.3 requests/s; 90 % of it is 120 requests/s,
    # i.e. 12000 expected in 100 s (standard deviation 110).
    trace = trace_at_utilization(fleet, 0.9, 100.0, seed=2)
    assert abs(len(trace) - 12_000) < 5 * math.sqrt(12_000)
    # offered work / (capacity in work-seconds per second x duration) ~ 0.9
    assert trace.costs_s.sum() / (fleet.capacity * 100.0) == pytest.approx(0.9, rel=0.05)


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: poisson_trace(0, 1, CostDistribution()), "rate_rps"),
        (lambda: poisson_trace(1, -1, CostDistribution()), "duration_s"),
        (lambda: poisson_trace(1, 1, "exponential"), "costs"),
        (lambda: trace_at_utilization(uneven_fleet(2), 0, 1), "utilization"),
        (lambda: ArrivalTrace(np.array([1.0, 0.5]), np.array([1.0, 1.0])), "ArrivalTrace.times_s"),
        (lambda: ArrivalTrace(np.array([1.0]), np.array([1.0, 1.0])), "ArrivalTrace.costs_s"),
        (lambda: ArrivalTrace(np.array([1.0]), np.array([-1.0])), "ArrivalTrace.costs_s"),
    ],
)
def test_bad_input_names_the_field(call, field):
    with pytest.raises(SpecError) as info:
        call()
    assert info.value.field == field
