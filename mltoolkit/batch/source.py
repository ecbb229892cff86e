"""What ``predict_batch`` scores: a DataFrame, a NumPy array, or Parquet file(s) read in pieces.

Every check that can be made without sending a request is made here, before the first request:
an empty table, non-numeric columns, a wrong column count, missing or infinite values (in
memory; a Parquet file's values are checked as each chunk is read).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mltoolkit.errors import MltoolkitError


class BatchInputError(MltoolkitError, ValueError):
    """The input cannot be scored; the message names what is wrong and what is allowed."""


@dataclass
class MemorySource:
    """Rows held in memory, with the index the predictions will carry."""

    values: np.ndarray
    index: pd.Index
    columns: list[str]
    in_memory: bool = field(default=True, init=False)

    @property
    def total_rows(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.values.shape[1])

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self.values[start:stop]

    def fingerprint(self) -> str:
        """Tells this input from another of the same shape: its first and last rows' bytes."""
        digest = hashlib.sha256(self.values[:1].tobytes() + self.values[-1:].tobytes())
        return digest.hexdigest()[:16]

    def read(self, chunk_rows: int, skip_starts: set[int]) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, rows)`` of every chunk whose start is not in ``skip_starts``."""
        for start in range(0, self.total_rows, chunk_rows):
            if start not in skip_starts:
                yield start, self.values[start : start + chunk_rows]


@dataclass
class ParquetSource:
    """Parquet files read one record batch at a time: memory holds a few chunks, not the table."""

    paths: list[Path]
    total_rows: int
    columns: list[str]
    in_memory: bool = field(default=False, init=False)

    @property
    def n_features(self) -> int:
        return len(self.columns)

    def fingerprint(self) -> str:
        """Tells this input from another of the same shape: its files' names and sizes."""
        text = "|".join(f"{p.name}:{p.stat().st_size}" for p in self.paths)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def read(self, chunk_rows: int, skip_starts: set[int]) -> Iterator[tuple[int, np.ndarray]]:
        import pyarrow.parquet as pq

        pending: list[np.ndarray] = []
        held = 0
        position = 0  # first row of the pending data, in input order
        for path in self.paths:
            # pre_buffer=False: the default pre-buffering reads the whole file into memory first
            with pq.ParquetFile(path, pre_buffer=False) as file:
                for batch in file.iter_batches(batch_size=chunk_rows, columns=self.columns):
                    pending.append(_batch_values(batch, position + held))
                    held += batch.num_rows
                    while held >= chunk_rows:
                        rows, pending, held = _take(pending, chunk_rows, held)
                        if position not in skip_starts:
                            yield position, rows
                        position += chunk_rows
        if held:
            rows, pending, held = _take(pending, held, held)
            if position not in skip_starts:
                yield position, rows


def _take(pending: list[np.ndarray], n: int, held: int) -> tuple[np.ndarray, list[np.ndarray], int]:
    joined = pending[0] if len(pending) == 1 else np.concatenate(pending)
    rest = joined[n:]
    return joined[:n], ([rest] if len(rest) else []), held - n


def _batch_values(batch: Any, first_row: int) -> np.ndarray:
    values = np.empty((batch.num_rows, batch.num_columns), dtype=np.float64)
    for i, column in enumerate(batch.columns):
        values[:, i] = column.to_numpy(zero_copy_only=False)
    _check_finite(values, batch.schema.names, first_row, "row")
    return values


def _check_finite(values: np.ndarray, columns: Sequence[str], first_row: int, what: str) -> None:
    if values.dtype.kind != "f":
        return
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise BatchInputError(
            f"column {columns[col]!r} has {int(bad[:, col].sum())} missing or infinite values "
            f"(the first at {what} {first_row + int(row)}); predict_batch sends finite numbers "
            "only: fill or drop them first"
        )


def _numeric_problem(dtype: Any) -> bool:
    return not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)) or (
        isinstance(dtype, np.dtype) and dtype.kind in "cmM"
    )


