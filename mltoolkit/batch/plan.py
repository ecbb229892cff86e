"""Pure planning for a batch run: rows per request, the chunks, and the back-off between tries.

Rows per request come from a measured cost model: a request of ``n`` rows takes about
``fixed_s + n * per_row_s`` (``fixed_s``: HTTP, balancer and framing; ``per_row_s``: encoding
and the model). ``plan_chunk_rows`` picks ``n`` so a request takes ``target_s``, then caps it so
that the body stays under ``max_request_bytes`` and every request slot gets several chunks
(so the balancer can spread them and a retried chunk costs little).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CHUNKS_PER_SLOT = 4  # at least this many chunks for each request in flight, when rows allow
MIN_CHUNK_ROWS = 16


@dataclass(frozen=True)
class CostModel:
    """``seconds(n) = fixed_s + n * per_row_s``, fitted from probe requests."""

    fixed_s: float
    per_row_s: float

    def seconds(self, rows: int) -> float:
        return self.fixed_s + rows * self.per_row_s


def fit_cost(samples: list[tuple[int, float]]) -> CostModel:
    """A cost model from ``(rows, seconds)`` probes of at least two sizes: the fastest time of
    each size (the least disturbed), then the line through the smallest and largest size."""
    best: dict[int, float] = {}
    for rows, seconds in samples:
        best[rows] = min(seconds, best.get(rows, math.inf))
    if len(best) < 2:
        raise ValueError(f"need probes of two sizes at least; got sizes {sorted(best)}")
    small, large = min(best), max(best)
    per_row = max(0.0, (best[large] - best[small]) / (large - small))
    fixed = max(0.0, best[small] - small * per_row)
    return CostModel(fixed_s=fixed, per_row_s=per_row)


def plan_chunk_rows(
    cost: CostModel,
    *,
    target_s: float,
    total_rows: int,
    in_flight: int,
    bytes_per_row: int,
    max_request_bytes: int,
) -> int:
    """Rows per request: as many as fit ``target_s`` by ``cost``, within the byte limit, and no
    more than leave each of the ``in_flight`` slots ``CHUNKS_PER_SLOT`` chunks."""
    by_time = (
        math.inf if cost.per_row_s <= 0 else (target_s - cost.fixed_s) / cost.per_row_s
    )
    by_bytes = max_request_bytes // max(1, bytes_per_row)
    by_spread = math.ceil(total_rows / (in_flight * CHUNKS_PER_SLOT))
    rows = min(by_time, by_bytes, max(by_spread, MIN_CHUNK_ROWS))
    return int(max(1, min(rows, total_rows)))


@dataclass(frozen=True)
class Chunk:
    """Rows ``start`` (inclusive) to ``stop`` (exclusive) of the input, in input order."""

    index: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def chunk_bounds(total_rows: int, chunk_rows: int) -> list[Chunk]:
    """Consecutive chunks of ``chunk_rows`` rows (the last may be shorter), covering every row
    once."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1; got {chunk_rows}")
    return [
        Chunk(i, start, min(start + chunk_rows, total_rows))
        for i, start in enumerate(range(0, total_rows, chunk_rows))
    ]


def backoff_s(attempt: int, base_s: float = 0.1, cap_s: float = 5.0) -> float:
    """The wait before try ``attempt + 1`` after ``attempt`` failed tries (1, 2, ...):
    ``base_s * 2**(attempt - 1)``, capped at ``cap_s``."""
    return float(min(cap_s, base_s * 2 ** max(0, attempt - 1)))
