"""Utilization of local replica processes, read from the OS with psutil, as DataFrames.

The local target describes its processes with ``ProcessRef`` and keeps one ``ProcessSampler``
between calls (CPU use is a difference between two readings). ``by_node`` folds the
by-replica frame into the by-node frame that both targets return.

By replica: ``time, node, replica, pid, cpu_cores, cpu_percent, memory_bytes, in_flight,
served, failed`` and, so that ``by_node`` can compute percentages of requests, the two
trailing columns ``cpu_request_cores`` and ``memory_request_bytes``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import psutil

REPLICA_COLUMNS = (
    "time",
    "node",
    "replica",
    "pid",
    "cpu_cores",
    "cpu_percent",
    "memory_bytes",
    "in_flight",
    "served",
    "failed",
    "cpu_request_cores",
    "memory_request_bytes",
)
NODE_COLUMNS = (
    "time",
    "node",
    "cpu_cores",
    "cpu_percent",
    "memory_bytes",
    "memory_percent",
    "replicas",
    "in_flight",
    "served",
)
_COUNTERS = ("in_flight", "served", "failed")
_REPLICA_DTYPES = {
    "time": "datetime64[ns, UTC]",
    "pid": "int64",
    "cpu_cores": "float64",
    "cpu_percent": "float64",
    "memory_bytes": "int64",
    "in_flight": "Int64",
    "served": "Int64",
    "failed": "Int64",
    "cpu_request_cores": "float64",
    "memory_request_bytes": "int64",
}
_NODE_DTYPES = {
    "time": "datetime64[ns, UTC]",
    "cpu_cores": "float64",
    "cpu_percent": "float64",
    "memory_bytes": "int64",
    "memory_percent": "float64",
    "replicas": "int64",
    "in_flight": "Int64",
    "served": "Int64",
}


@dataclass(frozen=True)
class ProcessRef:
    """One replica process: where it runs, its pid, and what it asked for."""

    node: str
    replica: str
    pid: int
    cpu_request_cores: float
    memory_request_bytes: int


@dataclass(frozen=True)
class ProcessReading:
    """What the OS says about one process; NaN CPU and 0 memory when it is gone."""

    cpu_cores: float
    memory_bytes: int


GONE = ProcessReading(math.nan, 0)


class ProcessSampler:
    """Reads CPU and memory of processes, keeping ``psutil.Process`` objects between calls.

    CPU use is averaged since the previous reading of the same process. The first time a pid
    is seen, the sampler primes it and waits ``prime_interval_s`` before reading, so even the
    first sample is a real measurement (with ``prime_interval_s=0`` it is NaN instead).
    A process that has exited (or is a zombie) reads as NaN CPU and 0 bytes, never as an exception.
    """

    def __init__(self, prime_interval_s: float = 0.1) -> None:
        self.prime_interval_s = prime_interval_s
        self._processes: dict[int, psutil.Process] = {}

    def _prime(self, pids: Iterable[int]) -> set[int]:
        primed = set()
        for pid in pids:
            if pid in self._processes:
                continue
            try:
                process = psutil.Process(pid)
                process.cpu_percent(None)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            self._processes[pid] = process
            primed.add(pid)
        return primed

    def read(self, pids: Iterable[int]) -> dict[int, ProcessReading]:
        """One reading per pid."""
        pids = list(dict.fromkeys(pids))
        primed = self._prime(pids)
        if primed and self.prime_interval_s > 0:
            time.sleep(self.prime_interval_s)
        readings = {}
        for pid in pids:
            process = self._processes.get(pid)
            try:
                if process is None or not process.is_running():  # is_running spots pid reuse
                    raise psutil.NoSuchProcess(pid)
                with process.oneshot():
                    if process.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped
                        raise psutil.NoSuchProcess(pid)
                    cpu_percent = process.cpu_percent(None)
                    rss = process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                self._processes.pop(pid, None)
                readings[pid] = GONE
                continue
            unmeasured = pid in primed and self.prime_interval_s <= 0
            readings[pid] = ProcessReading(
                math.nan if unmeasured else cpu_percent / 100.0, int(rss)
            )
        return readings

    def forget(self, pids: Iterable[int] | None = None) -> None:
        """Drop kept processes (all of them by default)."""
        if pids is None:
            self._processes.clear()
        for pid in pids or ():
            self._processes.pop(pid, None)

    def sample(
        self, refs: Iterable[ProcessRef], balancer_stats: Mapping[str, Any] | None = None
    ) -> pd.DataFrame:
        """One row per replica process, all stamped with the same UTC time.

        ``balancer_stats`` is the balancer's ``GET /-/replicas`` JSON; its ``in_flight``,
        ``served`` and ``failed`` counters are matched by replica name (NA when absent).
        """
        refs = list(refs)
        readings = self.read(ref.pid for ref in refs)
        return replica_frame(pd.Timestamp.now(tz="UTC"), refs, readings, balancer_stats)


def balancer_counters(balancer_stats: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``{replica name: {in_flight, served, failed}}`` from the balancer's ``/-/replicas`` JSON."""
    if not balancer_stats:
        return {}
    counters = {}
    for entry in balancer_stats.get("replicas", []):
        if isinstance(entry, Mapping) and "name" in entry:
            counters[str(entry["name"])] = {key: entry.get(key) for key in _COUNTERS}
    return counters


