"""A batch run's output directory: one Parquet part per scored chunk, written atomically.

``<output>/_batch.json`` records what the run is over (rows, features, rows per chunk); each
chunk lands as ``part-<first row, 12 digits>.parquet`` (written to a temporary name, then
renamed), with columns ``row`` (the row's position in the input) and ``prediction`` (or
``prediction_0``, ``prediction_1``, ... for several outputs per row). A chunk is either there
whole or not at all, so a re-run with the same output scores exactly the missing chunks: none
twice, none skipped. Reading the directory in name order gives the predictions in input order.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mltoolkit.batch.source import BatchInputError

MANIFEST = "_batch.json"
_PART = re.compile(r"^part-(\d{12})\.parquet$")


@dataclass(frozen=True)
class Manifest:
    total_rows: int
    n_features: int
    chunk_rows: int
    columns: list[str]
    fingerprint: str = ""


def part_name(start: int) -> str:
    return f"part-{start:012d}.parquet"


class PartsOutput:
    """The output directory of one run (created if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def manifest(self) -> Manifest | None:
        file = self.path / MANIFEST
        if not file.is_file():
            return None
        return Manifest(**json.loads(file.read_text()))

    def start(self, manifest: Manifest) -> None:
        """Write the manifest of a new run, or check that it matches the one already there."""
        found = self.manifest()
        if found is not None:
            if (found.total_rows, found.n_features, found.columns, found.fingerprint) != (
                manifest.total_rows,
                manifest.n_features,
                manifest.columns,
                manifest.fingerprint,
            ):
                raise BatchInputError(
                    f"output {str(self.path)!r} holds a run over other input ({found.total_rows} "
                    f"rows x {found.n_features} columns; this input has {manifest.total_rows} x "
                    f"{manifest.n_features}, or other values); give another output or delete that directory"
                )
            return
        if self.path.exists() and any(self.path.iterdir()):
            raise BatchInputError(
                f"output {str(self.path)!r} exists and is not a predict_batch output (no "
                f"{MANIFEST}); give a new or empty directory"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / MANIFEST).write_text(json.dumps(asdict(manifest)))

    def done_starts(self) -> set[int]:
        """First rows of the chunks already written."""
        if not self.path.is_dir():
            return set()
        return {int(m.group(1)) for p in self.path.iterdir() if (m := _PART.match(p.name))}

    def rows_done(self) -> int:
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(self.path / part_name(s)).metadata.num_rows for s in self.done_starts())

    def write(self, start: int, predictions: np.ndarray) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(prediction_columns(start, predictions))
        final = self.path / part_name(start)
        temporary = self.path / f".{final.name}.{os.getpid()}.tmp"
        pq.write_table(table, temporary)
        os.replace(temporary, final)

    def read(self) -> pd.DataFrame:
        """Every written part, in input order (columns ``row`` and the prediction(s))."""
        parts = [self.path / part_name(s) for s in sorted(self.done_starts())]
        if not parts:
            return pd.DataFrame({"row": pd.Series(dtype="int64")})
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def prediction_columns(start: int, predictions: np.ndarray) -> dict[str, np.ndarray]:
    """The columns of one part: ``row`` (input positions) and the prediction(s)."""
    rows = np.arange(start, start + len(predictions), dtype=np.int64)
    if predictions.ndim == 1:
        return {"row": rows, "prediction": predictions}
    flat = predictions.reshape(len(predictions), -1)
    return {"row": rows, **{f"prediction_{i}": flat[:, i] for i in range(flat.shape[1])}}
