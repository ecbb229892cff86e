"""Small picklable models for tests: importable by a server subprocess, so joblib can load them.

Their ``predict`` answers the sum of each row, so a test can tell which rows produced which answer.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


class SleepyModel:
    """Sleeps ``delay_s`` on every predict call (a slow model), then answers row sums.

    If ``started_path`` is set, each call first appends a line to that file, so a test in another
    process can tell that a request has reached the model (is in flight) without guessing times.
    """

    def __init__(
        self, delay_s: float, n_features: int = 4, started_path: str | None = None
    ) -> None:
        self.delay_s = delay_s
        self.n_features_in_ = n_features
        self.started_path = started_path

    def predict(self, rows: np.ndarray) -> np.ndarray:
        if self.started_path is not None:
            with Path(self.started_path).open("a") as marker:
                marker.write(f"{len(rows)}\n")
        time.sleep(self.delay_s)
        return np.asarray(rows, dtype=np.float64).sum(axis=1)


class PickyModel:
    """Raises ``ValueError`` for any call that contains a negative value, else answers row sums.

    Such a row passes request validation, so it shows how a failing predict is isolated.
    """

    def __init__(self, n_features: int = 4) -> None:
        self.n_features_in_ = n_features

    def predict(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.float64)
        if (rows < 0).any():
            raise ValueError("negative values are not allowed")
        return rows.sum(axis=1)
