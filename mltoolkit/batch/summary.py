"""Per-replica and per-node summary of a batch run's attempts, pure.

The attempts frame has one row per request tried (``ATTEMPT_COLUMNS``). The summary, like
``mltoolkit.observe.summarize``, has one row ``overall`` and then one per replica (or node),
sorted by name, indexed by ``replica`` (or ``node``):

- ``rows``, ``chunks``: rows and chunks scored (successful attempts);
- ``retries``: failed attempts (an attempt with no answer has no replica: it counts overall);
- ``busy_s``: the summed time of successful requests (answers in flight overlap, so this can
  exceed the run's wall time);
- ``rows_per_s``: ``rows`` over the run's wall time (so the replica rows add up to overall);
- ``share``: this replica's fraction of the rows.
"""

from __future__ import annotations

import pandas as pd

from mltoolkit.errors import SpecError

ATTEMPT_COLUMNS = (
    "start", "rows", "attempt", "replica", "status", "ok", "error", "sent_s", "latency_s",
    "worker", "request_bytes", "response_bytes",
)  # fmt: skip
SUMMARY_COLUMNS = ("node", "rows", "chunks", "retries", "busy_s", "rows_per_s", "share")
OVERALL = "overall"


_ATTEMPT_DTYPES = {
    "start": "int64", "rows": "int64", "attempt": "int64", "status": "int64", "ok": "bool",
    "sent_s": "float64", "latency_s": "float64", "worker": "int64", "request_bytes": "int64",
    "response_bytes": "int64",
}  # fmt: skip


def attempts_frame(records: list[dict[str, object]]) -> pd.DataFrame:
    """The attempts frame from one dict per attempt, typed even when there are none."""
    return pd.DataFrame(records, columns=list(ATTEMPT_COLUMNS)).astype(_ATTEMPT_DTYPES)


def _row(group: pd.DataFrame, elapsed_s: float, total_rows: int) -> dict[str, float]:
    ok = group[group["ok"].astype(bool)]
    rows = int(ok["rows"].sum())
    return {
        "rows": rows,
        "chunks": len(ok),
        "retries": int((~group["ok"].astype(bool)).sum()),
        "busy_s": float(ok["latency_s"].sum()),
        "rows_per_s": rows / elapsed_s if elapsed_s > 0 else float("nan"),
        "share": rows / total_rows if total_rows else float("nan"),
    }


def summarize_batch(
    attempts: pd.DataFrame,
    *,
    nodes: dict[str, str] | None = None,
    by: str = "replica",
    elapsed_s: float | None = None,
) -> pd.DataFrame:
    """``overall`` then one row per replica (``by="replica"``, with its ``node`` when ``nodes``
    maps replica names to nodes) or per node (``by="node"``)."""
    if by not in ("replica", "node"):
        raise SpecError("summary.by", by, "'replica' or 'node'")
    missing = [c for c in ("rows", "replica", "ok", "sent_s", "latency_s") if c not in attempts.columns]
    if missing:
        raise ValueError(f"expected a batch attempts frame; missing columns {missing}")
    nodes = nodes or {}
    if elapsed_s is None:
        elapsed_s = (
            float((attempts["sent_s"] + attempts["latency_s"]).max() - attempts["sent_s"].min())
            if len(attempts)
            else 0.0
        )
    total = int(attempts.loc[attempts["ok"].astype(bool), "rows"].sum())
    frame = attempts.assign(node=attempts["replica"].map(lambda r: nodes.get(r) if r is not None else None))
    rows = {OVERALL: {"node": None, **_row(frame, elapsed_s, total)}}
    key = "replica" if by == "replica" else "node"
    known = frame[frame[key].notna()]
    for name in sorted(known[key].unique(), key=str):
        group = known[known[key] == name]
        node = nodes.get(name) if by == "replica" else name
        rows[str(name)] = {"node": node, **_row(group, elapsed_s, total)}
    summary = pd.DataFrame.from_dict(rows, orient="index", columns=list(SUMMARY_COLUMNS))
    summary = summary.astype({"rows": "int64", "chunks": "int64", "retries": "int64"})
    if by == "node":
        summary = summary.drop(columns="node")
    summary.index.name = key
    return summary
