"""What a load test sends: request paths and JSON bodies built from feature rows, pure.

Rows come from the user's ``X`` (cycled) or, without ``X``, one row of zeros as wide as the
model's Open Inference Protocol V2 metadata says (``inputs[0].shape == [-1, n]``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from mltoolkit.errors import MltoolkitError, SpecError

PROTOCOLS = ("predict", "v2")
DEFAULT_V2_INPUT = ("input-0", "FP64")


def request_path(protocol: str, model_name: str) -> str:
    """``/predict`` or the V2 inference path of ``model_name``."""
    if protocol == "predict":
        return "/predict"
    if protocol == "v2":
        return f"/v2/models/{model_name}/infer"
    raise SpecError("load_test.protocol", protocol, f"one of {PROTOCOLS}")


def feature_rows(X: Any) -> np.ndarray:
    """``X`` (array-like or DataFrame) as a non-empty 2-D array of rows."""
    to_numpy = getattr(X, "to_numpy", None)
    try:
        rows = np.asarray(to_numpy() if callable(to_numpy) else X)
    except (TypeError, ValueError) as exc:
        raise SpecError(
            "load_test.X", type(X).__name__, f"a 2-D array-like of rows ({exc})"
        ) from None
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] == 0:
        raise SpecError(
            "load_test.X",
            f"array of shape {rows.shape}",
            "a 2-D array-like with at least one row and column",
        )
    return rows


def _first_input(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    inputs = metadata.get("inputs") if isinstance(metadata, Mapping) else None
    if not inputs or not isinstance(inputs[0], Mapping):
        raise MltoolkitError(
            f"the model metadata lists no inputs ({metadata!r}); pass rows with X= instead"
        )
    return inputs[0]


def zeros_from_metadata(metadata: Mapping[str, Any]) -> np.ndarray:
    """One row of zeros as wide as the metadata's first input (``shape == [-1, n]``)."""
    first = _first_input(metadata)
    shape = first.get("shape")
    if (
        not isinstance(shape, (list, tuple))
        or len(shape) != 2
        or not isinstance(shape[1], int)
        or shape[1] < 1
    ):
        raise MltoolkitError(
            f"cannot tell the number of features from the model metadata input shape {shape!r} "
            "(expected [-1, n]); pass rows with X= instead"
        )
    return np.zeros((1, shape[1]))


def v2_input(metadata: Mapping[str, Any] | None) -> tuple[str, str]:
    """The name and datatype of the model's first V2 input (defaults without metadata)."""
    if metadata is None:
        return DEFAULT_V2_INPUT
    first = _first_input(metadata)
    return str(first.get("name", DEFAULT_V2_INPUT[0])), str(
        first.get("datatype", DEFAULT_V2_INPUT[1])
    )


class Payloads:
    """Request ``i`` carries rows ``i*k .. i*k+k-1`` of ``rows`` (wrapping around), as JSON bytes.

    Bodies are encoded once per distinct starting row and reused.
    """

    def __init__(
        self,
        rows: np.ndarray,
        rows_per_request: int,
        protocol: str,
        v2_input_name: str = DEFAULT_V2_INPUT[0],
        v2_datatype: str = DEFAULT_V2_INPUT[1],
    ) -> None:
        request_path(protocol, "x")  # validates the protocol name
        self.rows = rows
        self.rows_per_request = rows_per_request
        self.protocol = protocol
        self.v2_input_name = v2_input_name
        self.v2_datatype = v2_datatype
        self._cache: dict[int, bytes] = {}

    def rows_for(self, index: int) -> np.ndarray:
        n = len(self.rows)
        start = (index * self.rows_per_request) % n
        picks = (start + np.arange(self.rows_per_request)) % n
        return self.rows[picks]

    def body(self, index: int) -> bytes:
        start = (index * self.rows_per_request) % len(self.rows)
        cached = self._cache.get(start)
        if cached is None:
            cached = self._cache[start] = self._encode(self.rows_for(index))
        return cached

    def _encode(self, rows: np.ndarray) -> bytes:
        if self.protocol == "predict":
            return json.dumps({"instances": rows.tolist()}).encode()
        tensor = {
            "name": self.v2_input_name,
            "shape": list(rows.shape),
            "datatype": self.v2_datatype,
            "data": rows.ravel().tolist(),
        }
        return json.dumps({"inputs": [tensor]}).encode()
