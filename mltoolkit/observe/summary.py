"""Summaries of load-test and utilization frames, pure.

Definitions used throughout:

- an *error* is a row with ``status`` 0 (no HTTP answer) or ``status >= 400``; every other
  row is a *success*;
- the *test span* is ``max(scheduled_s + latency_s) - min(scheduled_s)`` over the whole frame:
  from the first scheduled send to the last answer. ``throughput_rps`` is successes divided
  by that span, for the overall row and for each replica alike (so replica throughputs add up
  to the overall one);
- percentiles are over successful requests' latencies, linearly interpolated (numpy's default
  method), in milliseconds; NaN when there are no successes;
- the *send lag* is how late the load generator itself sent requests after their scheduled
  times (``load_test`` puts its p50/p99/max in the frame's ``attrs``); latencies include it, so
  ``summarize`` warns when its p99 exceeds ``SEND_LAG_WARN_MS``;
- *balance* is the coefficient of variation (population standard deviation / mean) of a
  quantity across replicas or nodes: 0 is perfectly even, larger is less even.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

SUMMARY_COLUMNS = (
    "count",
    "errors",
    "error_rate",
    "throughput_rps",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
)
PERCENTILES = (50, 90, 95, 99)
OVERALL = "overall"
_LOAD_TEST_COLUMNS = ("scheduled_s", "latency_s", "status", "replica")
SEND_LAG_WARN_MS = 1.0
"""A generator whose p99 send lag exceeds this adds more than the accuracy one can expect of
it (``benchmarks/loadgen.py``: p99 within 1 ms of a reference) to the latencies it reports."""


class SendLagWarning(UserWarning):
    """The load generator fell behind its schedule: its latencies include its own lag."""


def send_lag_warning(attrs: dict, limit_ms: float = SEND_LAG_WARN_MS) -> str | None:
    """The warning for a load test whose generator lagged more than ``limit_ms`` at p99."""
    p99 = attrs.get("send_lag_p99_ms")
    if not isinstance(p99, (int, float)) or math.isnan(p99) or p99 <= limit_ms:
        return None
    worst = attrs.get("send_lag_max_ms", float("nan"))
    return (
        f"the load generator itself sent late: send lag p99 {p99:.2f} ms (max {worst:.1f} ms) "
        f"exceeds {limit_ms:g} ms, and every latency counts from the scheduled time, so the "
        "latencies include it; lower the rate, or run the test where the generator has a core "
        "of its own"
    )


def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a DataFrame ({what}), got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"expected {what} with columns {list(columns)}; missing {missing} "
            f"(has {list(frame.columns)})"
        )


def is_error(frame: pd.DataFrame) -> pd.Series:
    """True where a request failed: no HTTP answer (status 0) or an HTTP status >= 400."""
    status = frame["status"]
    return (status == 0) | (status >= 400)


def span_s(frame: pd.DataFrame) -> float:
    """From the first scheduled send to the last answer, in seconds (NaN without answers)."""
    if frame.empty:
        return float("nan")
    last = (frame["scheduled_s"] + frame["latency_s"]).max()
    return float(last - frame["scheduled_s"].min())


def _row(group: pd.DataFrame, span: float) -> dict[str, float]:
    errors = is_error(group)
    latencies_ms = group.loc[~errors, "latency_s"].dropna().to_numpy(dtype=float) * 1000.0
    count = len(group)
    successes = int((~errors).sum())
    row: dict[str, float] = {
        "count": count,
        "errors": int(errors.sum()),
        "error_rate": float(errors.sum() / count) if count else float("nan"),
        "throughput_rps": successes / span if span > 0 else float("nan"),
    }
    if len(latencies_ms):
        for q, value in zip(PERCENTILES, np.percentile(latencies_ms, PERCENTILES), strict=True):
            row[f"p{q}_ms"] = float(value)
        row["max_ms"] = float(latencies_ms.max())
    else:
        row.update({f"p{q}_ms": float("nan") for q in PERCENTILES} | {"max_ms": float("nan")})
    return row


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row ``overall``, then one per replica (sorted by name); see the module docstring.

    ``throughput_rps`` = successes / test span, the span being ``max(scheduled_s + latency_s)
    - min(scheduled_s)`` of the whole test (also for replica rows); percentiles and ``max_ms``
    are over successes only. Rows without a replica (no HTTP answer, or no ``X-Replica``
    header) count only overall. The generator's send lag (from ``df.attrs``) is copied to the
    summary's ``attrs``; above ``SEND_LAG_WARN_MS`` at p99 a ``SendLagWarning`` is issued and
    its text kept in ``attrs["warnings"]``.
    """
    _require(df, _LOAD_TEST_COLUMNS, "a load_test frame")
    span = span_s(df)
    rows = {OVERALL: _row(df, span)}
    answered = df[df["replica"].notna()]
    for replica in sorted(answered["replica"].unique(), key=str):
        rows[str(replica)] = _row(answered[answered["replica"] == replica], span)
    summary = pd.DataFrame.from_dict(rows, orient="index", columns=list(SUMMARY_COLUMNS))
    summary = summary.astype({"count": "int64", "errors": "int64"})
    summary.index.name = "replica"
    message = send_lag_warning(df.attrs)
    summary.attrs["warnings"] = [message] if message else []
    for key in ("send_lag_p50_ms", "send_lag_p99_ms", "send_lag_max_ms"):
        if key in df.attrs:
            summary.attrs[key] = df.attrs[key]
    if message:
        warnings.warn(message, SendLagWarning, stacklevel=2)
    return summary


