import math

import numpy as np
import pandas as pd
import pytest

from mltoolkit.observe.loadtest import results_frame
from mltoolkit.observe.summary import (
    SUMMARY_COLUMNS,
    balance,
    coefficient_of_variation,
    served_per_replica,
    span_s,
    summarize,
    utilization_balance,
)


def hand_made() -> pd.DataFrame:
    """10 requests: replica "b" answers 6 (one a 500), "a" answers 3, one gets no answer."""
    rows = [
        # scheduled_s, latency_s, status, replica, error
        (0.0, 0.010, 200, "b", None),
        (0.1, 0.020, 200, "a", None),
        (0.2, 0.030, 200, "b", None),
        (0.3, 0.040, 200, "a", None),
        (0.4, 0.050, 200, "b", None),
        (0.5, 0.060, 500, "b", "HTTP 500: boom"),
        (0.6, 0.070, 200, "b", None),
        (0.7, 0.080, 200, "a", None),
        (0.8, 0.090, 200, "b", None),
        (0.9, math.nan, 0, None, "ClientConnectorError: refused"),
    ]
    return results_frame(dict(enumerate(rows)))


def test_summary_rows_and_columns():
    summary = summarize(hand_made())
    assert list(summary.index) == ["overall", "a", "b"]  # overall first, replicas sorted
    assert list(summary.columns) == list(SUMMARY_COLUMNS)


def test_overall_arithmetic():
    overall = summarize(hand_made()).loc["overall"]
    assert overall["count"] == 10
    assert overall["errors"] == 2  # the 500 and the status 0
    assert overall["error_rate"] == pytest.approx(0.2)
    # span: first scheduled 0.0 to the last answer 0.8 + 0.090 = 0.89 s; 8 successes
    assert overall["throughput_rps"] == pytest.approx(8 / 0.89)
    # successful latencies (ms), sorted: 10 20 30 40 50 70 80 90 (n = 8). Linear
    # interpolation at position q·(n-1) = 7q:
    # p50 → 3.5  → 40 + 0.5·10 = 45;   p90 → 6.3  → 80 + 0.3·10 = 83
    # p95 → 6.65 → 80 + 0.65·10 = 86.5; p99 → 6.93 → 80 + 0.93·10 = 89.3
    assert overall["p50_ms"] == pytest.approx(45.0)
    assert overall["p90_ms"] == pytest.approx(83.0)
    assert overall["p95_ms"] == pytest.approx(86.5)
    assert overall["p99_ms"] == pytest.approx(89.3)
    assert overall["max_ms"] == pytest.approx(90.0)


def test_per_replica_arithmetic():
    summary = summarize(hand_made())
    b = summary.loc["b"]
    assert (b["count"], b["errors"]) == (6, 1)
    assert b["error_rate"] == pytest.approx(1 / 6)
    assert b["throughput_rps"] == pytest.approx(5 / 0.89)  # the whole test's span
    # b's successes: 10 30 50 70 90 (n = 5), positions 4q:
    # p50 → 2 → 50; p90 → 3.6 → 70 + 0.6·20 = 82; p95 → 3.8 → 86; p99 → 3.96 → 89.2
    assert b[["p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms"]].tolist() == pytest.approx(
        [50.0, 82.0, 86.0, 89.2, 90.0]
    )
    a = summary.loc["a"]
    assert (a["count"], a["errors"], a["error_rate"]) == (3, 0, 0.0)
    assert a["throughput_rps"] == pytest.approx(3 / 0.89)
    # a's successes: 20 40 80 (n = 3), positions 2q:
    # p50 → 1 → 40; p90 → 1.8 → 40 + 0.8·40 = 72; p95 → 1.9 → 76; p99 → 1.98 → 79.2
    assert a[["p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms"]].tolist() == pytest.approx(
        [40.0, 72.0, 76.0, 79.2, 80.0]
    )
    # replica throughputs add up to the overall one
    assert summary.loc[["a", "b"], "throughput_rps"].sum() == pytest.approx(
        summary.loc["overall", "throughput_rps"]
    )