def from_frame(frame: pd.DataFrame) -> MemorySource:
    if frame.shape[0] == 0:
        raise BatchInputError("the DataFrame is empty: it has 0 rows; give at least one row")
    if frame.shape[1] == 0:
        raise BatchInputError("the DataFrame has no columns; give one column per feature")
    bad = [f"{name!r} ({dtype})" for name, dtype in frame.dtypes.items() if _numeric_problem(dtype)]
    if bad:
        raise BatchInputError(
            f"columns {', '.join(bad)} are not numeric; predict_batch sends numbers only "
            "(int, float or bool columns): encode or drop them first"
        )
    values = frame.to_numpy(dtype=np.float64)
    columns = [str(c) for c in frame.columns]
    bad_rows = ~np.isfinite(values)
    if bad_rows.any():
        row, col = np.argwhere(bad_rows)[0]
        raise BatchInputError(
            f"column {columns[col]!r} has {int(bad_rows[:, col].sum())} missing or infinite "
            f"values (the first at index {frame.index[row]!r}); predict_batch sends finite "
            "numbers only: fill or drop them first"
        )
    return MemorySource(values=values, index=frame.index, columns=columns)


def from_array(array: np.ndarray) -> MemorySource:
    if array.ndim != 2:
        raise BatchInputError(
            f"the array has {array.ndim} dimension(s); give a 2-D array of rows x features "
            "(reshape(-1, 1) for one feature)"
        )
    if array.shape[0] == 0:
        raise BatchInputError("the array is empty: it has 0 rows; give at least one row")
    if array.shape[1] == 0:
        raise BatchInputError("the array has 0 columns; give one column per feature")
    if array.dtype.kind not in "biuf":
        raise BatchInputError(
            f"the array's dtype {array.dtype} is not numeric; predict_batch sends numbers only "
            "(int, float or bool)"
        )
    values = array if array.dtype.kind == "f" else array.astype(np.float64)
    _check_finite(values, [f"{i}" for i in range(values.shape[1])], 0, "row")
    return MemorySource(
        values=values,
        index=pd.RangeIndex(values.shape[0]),
        columns=[str(i) for i in range(values.shape[1])],
    )


def from_parquet(paths: Sequence[str | Path]) -> ParquetSource:
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = [Path(p) for p in paths]
    if not files:
        raise BatchInputError("no Parquet file given; give a path or a list of paths")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise BatchInputError(f"Parquet file(s) not found: {missing}")
    schema = None
    total = 0
    for file in files:
        with pq.ParquetFile(file) as parquet:
            this = parquet.schema_arrow
            total += parquet.metadata.num_rows
        if schema is None:
            schema = this
        elif this.names != schema.names:
            raise BatchInputError(
                f"{file} has columns {this.names}; the first file has {schema.names}: every "
                "file must have the same columns"
            )
    assert schema is not None
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)
    bad = [f"{f.name!r} ({f.type})" for f in schema if not any(check(f.type) for check in numeric)]
    if bad:
        raise BatchInputError(
            f"columns {', '.join(bad)} are not numeric; predict_batch sends numbers only "
            "(int, float or bool columns)"
        )
    if not schema.names:
        raise BatchInputError("the Parquet input has no columns; give one column per feature")
    if total == 0:
        raise BatchInputError("the Parquet input is empty: it has 0 rows; give at least one row")
    return ParquetSource(paths=files, total_rows=total, columns=list(schema.names))


def make_source(data: Any) -> MemorySource | ParquetSource:
    """The source for ``data``, checked; raises ``BatchInputError`` naming what is wrong."""
    if isinstance(data, pd.DataFrame):
        return from_frame(data)
    if isinstance(data, np.ndarray):
        return from_array(data)
    if isinstance(data, (str, Path)):
        return from_parquet(_expand(Path(data)))
    if isinstance(data, (list, tuple)) and data and all(isinstance(d, (str, Path)) for d in data):
        return from_parquet([Path(d) for d in data])
    raise BatchInputError(
        f"cannot score a {type(data).__name__}; give a pandas DataFrame, a 2-D NumPy array, "
        "or the path(s) of Parquet file(s)"
    )


def _expand(path: Path) -> list[Path]:
    """A directory stands for the ``*.parquet`` files in it, in name order."""
    if path.is_dir():
        return sorted(path.glob("*.parquet"))
    return [path]


def check_features(source: MemorySource | ParquetSource, expected: int | None) -> None:
    if expected is not None and expected >= 0 and source.n_features != expected:
        raise BatchInputError(
            f"the input has {source.n_features} columns ({_preview(source.columns)}); the "
            f"model expects {expected} features"
        )


def _preview(columns: list[str]) -> str:
    return ", ".join(columns[:5]) + (", ..." if len(columns) > 5 else "")
