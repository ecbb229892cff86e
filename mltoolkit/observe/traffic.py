"""The latency of real traffic, as the balancers saw it, as DataFrames (pure).

Every balancer keeps, per replica, counts by status class and a latency histogram with fixed
buckets of the traffic it served (``mltoolkit.balancer.metrics``; ``GET /-/metrics?format=json``).
Fixed buckets add up, so:

- K balancers (K local processes, or the balancer tier's pods on GKE) are summed
  (``traffic_snapshot``);
- a window is the difference of two snapshots (``traffic_window``); a replica whose counts went
  down between them (its balancer restarted and started from zero) counts from zero;
- p50/p90/p99 are estimated from the summed buckets as Prometheus's ``histogram_quantile`` does
  (``latency_frame``), per replica or per node.

``read_latency`` is ``target.latency()`` of both targets, given how to read a snapshot.
``merge_replica_reports`` does the same for the balancers' ``GET /-/replicas`` documents (the
counters ``utilization()`` shows), and ``node_counters`` sums them per node.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from mltoolkit.balancer.metrics import BUCKETS_S, quantile
from mltoolkit.errors import SpecError

#: ``latency()`` by replica; by node, ``replica`` is left out and ``replicas`` (a count) added
LATENCY_COLUMNS = [
    "time", "replica", "node", "window_s", "count", "errors", "error_rate", "throughput_rps",
    "p50_ms", "p90_ms", "p99_ms", "mean_ms",
]  # fmt: skip
LATENCY_NODE_COLUMNS = [
    "time", "node", "replicas", "window_s", "count", "errors", "error_rate", "throughput_rps",
    "p50_ms", "p90_ms", "p99_ms", "mean_ms",
]  # fmt: skip
_SUMMED = ("in_flight", "served", "failed")


@dataclass(frozen=True)
class ReplicaCounts:
    """What the balancers served on one replica: attempts, errors, latency buckets and sum."""

    replica: str
    node: str
    count: int
    errors: int
    buckets: tuple[int, ...]
    sum_s: float

    def __add__(self, other: ReplicaCounts) -> ReplicaCounts:
        return ReplicaCounts(
            self.replica, self.node or other.node, self.count + other.count, self.errors + other.errors,
            tuple(a + b for a, b in zip(self.buckets, other.buckets)), self.sum_s + other.sum_s,
        )  # fmt: skip

    def __sub__(self, other: ReplicaCounts) -> ReplicaCounts:
        if self.count < other.count or any(a < b for a, b in zip(self.buckets, other.buckets)):
            return self  # counted from zero again since (a restarted balancer)
        return ReplicaCounts(
            self.replica, self.node, self.count - other.count, self.errors - other.errors,
            tuple(a - b for a, b in zip(self.buckets, other.buckets)), max(0.0, self.sum_s - other.sum_s),
        )  # fmt: skip


@dataclass(frozen=True)
class TrafficSnapshot:
    """The balancers' counters at one moment (``at``: seconds on any monotonic clock), summed."""

    at: float
    replicas: dict[str, ReplicaCounts]
    balancers: int = 1


def _counts(row: Mapping[str, Any]) -> ReplicaCounts:
    buckets = tuple(int(b) for b in row.get("bucket_counts") or ())
    if len(buckets) != len(BUCKETS_S) + 1:
        raise ValueError(
            f"replica {row.get('replica')!r}: {len(buckets)} latency buckets, expected {len(BUCKETS_S) + 1} "
            "(a balancer of another version?)"
        )
    return ReplicaCounts(
        replica=str(row["replica"]), node=str(row.get("node") or ""), count=int(row.get("count") or 0),
        errors=int(row.get("errors") or 0), buckets=buckets, sum_s=float(row.get("sum_s") or 0.0),
    )  # fmt: skip


def traffic_snapshot(documents: Sequence[Mapping[str, Any]], at: float) -> TrafficSnapshot:
    """K balancers' ``GET /-/metrics?format=json`` documents summed per replica."""
    replicas: dict[str, ReplicaCounts] = {}
    for document in documents:
        if list(document.get("buckets_s", BUCKETS_S)) != list(BUCKETS_S):
            raise ValueError(f"latency buckets {document.get('buckets_s')} differ from {list(BUCKETS_S)}")
        for row in document.get("replicas", []):
            counts = _counts(row)
            known = replicas.get(counts.replica)
            replicas[counts.replica] = counts if known is None else known + counts
    return TrafficSnapshot(at=at, replicas=replicas, balancers=len(documents))


def traffic_window(before: TrafficSnapshot, after: TrafficSnapshot) -> TrafficSnapshot:
    """What was served between two snapshots (``at`` becomes the window's length)."""
    empty = (0,) * (len(BUCKETS_S) + 1)
    replicas = {
        name: counts - before.replicas.get(name, ReplicaCounts(name, counts.node, 0, 0, empty, 0.0))
        for name, counts in after.replicas.items()
    }
    return TrafficSnapshot(at=after.at - before.at, replicas=replicas, balancers=after.balancers)


