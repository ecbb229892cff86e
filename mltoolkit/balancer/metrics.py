"""Counts and latency histograms of the traffic the balancer serves, per replica (pure).

Every attempt on a replica is observed once: its latency (sent to answered, or to the failure)
and its status (0 when no answer came: connection lost, timeout). The histograms have fixed
buckets, so several balancers' documents add up, and a window is the difference of two
snapshots. ``prometheus_text`` renders them in the Prometheus text exposition format (served at
``GET /-/metrics``); ``metrics_document`` as JSON (``GET /-/metrics?format=json``), with p50, p90
and p99 estimated from the buckets as Prometheus's ``histogram_quantile`` does.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

# upper bounds in seconds; a last bucket (+Inf) takes the rest
BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
)  # fmt: skip
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "none")


@dataclass
class ReplicaTraffic:
    """What one replica served: counts by status class, and a latency histogram."""

    name: str
    node: str = ""
    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUS_CLASSES, 0))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))
    sum_s: float = 0.0
    count: int = 0
    hedged: int = 0  # attempts sent to it as a hedge of a request stuck elsewhere

    def observe(self, latency_s: float, status: int, times: int = 1) -> None:
        """``times`` answers, each of ``latency_s`` and ``status`` (0: none)."""
        self.count += times
        self.sum_s += latency_s * times
        self.buckets[bisect.bisect_left(BUCKETS_S, latency_s)] += times
        self.by_status["none" if status == 0 else f"{min(status // 100, 5)}xx"] += times

    @property
    def errors(self) -> int:
        """Attempts answered 5xx or not answered at all."""
        return self.by_status["5xx"] + self.by_status["none"]


def quantile(q: float, buckets: Sequence[int], bounds: Sequence[float] = BUCKETS_S) -> float | None:
    """The ``q`` quantile estimated from bucket counts (not cumulative), interpolating linearly
    inside the bucket it falls in; None without observations. In the +Inf bucket: the last bound."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(buckets):
        if count and seen + count >= rank:
            if i >= len(bounds):
                return bounds[-1]
            low = bounds[i - 1] if i > 0 else 0.0
            return low + (bounds[i] - low) * (rank - seen) / count
        seen += count
    return bounds[-1]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def prometheus_text(traffic: Iterable[ReplicaTraffic], in_flight: dict[str, int]) -> str:
    """The exposition format (version 0.0.4) of every replica's traffic."""
    rows = list(traffic)
    lines = [
        "# HELP mltoolkit_balancer_requests_total Attempts sent to each replica, by status class "
        "(none: no answer).",
        "# TYPE mltoolkit_balancer_requests_total counter",
    ]
    for r in rows:
        for status in STATUS_CLASSES:
            lines.append(f'mltoolkit_balancer_requests_total{{replica="{_label(r.name)}",'
                         f'node="{_label(r.node)}",code="{status}"}} {r.by_status[status]}')  # fmt: skip
    lines += [
        "# HELP mltoolkit_balancer_request_duration_seconds Latency of attempts on each replica, "
        "sent to answered.",
        "# TYPE mltoolkit_balancer_request_duration_seconds histogram",
    ]
    for r in rows:
        labels = f'replica="{_label(r.name)}",node="{_label(r.node)}"'
        cumulative = 0
        for bound, count in zip([*BUCKETS_S, math.inf], r.buckets):
            cumulative += count
            lines.append(f'mltoolkit_balancer_request_duration_seconds_bucket{{{labels},'
                         f'le="{_number(bound)}"}} {cumulative}')  # fmt: skip
        lines.append(f"mltoolkit_balancer_request_duration_seconds_sum{{{labels}}} {_number(r.sum_s)}")
        lines.append(f"mltoolkit_balancer_request_duration_seconds_count{{{labels}}} {r.count}")
    lines += [
        "# HELP mltoolkit_balancer_hedged_total Attempts sent to each replica as a hedge.",
        "# TYPE mltoolkit_balancer_hedged_total counter",
    ]
    for r in rows:
        lines.append(f'mltoolkit_balancer_hedged_total{{replica="{_label(r.name)}",'
                     f'node="{_label(r.node)}"}} {r.hedged}')  # fmt: skip
    lines += [
        "# HELP mltoolkit_balancer_in_flight Attempts in flight on each replica now.",
        "# TYPE mltoolkit_balancer_in_flight gauge",
    ]
    for r in rows:
        lines.append(f'mltoolkit_balancer_in_flight{{replica="{_label(r.name)}",'
                     f'node="{_label(r.node)}"}} {in_flight.get(r.name, 0)}')  # fmt: skip
    return "\n".join(lines) + "\n"


def metrics_document(traffic: Iterable[ReplicaTraffic]) -> dict[str, Any]:
    """The same as JSON: one row per replica, ready for ``pandas.DataFrame(doc["replicas"])``."""
    return {
        "buckets_s": list(BUCKETS_S),
        "replicas": [
            {
                "replica": r.name,
                "node": r.node,
                "count": r.count,
                "errors": r.errors,
                "hedged": r.hedged,
                "by_status": dict(r.by_status),
                "bucket_counts": list(r.buckets),
                "sum_s": r.sum_s,
                "p50_s": quantile(0.5, r.buckets),
                "p90_s": quantile(0.9, r.buckets),
                "p99_s": quantile(0.99, r.buckets),
            }
            for r in traffic
        ],
    }
