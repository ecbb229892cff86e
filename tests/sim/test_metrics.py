import math

import numpy as np
import pandas as pd
import pytest

from mltoolkit.sim.ideal import simulate_central_queue
from mltoolkit.sim.metrics import (
    coefficient_of_variation,
    failures_since,
    ideal_metrics,
    measured_metrics,
    reroute_time_s,
)
from mltoolkit.sim.trace import ArrivalTrace


def frame(scheduled, latency, status, replica):
    return pd.DataFrame(
        {"scheduled_s": scheduled, "latency_s": latency, "status": status, "replica": replica}
    )


def test_coefficient_of_variation():
    assert coefficient_of_variation([2, 2, 2]) == 0.0
    # mean 2, population std 1 -> 0.5
    assert coefficient_of_variation([1, 3]) == pytest.approx(0.5)
    assert math.isnan(coefficient_of_variation([0, 0]))


def test_measured_metrics_on_a_constructed_run():
    # 100 requests scheduled 0.0 .. 9.9 s; latency 10 ms except one at 1 s; the last one failed.
    scheduled = np.arange(100) / 10
    latency = np.full(100, 0.010)
    latency[50] = 1.0
    latency[99] = np.nan
    status = np.full(100, 200)
    status[99] = 0
    m = measured_metrics(
        frame(scheduled, latency, status, ["a"] * 100),
        busy_s=[3.0, 1.0], served=[60, 39], slots=[2, 1],
    )
    assert m.requests == 100 and m.error_rate == pytest.approx(0.01)
    assert m.p50_ms == pytest.approx(10.0)
    # 99 answered latencies, one of 1 s: the 99th percentile lies between 10 ms and 1000 ms.
    assert 10.0 < m.p99_ms < 1000.0
    # answers per second while arrivals were offered (0.0 .. 9.9 s): the 99 answers, the last at
    # 9.8 + 0.01 s, all came by 9.9 s
    assert m.throughput_rps == pytest.approx(99 / 9.9)
    # busy per slot: 1.5 and 1.0 -> mean 1.25, std 0.25 -> CV 0.2
    assert m.util_cv == pytest.approx(0.2)
    assert m.served_cv == pytest.approx(coefficient_of_variation([60, 39]))


def test_ideal_metrics_use_the_simulation():
    trace = ArrivalTrace(np.array([0.0, 1.0, 1.0]), np.array([1.0, 1.0, 1.0]))
    result = simulate_central_queue(trace.times_s, trace.costs_s, [1.0, 0.5], [1, 1])
    m = ideal_metrics(result, trace, [1, 1])
    # j0: fast, 0..1; at t=1 fast is free again -> j1 on fast 1..2 and j2 on slow 1..3.
    # Arrivals span 0..1 s and one answer (j0 at 1.0) came within it: 1 request/s.
    assert m.throughput_rps == pytest.approx(1.0) and m.error_rate == 0.0
    assert m.p50_ms == pytest.approx(1000.0)  # latencies 1, 1, 2 s
    # busy per slot: fast 2 s, slow 2 s (cost 1 at speed 0.5) -> equally busy
    assert m.util_cv == pytest.approx(0.0)
    assert m.served_cv == pytest.approx(coefficient_of_variation([2, 1]))


def test_reroute_time_is_when_the_rate_stays_low():
    # The replica's own cumulative count of requests received, sampled every 0.5 s for 10 s:
    # 5 per second until t=6, then none. The fault is at t=2; windows of 2 s from it are
    # [2,4) [4,6) [6,8) [8,10). The last window above 1 request/s is [4, 6): routed around
    # 6 - 2 = 4 s after the fault.
    times = np.arange(0, 10.01, 0.5)
    arrived = 5 * np.minimum(times, 6.0)
    assert reroute_time_s(times, arrived, fault_at_s=2.0, max_rate_rps=1.0, end_s=10.0) == pytest.approx(4.0)
    # a higher limit (5 per second is not above 5) means it was never overloaded
    assert reroute_time_s(times, arrived, fault_at_s=2.0, max_rate_rps=5.0, end_s=10.0) == 0.0
    # never rerouted: 5 per second to the end
    assert math.isnan(reroute_time_s(times, 5 * times, fault_at_s=2.0, max_rate_rps=1.0, end_s=10.0))


def test_failures_since_a_death():
    scheduled = np.arange(100) / 10
    status = np.full(100, 200)
    # Death at t=4: one request sent at 3.9 was in flight and dropped; two more failed at 4.2, 4.7.
    status[[39, 42, 47]] = 502
    failed, failing_for = failures_since(frame(scheduled, np.zeros(100), status, ["y"] * 100), 4.0, 10.0)
    assert failed == 3 and failing_for == pytest.approx(0.7)  # the last failure was sent at 4.7
    status[[42, 47]] = 200
    failed, failing_for = failures_since(frame(scheduled, np.zeros(100), status, ["y"] * 100), 4.0, 10.0)
    assert failed == 1 and failing_for == 0.0  # only the one in flight
    status[95] = 0
    failed, failing_for = failures_since(frame(scheduled, np.zeros(100), status, ["y"] * 100), 4.0, 10.0)
    assert failed == 2 and math.isnan(failing_for)  # still failing at the end