def served_per_replica(frame: pd.DataFrame, replicas: Iterable[str] | None = None) -> pd.Series:
    """Requests served by each replica, sorted by name.

    From a ``load_test`` frame: its successful requests per ``replica``. From a by-replica
    utilization frame: each replica's latest ``served`` counter (the balancer's count since it
    started). Names in ``replicas`` that served nothing appear with 0.
    """
    if isinstance(frame, pd.DataFrame) and "latency_s" in frame.columns:
        _require(frame, _LOAD_TEST_COLUMNS, "a load_test frame")
        ok = frame[~is_error(frame) & frame["replica"].notna()]
        counts = ok.groupby("replica").size().astype("int64")
    else:
        _require(
            frame, ("replica", "served"), "a load_test frame or a by-replica utilization frame"
        )
        ordered = frame.sort_values("time") if "time" in frame.columns else frame
        known = ordered[ordered["served"].notna()]
        counts = known.groupby("replica")["served"].last().astype("int64")
    counts.index = counts.index.astype(str)
    if replicas is not None:
        counts = counts.reindex(
            sorted(set(counts.index) | {str(r) for r in replicas}), fill_value=0
        )
    counts.index.name = "replica"
    counts.name = "served"
    return counts.sort_index()


def coefficient_of_variation(values: Iterable[float]) -> float:
    """Population standard deviation / mean; 0 for one value, NaN for none or a zero mean."""
    array = np.asarray(list(values), dtype=float)
    array = array[~np.isnan(array)]
    if len(array) == 0 or array.mean() == 0:
        return float("nan")
    return float(array.std(ddof=0) / array.mean())


def utilization_balance(util: pd.DataFrame, column: str = "cpu_percent") -> float:
    """Balance across nodes: CV of each node's mean ``column`` over the samples."""
    _require(util, ("node", column), "a by-node utilization frame")
    return coefficient_of_variation(util.groupby("node")[column].mean())


def balance(frame: pd.DataFrame, replicas: Iterable[str] | None = None) -> float:
    """The balance indicator: CV of requests served per replica (0 = perfectly even).

    Accepts a ``load_test`` frame or a by-replica utilization frame (see
    ``served_per_replica``; ``replicas`` adds names that served nothing). A by-node
    utilization frame (no ``replica`` column) gives ``utilization_balance`` of its CPU.
    """
    if (
        isinstance(frame, pd.DataFrame)
        and "replica" not in frame.columns
        and "node" in frame.columns
    ):
        return utilization_balance(frame)
    return coefficient_of_variation(served_per_replica(frame, replicas))
