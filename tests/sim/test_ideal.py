"""The central-queue simulation against answers known in closed form or computed by hand."""

import math

import numpy as np
import pytest

from mltoolkit.errors import SpecError
from mltoolkit.sim.costs import CostDistribution
from mltoolkit.sim.fleet_spec import uneven_fleet
from mltoolkit.sim.ideal import ideal_for, simulate_central_queue
from mltoolkit.sim.trace import poisson_trace


def batch_means_stderr(values: np.ndarray, batches: int = 50) -> float:
    """Standard error of the mean of a correlated series (successive waits in a queue are).

    Batches of 2000-4000 customers are far longer than the queue's relaxation time (about
    1 / (mu (1 - sqrt(rho))^2) = 50 service times at rho = 0.8), so batch means are close to
    independent and their spread gives an honest error; the naive s / sqrt(n) would be far too small.
    """
    means = np.array([chunk.mean() for chunk in np.array_split(values, batches)])
    return float(means.std(ddof=1) / math.sqrt(batches))


def test_tiny_trace_by_hand():
    # Replica 0 is SLOW (speed 0.5) and listed first; replica 1 is fast (speed 1.0); one slot each.
    # The central queue gives a free request the fastest free slot, not the first listed.
    times = [0.0, 0.25, 0.5, 1.5, 1.6, 3.0]
    costs = [1.0, 1.0, 0.5, 0.25, 1.0, 0.5]
    result = simulate_central_queue(times, costs, speeds=[0.5, 1.0], slots=[1, 1])
    # j0 t=0    cost 1   : both free -> fast (1); runs 0..1.0                 latency 1.0
    # j1 t=0.25 cost 1   : only slow free -> slow (0); 1/0.5 = 2 s: 0.25..2.25 latency 2.0
    # j2 t=0.5  cost 0.5 : nothing free, queues; fast frees at 1.0 -> 1.0..1.5 latency 1.0 (wait 0.5)
    # j3 t=1.5  cost 0.25: fast finishes j2 at 1.5, the same instant -> fast, 1.5..1.75 latency 0.25
    # j4 t=1.6  cost 1   : both busy (fast to 1.75, slow to 2.25); fast frees first -> 1.75..2.75
    #                      latency 1.15 (wait 0.15)
    # j5 t=3.0  cost 0.5 : both free -> fast, 3.0..3.5                         latency 0.5
    assert result.latency_s == pytest.approx([1.0, 2.0, 1.0, 0.25, 1.15, 0.5])
    assert result.wait_s == pytest.approx([0, 0, 0.5, 0, 0.15, 0])
    assert result.replica.tolist() == [1, 0, 1, 1, 1, 1]
    # busy: slow 2.0 (j1); fast 1 + 0.5 + 0.25 + 1 + 0.5 = 3.25. Served: slow 1, fast 5.
    assert result.busy_s == pytest.approx([2.0, 3.25])
    assert result.served.tolist() == [1, 5]
    assert result.finish_s == pytest.approx(3.5)


def test_slots_of_one_replica_serve_in_parallel():
    # One replica with 2 slots, speed 2: three requests of cost 1 at t=0 -> two run 0..0.5,
    # the third waits for the first free slot and runs 0.5..1.0.
    result = simulate_central_queue([0, 0, 0], [1, 1, 1], speeds=[2.0], slots=[2])
    assert result.latency_s == pytest.approx([0.5, 0.5, 1.0])
    assert result.busy_s == pytest.approx([1.5])


