"""Odd models for the server's tests (module-level so joblib can pickle them)."""

import numpy as np


class ObjectAnswers:
    """Answers each row with a Python object that JSON cannot encode."""

    def predict(self, rows):
        answers = np.empty(len(rows), dtype=object)
        answers[:] = [object() for _ in range(len(rows))]
        return answers


class RowCount:
    """Declares no feature count; answers each row with the number of rows in the call."""

    def predict(self, rows):
        return np.full(len(rows), len(rows))


class TooFew:
    """Answers one prediction fewer than it was given rows."""

    def predict(self, rows):
        return np.zeros(len(rows) - 1)


class CountsCalls:
    """Declares 3 features and counts its predict calls (in the instance, so in the process)."""

    n_features_in_ = 3

    def __init__(self):
        self.calls = []

    def predict(self, rows):
        self.calls.append(np.asarray(rows).shape)
        return np.zeros(len(rows))


class RefusesZeros:
    """Declares 2 features and fails on an all-zero row."""

    n_features_in_ = 2

    def predict(self, rows):
        if not np.asarray(rows).any():
            raise ValueError("zeros")
        return np.ones(len(rows))
