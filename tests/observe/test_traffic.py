"""The latency of real traffic from the balancers' documents (pure)."""

import math

import pandas as pd
import pytest

from mltoolkit.balancer.metrics import BUCKETS_S, ReplicaTraffic, metrics_document
from mltoolkit.observe.traffic import (
    LATENCY_COLUMNS,
    LATENCY_NODE_COLUMNS,
    fill_node_counters,
    latency_frame,
    merge_replica_reports,
    node_counters,
    traffic_snapshot,
    traffic_window,
)


def document(*replicas):
    """A balancer's /-/metrics?format=json, from (name, node, [(latency_s, status), ...])."""
    traffic = []
    for name, node, observations in replicas:
        replica = ReplicaTraffic(name, node)
        for latency_s, status in observations:
            replica.observe(latency_s, status)
        traffic.append(replica)
    return metrics_document(traffic)


def test_k_balancers_add_up_per_replica_and_quantiles_come_from_the_summed_buckets():
    # balancer 0 saw a fast; balancer 1 saw a slow and b; together a's p50 sits between
    first = document(("a", "node-0", [(0.003, 200)] * 90), ("b", "node-1", [(0.04, 200)] * 10))
    second = document(("a", "node-0", [(0.3, 200)] * 10 + [(0.0, 0)]), ("b", "node-1", [(0.04, 503)] * 5))
    snapshot = traffic_snapshot([first, second], at=10.0)
    assert snapshot.balancers == 2
    frame = latency_frame(snapshot, time="2026-01-01T00:00:00Z")
    assert list(frame.columns) == LATENCY_COLUMNS
    rows = frame.set_index("replica")
    assert rows.loc["a", "count"] == 101 and rows.loc["a", "errors"] == 1  # no answer counts as an error
    assert rows.loc["b", "count"] == 15 and rows.loc["b", "errors"] == 5
    assert rows.loc["a", "node"] == "node-0"
    # 90 of 101 at 3 ms: p50 in the (2, 5] ms bucket, p99 in the (200, 500] ms one
    assert 2.0 < rows.loc["a", "p50_ms"] <= 5.0
    assert 200.0 < rows.loc["a", "p99_ms"] <= 500.0
    assert 20.0 < rows.loc["b", "p90_ms"] <= 50.0
    assert rows.loc["b", "error_rate"] == pytest.approx(5 / 15)
    assert rows.loc["a", "mean_ms"] == pytest.approx((90 * 3 + 10 * 300) / 101)
    assert math.isnan(rows.loc["a", "throughput_rps"])  # no window: since the balancers started
    assert str(frame["time"].dt.tz) == "UTC" and frame["count"].dtype == "int64"


def test_a_window_is_the_difference_of_two_snapshots_and_a_restart_counts_from_zero():
    before = traffic_snapshot([document(("a", "n", [(0.003, 200)] * 50), ("b", "n", [(0.003, 200)] * 40))], at=100.0)
    after = traffic_snapshot([document(
        ("a", "n", [(0.003, 200)] * 50 + [(0.7, 200)] * 20),  # 20 slow ones in the window
        ("b", "n", [(0.04, 200)] * 5),  # fewer than before: its balancer restarted
        ("c", "n", [(0.01, 200)] * 4),  # new since
    )], at=104.0)  # fmt: skip
    window = traffic_window(before, after)
    assert window.at == 4.0
    frame = latency_frame(window, window_s=window.at).set_index("replica")
    assert list(frame["count"]) == [20, 5, 4]
    assert 500.0 < frame.loc["a", "p50_ms"] <= 1000.0  # only the window's slow requests
    assert frame.loc["a", "throughput_rps"] == pytest.approx(5.0)
    assert 20.0 < frame.loc["b", "p50_ms"] <= 50.0


def test_by_node_sums_the_buckets_of_its_replicas_and_an_idle_replica_has_no_quantiles():
    snapshot = traffic_snapshot([document(
        ("a", "node-0", [(0.003, 200)] * 10), ("b", "node-0", [(0.3, 200)] * 10), ("c", "node-1", []),
    )], at=0.0)  # fmt: skip
    frame = latency_frame(snapshot, window_s=2.0, by="node")
    assert list(frame.columns) == LATENCY_NODE_COLUMNS
    assert list(frame["node"]) == ["node-0", "node-1"] and list(frame["replicas"]) == [2, 1]
    node0 = frame.iloc[0]
    assert node0["count"] == 20 and 2.0 < node0["p50_ms"] <= 5.0 + 1e-9 and node0["p99_ms"] > 200
    assert frame.iloc[1]["count"] == 0 and math.isnan(frame.iloc[1]["p50_ms"])
    with pytest.raises(ValueError, match="by must be"):
        latency_frame(snapshot, by="pod")


def test_documents_with_other_buckets_are_refused():
    bad = document(("a", "n", [(0.003, 200)]))
    bad["buckets_s"] = [0.1, 1.0]
    with pytest.raises(ValueError, match="latency buckets"):
        traffic_snapshot([bad], at=0.0)
    assert len(BUCKETS_S) + 1 == len(document(("a", "n", []))["replicas"][0]["bucket_counts"])


def row(name, node, healthy, in_flight, served, failed):
    return {"name": name, "url": "u", "node": node, "healthy": healthy, "in_flight": in_flight,
            "served": served, "failed": failed}  # fmt: skip


def test_replica_reports_merge_and_sum_per_node():
    first = {"policy": "ewma", "replicas": [row("a", "n0", True, 1, 10, 0), row("b", "n1", True, 0, 5, 1)]}
    second = {"policy": "ewma", "replicas": [row("a", "n0", True, 2, 7, 1), row("b", "n1", False, 1, 3, 0),
                                             row("c", "n1", True, 0, 2, 0)]}  # fmt: skip
    merged = merge_replica_reports([first, second])
    assert merged["balancers"] == 2 and merged["policy"] == "ewma"
    assert [(r["name"], r["healthy"], r["in_flight"], r["served"], r["failed"]) for r in merged["replicas"]] == [
        ("a", True, 3, 17, 1), ("b", False, 1, 8, 1), ("c", True, 0, 2, 0),
    ]  # fmt: skip
    assert merge_replica_reports([first]) == first
    assert node_counters(merged) == {"n0": {"in_flight": 3, "served": 17}, "n1": {"in_flight": 1, "served": 10}}

    nodes = pd.DataFrame({"node": ["n0", "n1", "n2"], "in_flight": pd.array([pd.NA] * 3, dtype="Int64"),
                          "served": pd.array([pd.NA] * 3, dtype="Int64")})  # fmt: skip
    filled = fill_node_counters(nodes, merged)
    assert list(filled["in_flight"]) == [3, 1, 0] and list(filled["served"]) == [17, 10, 0]
    assert str(filled["served"].dtype) == "Int64"
    assert fill_node_counters(nodes, None)["served"].isna().all()