def test_single_server_matches_lindleys_recursion_exactly():
    # One slot: W_{n+1} = max(0, W_n + S_n - (A_{n+1} - A_n)), an independent derivation.
    trace = poisson_trace(0.9, 5000, CostDistribution("pareto", 1.0, 2.2), seed=11)
    result = simulate_central_queue(trace.times_s, trace.costs_s, [1.0], [1])
    waits = np.zeros(len(trace))
    for n in range(1, len(trace)):
        gap = trace.times_s[n] - trace.times_s[n - 1]
        waits[n] = max(0.0, waits[n - 1] + trace.costs_s[n - 1] - gap)
    np.testing.assert_allclose(result.wait_s, waits, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("rho, jobs", [(0.5, 100_000), (0.8, 200_000)])
def test_mm1_mean_sojourn_time(rho, jobs):
    # M/M/1 with mu = 1 (mean cost 1 s, speed 1) and lambda = rho: E[T] = 1 / (mu - lambda).
    expected = 1.0 / (1.0 - rho)
    trace = poisson_trace(rho, jobs / rho, CostDistribution("exponential", 1.0), seed=21)
    latency = simulate_central_queue(trace.times_s, trace.costs_s, [1.0], [1]).latency_s
    stderr = batch_means_stderr(latency)
    # The estimate is precise enough to mean something (SE under 3 % of the answer: a 12 % bias
    # would fail) and lies within 4 SE of the formula (a correct simulator fails ~1 in 16000 seeds).
    assert stderr < 0.03 * expected
    assert abs(latency.mean() - expected) < 4 * stderr


def test_md1_mean_wait_pollaczek_khinchine():
    # M/D/1, service 1 s, rho = 0.8: W_q = lambda E[S^2] / (2 (1 - rho)) = 0.8 x 1 / 0.4 = 2.0.
    rho = 0.8
    trace = poisson_trace(rho, 150_000 / rho, CostDistribution("constant", 1.0), seed=31)
    wait = simulate_central_queue(trace.times_s, trace.costs_s, [1.0], [1]).wait_s
    stderr = batch_means_stderr(wait)
    assert stderr < 0.03 * 2.0
    assert abs(wait.mean() - 2.0) < 4 * stderr


def erlang_c(servers: int, arrival_rate: float, mu: float) -> tuple[float, float]:
    """M/M/c: the probability that an arrival waits (Erlang C) and the mean wait P(wait)/(c mu - lambda)."""
    a = arrival_rate / mu
    rho = a / servers
    top = a**servers / math.factorial(servers) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(servers)) + top)
    return p_wait, p_wait / (servers * mu - arrival_rate)


def test_mmc_probability_of_waiting_and_mean_wait_erlang_c():
    # 4 identical replicas of 1 slot (= one replica of 4 slots), mu = 1, rho = 0.8: lambda = 3.2,
    # P(wait) = C(4, 3.2) = 0.5964 and W_q = 0.5964 / (4 - 3.2) = 0.7455.
    p_wait, mean_wait = erlang_c(4, 3.2, 1.0)
    assert (p_wait, mean_wait) == pytest.approx((0.5964, 0.7455), abs=1e-4)
    trace = poisson_trace(3.2, 300_000 / 3.2, CostDistribution("exponential", 1.0), seed=41)
    wait = simulate_central_queue(trace.times_s, trace.costs_s, [1.0] * 4, [1] * 4).wait_s
    # P(wait) is the sharper check (SE ~0.004, so a 3 % slower service, which raises it to ~0.63,
    # fails); the mean wait is noisier (many zeros and an exponential tail; SE ~2 %).
    waited = (wait > 0).astype(float)
    assert batch_means_stderr(waited) < 0.01
    assert abs(waited.mean() - p_wait) < 4 * batch_means_stderr(waited)
    stderr = batch_means_stderr(wait)
    assert stderr < 0.04 * mean_wait
    assert abs(wait.mean() - mean_wait) < 4 * stderr


def test_ideal_for_an_uneven_fleet_keeps_every_replica_about_equally_busy():
    fleet = uneven_fleet(16, slots=2, costs=CostDistribution("pareto", 0.1, 2.5))
    trace = poisson_trace(0.9 * fleet.capacity_rps(), 60, fleet.costs, seed=5)
    result = ideal_for(fleet, trace)
    assert result.served.sum() == len(trace)
    # All work is done: busy slot-seconds = sum(cost / speed of the replica that took it).
    speeds = np.array([r.speed for r in fleet.replicas])
    assert result.busy_s.sum() == pytest.approx((trace.costs_s / speeds[result.replica]).sum())
    # Fast replicas serve more requests than slow ones (fastest-free), ...
    slow = speeds < 1
    assert result.served[~slow].mean() > result.served[slow].mean()
    # ... and at 90 % load every slot is busy most of the time: the busiest and idlest replica
    # differ by far less than the 3x speed gap (busy fraction in [0.5, 1]).
    busy_fraction = result.busy_s / 2 / trace.duration_s
    assert busy_fraction.min() > 0.5 and busy_fraction.max() <= 1.0 + 1e-9


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"speeds": [1.0, 1.0], "slots": [1]}, "slots"),
        ({"speeds": [0.0], "slots": [1]}, "speeds"),
        ({"speeds": [1.0], "slots": [0]}, "slots"),
    ],
)
def test_bad_fleet_names_the_field(kwargs, field):
    with pytest.raises(SpecError) as info:
        simulate_central_queue([0.0], [1.0], **kwargs)
    assert info.value.field == field
