"""Medians, spreads, paired ratios and plain-text tables for the benchmark scripts (pure)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Spread:
    """The median of repeated measurements and their range."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Spread":
        finite = [float(v) for v in values if v is not None and math.isfinite(v)]
        if not finite:
            return cls(math.nan, math.nan, math.nan, 0)
        return cls(statistics.median(finite), min(finite), max(finite), len(finite))

    def format(self, digits: int = 0) -> str:
        """``median [low-high]``; one value alone without a range; ``-`` for none."""
        if self.count == 0:
            return "-"
        if self.count == 1:
            return f"{self.median:.{digits}f}"
        return f"{self.median:.{digits}f} [{self.low:.{digits}f}-{self.high:.{digits}f}]"


INTERVAL_CONFIDENCE = 0.9  # of the intervals of a median the benchmarks print


def median_interval(values: Sequence[float], confidence: float = INTERVAL_CONFIDENCE) -> tuple[float, float] | None:
    """A distribution-free interval that holds the true median with at least ``confidence``:
    the k-th smallest and k-th largest of the values, for the largest k that still covers it
    (each value falls below the median with probability 1/2, so the count below is binomial).
    None when there are too few values (at 90 %, fewer than 5: even [min-max] of 4 covers 87.5 %)."""
    finite = sorted(float(v) for v in values if v is not None and math.isfinite(v))
    n = len(finite)
    chosen = None
    for k in range(1, n // 2 + 1):
        # P(the median lies outside [x_k, x_(n-k+1)]) = 2 P(Binomial(n, 1/2) <= k - 1)
        outside = 2 * sum(math.comb(n, i) for i in range(k)) / 2**n
        if 1 - outside < confidence:
            break
        chosen = k
    return None if chosen is None else (finite[chosen - 1], finite[n - chosen])


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Ratio of the i-th numerator to the i-th denominator, for measurements taken in the same
    round (so a busy moment of the machine hits both sides); pairs with a zero or missing
    denominator are left out."""
    return [
        n / d
        for n, d in zip(numerators, denominators)
        if n is not None and d is not None and math.isfinite(n) and math.isfinite(d) and d > 0
    ]


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {list(row)} has {len(row)} cells; expected {len(headers)}")
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:]))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])
