"""The K balancers of a local target seen as one: their ``GET /-/replicas`` documents merged.

Each balancer counts only the requests it routed; a replica's ``in_flight``, ``served`` and
``failed`` across the endpoint are the sums over the balancers, and it is ``healthy`` only when
every balancer has it in rotation. One balancer's document comes back unchanged.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

SUMMED = ("in_flight", "served", "failed")


def merge_replica_reports(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One ``/-/replicas`` document from K balancers' (replicas in the first one's order)."""
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
            for key in SUMMED:
                total[key] = (total.get(key) or 0) + (row.get(key) or 0)
            total["healthy"] = bool(total.get("healthy")) and bool(row.get("healthy"))
    return {"policy": reports[0].get("policy"), "balancers": len(reports), "replicas": list(merged.values())}