def _row(counts: ReplicaCounts, window_s: float | None) -> dict[str, Any]:
    def ms(q: float) -> float | None:
        value = quantile(q, counts.buckets)
        return None if value is None else value * 1000

    return {
        "window_s": window_s,
        "count": counts.count,
        "errors": counts.errors,
        "error_rate": counts.errors / counts.count if counts.count else None,
        "throughput_rps": counts.count / window_s if window_s else None,
        "p50_ms": ms(0.5),
        "p90_ms": ms(0.9),
        "p99_ms": ms(0.99),
        "mean_ms": counts.sum_s / counts.count * 1000 if counts.count else None,
    }


_FLOATS = ("window_s", "error_rate", "throughput_rps", "p50_ms", "p90_ms", "p99_ms", "mean_ms")


def latency_frame(
    snapshot: TrafficSnapshot, window_s: float | None = None, by: str = "replica", time: Any = None
) -> pd.DataFrame:
    """One row per replica (sorted by name), or per node with ``by="node"`` (buckets summed over
    its replicas, then the quantiles): ``LATENCY_COLUMNS`` / ``LATENCY_NODE_COLUMNS``.

    ``window_s``: the length of the window the counts cover (None: since the balancers started;
    ``throughput_rps`` is then NA). Quantiles and rates are NaN where nothing was served.
    """
    if by not in ("replica", "node"):
        raise ValueError(f"by must be 'replica' or 'node', not {by!r}")
    stamp = pd.Timestamp.now(tz="UTC") if time is None else pd.Timestamp(time)
    replicas = [snapshot.replicas[name] for name in sorted(snapshot.replicas)]
    if by == "replica":
        rows = [{"time": stamp, "replica": c.replica, "node": c.node, **_row(c, window_s)} for c in replicas]
        columns = LATENCY_COLUMNS
    else:
        nodes: dict[str, tuple[int, ReplicaCounts]] = {}
        for counts in replicas:
            known = nodes.get(counts.node)
            nodes[counts.node] = (1, counts) if known is None else (known[0] + 1, known[1] + counts)
        rows = [
            {"time": stamp, "node": node, "replicas": n, **_row(counts, window_s)}
            for node, (n, counts) in sorted(nodes.items())
        ]
        columns = LATENCY_NODE_COLUMNS
    frame = pd.DataFrame(rows, columns=columns)
    for column in _FLOATS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in ("count", "errors") + (("replicas",) if by == "node" else ()):
        frame[column] = frame[column].astype("int64")
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame.attrs["balancers"] = snapshot.balancers
    return frame


def merge_replica_reports(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """K balancers' ``GET /-/replicas`` documents as one: per replica (in order of first sight),
    ``in_flight``, ``served`` and ``failed`` summed, ``healthy`` only if every balancer that lists
    it has it in rotation. One balancer's document comes back unchanged."""
    if not reports:
        raise ValueError("no balancer report to merge")
    if len(reports) == 1:
        return dict(reports[0])
    merged: dict[str, dict[str, Any]] = {}
    for report in reports:
        for row in report.get("replicas", []):
            name = row["name"]
            if name not in merged:
                merged[name] = dict(row)
                continue
            total = merged[name]
            for key in _SUMMED:
                total[key] = (total.get(key) or 0) + (row.get(key) or 0)
            total["healthy"] = bool(total.get("healthy")) and bool(row.get("healthy"))
    return {"policy": reports[0].get("policy"), "balancers": len(reports), "replicas": list(merged.values())}


def node_counters(report: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """``{node: {"in_flight", "served"}}`` summed over the replicas of a (merged) ``/-/replicas``."""
    nodes: dict[str, dict[str, int]] = {}
    for row in report.get("replicas", []):
        node = nodes.setdefault(str(row.get("node") or ""), {"in_flight": 0, "served": 0})
        node["in_flight"] += int(row.get("in_flight") or 0)
        node["served"] += int(row.get("served") or 0)
    return nodes


def fill_node_counters(frame: pd.DataFrame, report: Mapping[str, Any] | None) -> pd.DataFrame:
    """The "Utilization, by node" frame with ``in_flight`` and ``served`` from the balancers'
    merged ``/-/replicas`` (a node they route nothing to: 0; without a report: left NA)."""
    if report is None:
        return frame
    counters = node_counters(report)
    out = frame.copy()
    for column in ("in_flight", "served"):
        values = [counters.get(str(node), {}).get(column, 0) for node in out["node"]]
        out[column] = pd.array(values, dtype="Int64")
    return out



def check_latency_args(window_s: Any, by: Any) -> float | None:
    """``latency()``'s arguments, checked before anything is read."""
    if by not in ("replica", "node"):
        raise SpecError("latency.by", by, "'replica' or 'node'")
    if window_s is None:
        return None
    if isinstance(window_s, bool) or not isinstance(window_s, (int, float)) or not 0 < window_s <= 3600:
        raise SpecError("latency.window_s", window_s, "None (since the balancers started) or seconds, more than 0 and at most 3600")
    return float(window_s)


def read_latency(
    read: Callable[[], TrafficSnapshot],
    window_s: Any = None,
    by: Any = "replica",
    sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """``latency()`` of both targets: one reading (``window_s`` None: everything since the
    balancers started), or two ``window_s`` apart and their difference."""
    window = check_latency_args(window_s, by)
    first = read()
    if window is None:
        return latency_frame(first, None, by)
    sleep(window)
    served = traffic_window(first, read())
    return latency_frame(served, served.at, by)