def test_span_runs_from_first_schedule_to_last_answer():
    df = hand_made()
    df.loc[0, "scheduled_s"] = 0.05  # no longer the first; the earliest is now 0.1
    assert span_s(df) == pytest.approx(0.89 - 0.05)


def test_summary_of_only_failures_and_of_nothing():
    failed = results_frame(
        {0: (0.0, math.nan, 0, None, "refused"), 1: (0.1, math.nan, 0, None, "refused")}
    )
    overall = summarize(failed).loc["overall"]
    assert (overall["count"], overall["errors"], overall["error_rate"]) == (2, 2, 1.0)
    assert math.isnan(overall["p50_ms"]) and math.isnan(overall["throughput_rps"])
    empty = summarize(results_frame({}))
    assert list(empty.index) == ["overall"] and empty.loc["overall", "count"] == 0


def test_summary_names_missing_columns():
    with pytest.raises(ValueError, match=r"missing \['status'\]"):
        summarize(pd.DataFrame({"scheduled_s": [0.0], "latency_s": [0.1], "replica": ["a"]}))


def test_balance_of_a_load_test_is_the_cv_of_successes_per_replica():
    df = hand_made()
    assert served_per_replica(df).to_dict() == {"a": 3, "b": 5}
    # mean 4, population std 1 → CV 0.25
    assert balance(df) == pytest.approx(0.25)
    # with a replica "c" that served nothing: 3, 5, 0 → mean 8/3, variance 114/27
    assert balance(df, replicas=["a", "b", "c"]) == pytest.approx(math.sqrt(114 / 27) / (8 / 3))


def replica_util() -> pd.DataFrame:
    time = pd.to_datetime(["2024-01-01T00:00:00Z"] * 2 + ["2024-01-01T00:00:01Z"] * 2)
    return pd.DataFrame(
        {
            "time": time,
            "node": ["n1", "n2", "n1", "n2"],
            "replica": ["r1", "r2", "r1", "r2"],
            "served": pd.array([10, 5, 40, 20], dtype="Int64"),
            "cpu_percent": [50.0, 20.0, 70.0, 40.0],
        }
    )


def test_balance_of_a_replica_utilization_frame_uses_the_latest_served_counters():
    util = replica_util()
    assert served_per_replica(util).to_dict() == {"r1": 40, "r2": 20}
    assert balance(util) == pytest.approx(1 / 3)  # 40 and 20: mean 30, std 10


def test_utilization_balance_is_the_cv_of_node_means():
    by_node = replica_util().drop(columns=["replica"])
    # n1 mean 60, n2 mean 30: mean 45, std 15 → 1/3
    assert utilization_balance(by_node) == pytest.approx(1 / 3)
    assert balance(by_node) == pytest.approx(1 / 3)


def test_coefficient_of_variation_edges():
    assert coefficient_of_variation([7]) == 0.0
    assert math.isnan(coefficient_of_variation([]))
    assert math.isnan(coefficient_of_variation([0, 0]))
    assert coefficient_of_variation([1, np.nan, 3]) == pytest.approx(0.5)


def test_a_lagging_generator_is_warned_about_in_the_summary():
    from mltoolkit.observe.summary import SEND_LAG_WARN_MS, SendLagWarning

    frame = hand_made()
    frame.attrs.update(send_lag_p50_ms=0.1, send_lag_p99_ms=SEND_LAG_WARN_MS + 4, send_lag_max_ms=9.0)
    with pytest.warns(SendLagWarning, match=r"send lag p99 5.00 ms \(max 9.0 ms\) exceeds 1 ms"):
        summary = summarize(frame)
    assert len(summary.attrs["warnings"]) == 1
    assert summary.attrs["send_lag_p99_ms"] == SEND_LAG_WARN_MS + 4


def test_a_punctual_generator_gets_no_warning(recwarn):
    frame = hand_made()
    frame.attrs.update(send_lag_p50_ms=0.05, send_lag_p99_ms=0.4, send_lag_max_ms=0.9)
    assert summarize(frame).attrs["warnings"] == []
    assert summarize(hand_made()).attrs["warnings"] == []  # no lag measured: nothing to say
    assert not recwarn.list
