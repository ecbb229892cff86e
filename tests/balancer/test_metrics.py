"""Served-traffic counts and histograms: pure rendering, and the /-/metrics route with real traffic."""

from __future__ import annotations

import asyncio
import math
import re

import pytest

from mltoolkit.balancer import ReplicaTarget
from mltoolkit.balancer.metrics import BUCKETS_S, ReplicaTraffic, metrics_document, prometheus_text, quantile


def test_observations_land_in_their_buckets_and_status_classes():
    traffic = ReplicaTraffic("a", node="n0")
    for latency, status in [(0.0004, 200), (0.003, 200), (0.003, 404), (0.7, 503), (60.0, 0)]:
        traffic.observe(latency, status)
    assert traffic.count == 5 and traffic.errors == 2  # the 503 and the unanswered one
    assert traffic.by_status == {"2xx": 2, "3xx": 0, "4xx": 1, "5xx": 1, "none": 1}
    assert traffic.buckets[0] == 1  # <= 0.5 ms
    assert traffic.buckets[BUCKETS_S.index(0.005)] == 2  # (2 ms, 5 ms]
    assert traffic.buckets[BUCKETS_S.index(1.0)] == 1
    assert traffic.buckets[-1] == 1  # above the last bound: +Inf
    assert traffic.sum_s == pytest.approx(60.7064)


def test_quantiles_interpolate_inside_the_bucket():
    buckets = [0] * (len(BUCKETS_S) + 1)
    buckets[BUCKETS_S.index(0.01)] = 100  # 100 answers in (5 ms, 10 ms]
    assert quantile(0.5, buckets) == pytest.approx(0.0075)
    assert quantile(0.99, buckets) == pytest.approx(0.00995)
    assert quantile(0.5, [0] * len(buckets)) is None


def test_prometheus_text_is_cumulative_and_labelled():
    a = ReplicaTraffic("a", node="n0")
    for latency in (0.0004, 0.003, 0.003):
        a.observe(latency, 200)
    text = prometheus_text([a, ReplicaTraffic('b"x', node="")], in_flight={"a": 2})
    assert 'mltoolkit_balancer_requests_total{replica="a",node="n0",code="2xx"} 3' in text
    assert 'mltoolkit_balancer_request_duration_seconds_bucket{replica="a",node="n0",le="0.0005"} 1' in text
    assert 'mltoolkit_balancer_request_duration_seconds_bucket{replica="a",node="n0",le="0.005"} 3' in text
    assert 'mltoolkit_balancer_request_duration_seconds_bucket{replica="a",node="n0",le="+Inf"} 3' in text
    assert 'mltoolkit_balancer_request_duration_seconds_count{replica="a",node="n0"} 3' in text
    assert 'mltoolkit_balancer_in_flight{replica="a",node="n0"} 2' in text
    assert 'replica="b\\"x"' in text  # label values escaped
    # every sample line is NAME{LABELS} VALUE, as a scraper parses it
    sample = re.compile(r'^[a-z_]+\{([a-z]+="([^"\\]|\\.)*",?)+\} [0-9.e+-]+$')
    for line in text.splitlines():
        assert line.startswith("# ") or sample.match(line), line


def test_the_json_document_has_a_row_per_replica():
    a = ReplicaTraffic("a", node="n0")
    a.observe(0.008, 200)
    doc = metrics_document([a])
    [row] = doc["replicas"]
    assert (row["replica"], row["node"], row["count"], row["errors"]) == ("a", "n0", 1, 0)
    assert 0.005 < row["p50_s"] <= 0.01 and doc["buckets_s"] == list(BUCKETS_S)


@pytest.mark.anyio
async def test_the_metrics_route_counts_real_traffic(replicas, start_balancer, client):
    a = await replicas("a")
    b = await replicas("b", delay_s=0.05)
    lb = await start_balancer(
        [ReplicaTarget("a", a.url, node="n0"), ReplicaTarget("b", b.url, node="n1")],
        policy="round_robin",
    )
    for _ in range(3):
        async with client.post(lb.url + "/predict", json={"instances": [[1]]}) as response:
            assert response.status == 200
    async with client.get(lb.url + "/status/500") as response:
        assert response.status == 500
    async with client.get(lb.url + "/-/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    # round robin: a, b, a got the predictions, b the 500
    assert 'mltoolkit_balancer_requests_total{replica="a",node="n0",code="2xx"} 2' in text
    assert 'mltoolkit_balancer_requests_total{replica="b",node="n1",code="2xx"} 1' in text
    assert 'mltoolkit_balancer_requests_total{replica="b",node="n1",code="5xx"} 1' in text
    # b's prediction took 50 ms or more: not in any bucket up to 0.02 s
    assert 'mltoolkit_balancer_request_duration_seconds_bucket{replica="b",node="n1",le="0.02"} 1' in text
    async with client.get(lb.url + "/-/metrics?format=json") as response:
        doc = await response.json()
    rows = {row["replica"]: row for row in doc["replicas"]}
    assert (rows["a"]["count"], rows["b"]["count"], rows["b"]["errors"]) == (2, 2, 1)
    assert rows["b"]["p99_s"] >= 0.05 > rows["a"]["p50_s"]
    assert a.received.count("/predict") == 2
    await asyncio.sleep(0)
    assert not math.isnan(rows["a"]["sum_s"])
