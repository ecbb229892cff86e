"""The balancer benchmark's table (pure: results in, text out)."""

from __future__ import annotations

from typing import Sequence

from peers.proxies import DIRECT, Balancer
from peers.results import Cell, Results
from peers.stats import render_table

HEADERS = ("system", "conns", "req/s", "p50 ms", "p99 ms", "errors", "added p50 ms",
           "added p99 ms", "x direct req/s")  # fmt: skip


def balancer_cells(balancers: Sequence[Balancer], connections: Sequence[int]) -> list[Cell]:
    return [Cell(b.label, 1, conns) for b in balancers for conns in connections]


def balancer_table(results: Results, cells: Sequence[Cell]) -> str:
    """One line per system and connection count; 'added' latencies and the throughput ratio are
    against calling a replica directly in the same round."""
    lines = []
    for cell in cells:
        base = Cell(DIRECT.label, cell.rows, cell.connections)
        measured = cell in results.runs
        compared = measured and base in results.runs and cell.label != DIRECT.label
        lines.append((
            cell.label,
            str(cell.connections),
            results.spread(cell, "requests_per_s").format(0) if measured else "not measured",
            results.spread(cell, "p50_ms").format(2) if measured else "-",
            results.spread(cell, "p99_ms").format(2) if measured else "-",
            str(results.errors(cell)) if measured else "-",
            results.difference(cell, base, "p50_ms").format(2) if compared else "-",
            results.difference(cell, base, "p99_ms").format(2) if compared else "-",
            results.ratio(cell, base).format(2) if compared else "-",
        ))  # fmt: skip
    return render_table(HEADERS, lines)
