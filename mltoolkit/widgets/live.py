"""What the monitor panel accumulates between refreshes: load-test chunks, utilization readings.

Pure containers (no threads, no I/O); the panel guards them with its lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class LoadTestRun:
    """The chunks of one load test (Start → Stop) as one ``load_test`` frame.

    Each chunk's ``scheduled_s`` counts from that chunk's start; :meth:`add` shifts it by
    ``offset_s``, the chunk's start measured from the run's start, so the joined frame has one
    time axis and ``summarize``'s test span covers the whole run.
    """

    chunks: list[pd.DataFrame] = field(default_factory=list)

    def add(self, chunk: pd.DataFrame, offset_s: float) -> None:
        shifted = chunk.copy()
        shifted["scheduled_s"] = shifted["scheduled_s"] + float(offset_s)
        self.chunks.append(shifted)

    @property
    def requests(self) -> int:
        return sum(len(c) for c in self.chunks)

    @property
    def frame(self) -> pd.DataFrame | None:
        """All requests so far, ordered by scheduled time (None before the first chunk)."""
        if not self.chunks:
            return None
        return pd.concat(self.chunks, ignore_index=True)


@dataclass
class UtilizationHistory:
    """The last ``keep`` utilization readings (each a by-node frame from ``utilization()``)."""

    keep: int = 40
    readings: list[pd.DataFrame] = field(default_factory=list)

    def add(self, reading: pd.DataFrame) -> None:
        self.readings = (self.readings + [reading])[-self.keep :]

    @property
    def latest(self) -> pd.DataFrame | None:
        return self.readings[-1] if self.readings else None

    @property
    def frame(self) -> pd.DataFrame | None:
        """The kept readings as one frame (None before the first)."""
        if not self.readings:
            return None
        return pd.concat(self.readings, ignore_index=True)