def replica_frame(
    when: pd.Timestamp,
    refs: list[ProcessRef],
    readings: Mapping[int, ProcessReading],
    balancer_stats: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The by-replica frame from readings (pure: the sampler's side effects stay in ``read``)."""
    counters = balancer_counters(balancer_stats)
    records = []
    for ref in refs:
        reading = readings.get(ref.pid, GONE)
        replica_counters = counters.get(ref.replica, {})
        cpu_percent = (
            reading.cpu_cores / ref.cpu_request_cores * 100.0
            if ref.cpu_request_cores > 0
            else math.nan
        )
        records.append(
            {
                "time": when,
                "node": ref.node,
                "replica": ref.replica,
                "pid": ref.pid,
                "cpu_cores": reading.cpu_cores,
                "cpu_percent": cpu_percent,
                "memory_bytes": reading.memory_bytes,
                **{key: _count(replica_counters.get(key)) for key in _COUNTERS},
                "cpu_request_cores": float(ref.cpu_request_cores),
                "memory_request_bytes": int(ref.memory_request_bytes),
            }
        )
    frame = pd.DataFrame.from_records(records, columns=list(REPLICA_COLUMNS))
    return frame.astype(_REPLICA_DTYPES)


def _count(value: Any) -> Any:
    return pd.NA if value is None else int(value)


def by_node(replica_df: pd.DataFrame) -> pd.DataFrame:
    """Fold a by-replica frame into one row per node per sample time.

    ``cpu_cores`` and ``memory_bytes`` add up over the node's replicas (a replica whose process
    is gone adds nothing; all gone → NaN CPU); ``cpu_percent`` is ``cpu_cores`` over the sum of
    the node's replicas' CPU requests × 100, ``memory_percent`` likewise with memory requests;
    ``in_flight`` / ``served`` add up the balancer counters (NA if the node has none).
    """
    missing = [c for c in REPLICA_COLUMNS if c not in replica_df.columns]
    if missing:
        raise ValueError(
            f"by_node expects a by-replica utilization frame; missing columns {missing}"
        )
    if replica_df.empty:
        return pd.DataFrame(columns=list(NODE_COLUMNS)).astype(_NODE_DTYPES)
    grouped = replica_df.groupby(["time", "node"], sort=True)
    nodes = pd.DataFrame(
        {
            "cpu_cores": grouped["cpu_cores"].sum(min_count=1),
            "cpu_request_cores": grouped["cpu_request_cores"].sum(),
            "memory_bytes": grouped["memory_bytes"].sum(),
            "memory_request_bytes": grouped["memory_request_bytes"].sum(),
            "replicas": grouped.size(),
            "in_flight": grouped["in_flight"].sum(min_count=1),
            "served": grouped["served"].sum(min_count=1),
        }
    ).reset_index()
    requests_cpu = nodes["cpu_request_cores"].where(nodes["cpu_request_cores"] > 0)
    requests_memory = nodes["memory_request_bytes"].where(nodes["memory_request_bytes"] > 0)
    nodes["cpu_percent"] = nodes["cpu_cores"] / requests_cpu * 100.0
    nodes["memory_percent"] = nodes["memory_bytes"] / requests_memory * 100.0
    return nodes[list(NODE_COLUMNS)].astype(_NODE_DTYPES)
