"""The serving benchmark's table and its check of the issue's goal (pure: results in, text out)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from peers.results import Cell, Results
from peers.servers import MLSERVER_TUNED, NOOP, OURS_BATCHING, OURS_NOOP, ServerKind
from peers.stats import Spread, render_table

HEADERS = ("server", "rows", "conns", "req/s", "p50 ms", "p99 ms", "errors", "x MLServer tuned")


def cells_of(kinds: Sequence[ServerKind], connections: Sequence[int],
             batch_rows: Sequence[int]) -> list[Cell]:
    """Every cell to measure, in table order (no-op rows have no body, so no row count)."""
    cells = []
    for kind in kinds:
        for row in kind.rows:
            for rows in (None,) if row.protocol == NOOP else tuple(batch_rows):
                for conns in connections:
                    cells.append(Cell(row.label, rows, conns))
    return cells


def serving_table(results: Results, cells: Sequence[Cell]) -> str:
    lines = []
    for cell in cells:
        base = Cell(MLSERVER_TUNED, cell.rows, cell.connections)
        measured = cell in results.runs
        ratio = (
            results.ratio(cell, base).format(2)
            if measured and cell.rows is not None and base in results.runs
            else "-"
        )
        lines.append((
            cell.label,
            "-" if cell.rows is None else str(cell.rows),
            str(cell.connections),
            results.spread(cell, "requests_per_s").format(0) if measured else "not measured",
            results.spread(cell, "p50_ms").format(1) if measured else "-",
            results.spread(cell, "p99_ms").format(1) if measured else "-",
            str(results.errors(cell)) if measured else "-",
            ratio,
        ))  # fmt: skip
    return render_table(HEADERS, lines)


@dataclass(frozen=True)
class GoalCheck:
    """One line of the goal: what was measured, the bound, and whether it holds (None: not
    measured)."""

    what: str
    value: str
    goal: str
    met: bool | None

    def format(self) -> str:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[self.met]
        return f"{self.what}: {self.value} (goal {self.goal}): {verdict}"


def goal_checks(results: Results, connections: int = 32) -> list[GoalCheck]:
    """The issue's goal on 1-row requests at ``connections``: >= 3x MLServer tuned's throughput,
    a p99 no higher than MLServer tuned's, and >= half the same server's no-op rate (all by
    medians over repetitions)."""
    ours = Cell(OURS_BATCHING, 1, connections)
    mlserver = Cell(MLSERVER_TUNED, 1, connections)
    noop = Cell(OURS_NOOP, None, connections)
    have = results.runs

    def holds(spread: Spread, bound: float) -> bool | None:
        return None if spread.count == 0 or math.isnan(spread.median) else spread.median >= bound

    speedup = results.ratio(ours, mlserver) if ours in have and mlserver in have else Spread.of([])
    share = results.ratio(ours, noop) if ours in have and noop in have else Spread.of([])
    ours_p99 = results.spread(ours, "p99_ms")
    their_p99 = results.spread(mlserver, "p99_ms")
    p99_met = (
        None
        if ours_p99.count == 0 or their_p99.count == 0
        else ours_p99.median <= their_p99.median
    )
    return [
        GoalCheck("throughput, mltoolkit batching / MLServer tuned", _times(speedup),
                  ">= 3x", holds(speedup, 3.0)),
        GoalCheck("p99, mltoolkit batching vs MLServer tuned",
                  f"{ours_p99.format(1)} ms vs {their_p99.format(1)} ms", "no higher",
                  p99_met),
        GoalCheck("throughput, mltoolkit batching / its no-op rate", share.format(2),
                  ">= 0.5", holds(share, 0.5)),
    ]  # fmt: skip


def _times(spread: Spread) -> str:
    return f"{spread.format(2)}x" if spread.count else "-"


def noop_ratios(results: Results, connections: Sequence[int]) -> list[str]:
    """``mltoolkit batching (1 row) / no-op`` at each connection count, paired by round."""
    lines = []
    for conns in connections:
        ours = Cell(OURS_BATCHING, 1, conns)
        noop = Cell(OURS_NOOP, None, conns)
        if ours in results.runs and noop in results.runs:
            lines.append(f"mltoolkit batching (1 row) / no-op at {conns} connections: "
                         f"{results.ratio(ours, noop).format(2)}")
    return lines
