"""Repeated wrk runs keyed by what was measured, and notes on what could not be (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from peers.stats import Spread, paired_ratios
from peers.wrk import WrkResult


@dataclass(frozen=True, order=True)
class Cell:
    """One measured configuration: a table row label, rows per request (None: no body) and wrk
    connections."""

    label: str
    rows: int | None
    connections: int


@dataclass
class Results:
    """``runs[cell][repetition]``; ``notes[label]`` says why a row has no (or partial) numbers."""

    runs: dict[Cell, dict[int, WrkResult]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

    def add(self, cell: Cell, repetition: int, result: WrkResult) -> None:
        self.runs.setdefault(cell, {})[repetition] = result

    def note(self, label: str, message: str) -> None:
        messages = self.notes.setdefault(label, [])
        if message not in messages:
            messages.append(message)

    def spread(self, cell: Cell, metric: str) -> Spread:
        """``metric`` is a WrkResult attribute, e.g. ``requests_per_s`` or ``p99_ms``."""
        return Spread.of([getattr(r, metric) for r in self.runs.get(cell, {}).values()])

    def errors(self, cell: Cell) -> int:
        return sum(r.errors for r in self.runs.get(cell, {}).values())

    def ratio(self, cell: Cell, base: Cell, metric: str = "requests_per_s") -> Spread:
        """``metric`` of ``cell`` over that of ``base``, paired by repetition (same round)."""
        mine = self.runs.get(cell, {})
        theirs = self.runs.get(base, {})
        common = sorted(set(mine) & set(theirs))
        return Spread.of(
            paired_ratios(
                [getattr(mine[i], metric) for i in common],
                [getattr(theirs[i], metric) for i in common],
            )
        )

    def difference(self, cell: Cell, base: Cell, metric: str) -> Spread:
        """``metric`` of ``cell`` minus that of ``base``, paired by repetition (same round)."""
        mine = self.runs.get(cell, {})
        theirs = self.runs.get(base, {})
        return Spread.of(
            [getattr(mine[i], metric) - getattr(theirs[i], metric)
             for i in sorted(set(mine) & set(theirs))]
        )  # fmt: skip
