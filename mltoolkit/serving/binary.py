"""The Open Inference Protocol's binary tensor data extension, as pure functions.

What ``tritonclient.http`` sends with ``binary_data=True`` (and what it reads back):

* a request body is a JSON header followed by raw tensor bytes; the header's length in bytes is
  the ``Inference-Header-Content-Length`` HTTP header. An input whose bytes follow carries
  ``"parameters": {"binary_data_size": N}`` instead of ``"data"``; tensors' bytes follow in
  the order of the inputs, row-major, little-endian (``BYTES``: each element a 4-byte
  little-endian length, then its bytes).
* a client asks for a binary output with ``"outputs": [{"name": ..., "parameters":
  {"binary_data": true}}]``, or for all outputs with the request parameter
  ``"binary_data_output": true``. The answer is then its JSON header (the output with
  ``"parameters": {"binary_data_size": N}`` and no ``"data"``) followed by the bytes, with
  ``Inference-Header-Content-Length`` and ``Content-Type: application/octet-stream``.

The server side is ``parse_request`` / ``encode_response``; the client side (``predict_batch``)
is ``encode_request`` / ``decode_response``. One module knows the wire format both ways.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mltoolkit.serving.protocol import (
    INPUT_DATATYPES,
    OUTPUT_NAME,
    InferRequest,
    RequestError,
    datatype_of,
    dumps,
    load_json,
    parse_infer_request,
    tensor_datatype_and_shape,
)

HEADER_LENGTH = "Inference-Header-Content-Length"
OCTET_STREAM = "application/octet-stream"
_MARKER = b"binary_data"


@dataclass(frozen=True)
class BinaryInferRequest:
    """A validated V2 request that used the extension, and whether the answer must be binary."""

    request: InferRequest
    binary_output: bool


def uses_extension(headers: Mapping[str, str], body: bytes) -> bool:
    """True when a V2 infer request needs this module: binary input bytes follow its JSON
    header, or it asks for binary outputs (which needs a ``binary_data`` parameter)."""
    return HEADER_LENGTH in headers or _MARKER in body


def header_length(value: str | None, body_size: int) -> int | None:
    """The ``Inference-Header-Content-Length`` value as a length within the body."""
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        length = -1
    if not 0 < length <= body_size:
        raise RequestError(
            400,
            f"{HEADER_LENGTH} must be a whole number from 1 to the body size ({body_size}); "
            f"got {value!r}",
        )
    return length


def parse_request(body: bytes, length: int | None, n_features: int | None) -> BinaryInferRequest:
    """A V2 infer body whose input may be binary (``length`` = the JSON header's size)."""
    json_part = body if length is None else body[:length]
    tail = b"" if length is None else body[length:]
    payload = load_json(json_part)
    if not isinstance(payload, dict):
        raise RequestError(400, 'the JSON header must be an object with an "inputs" list')
    binary_output = _wants_binary_output(payload)
    inputs = payload.get("inputs")
    tensor = inputs[0] if isinstance(inputs, list) and len(inputs) == 1 else None
    size = _binary_size(tensor)
    if size is None:
        if tail:
            raise RequestError(
                400,
                f"{len(tail)} bytes follow the JSON header but no input has "
                "parameters.binary_data_size",
            )
        # JSON input (only the answer is binary): the ordinary parser validates it
        return BinaryInferRequest(parse_infer_request(json_part, n_features), binary_output)
    if size != len(tail):
        raise RequestError(
            400,
            f"inputs[0].parameters.binary_data_size is {size} but {len(tail)} bytes follow "
            f"the JSON header ({HEADER_LENGTH})",
        )
    rows = _binary_rows(tensor, tail, n_features)
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(400, f"id must be a string; got {request_id!r}")
    _check_outputs(payload.get("outputs"))
    return BinaryInferRequest(InferRequest(rows=rows, id=request_id), binary_output)


def _wants_binary_output(payload: dict[str, Any]) -> bool:
    parameters = payload.get("parameters")
    if isinstance(parameters, dict) and parameters.get("binary_data_output") is True:
        return True
    outputs = payload.get("outputs")
    return isinstance(outputs, list) and any(
        isinstance(o, dict)
        and isinstance(o.get("parameters"), dict)
        and o["parameters"].get("binary_data") is True
        for o in outputs
    )


def _binary_size(tensor: Any) -> int | None:
    if not isinstance(tensor, dict):
        return None
    parameters = tensor.get("parameters")
    if not isinstance(parameters, dict) or "binary_data_size" not in parameters:
        return None
    size = parameters["binary_data_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise RequestError(
            400, f"inputs[0].parameters.binary_data_size must be a whole number >= 0; got {size!r}"
        )
    if "data" in tensor:
        raise RequestError(400, "inputs[0] has both data and parameters.binary_data_size")
    return size


def _binary_rows(tensor: dict[str, Any], raw: bytes, n_features: int | None) -> np.ndarray:
    datatype, shape = tensor_datatype_and_shape(tensor)
    dtype = INPUT_DATATYPES[datatype].newbyteorder("<")
    needed = shape[0] * shape[1] * dtype.itemsize
    if needed != len(raw):
        raise RequestError(
            400,
            f"inputs[0] has shape {shape} of {datatype} ({needed} bytes) but "
            f"binary_data_size is {len(raw)}",
        )
    if shape[0] == 0:
        raise RequestError(400, "inputs[0] has no rows; send at least one row")
    rows = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if dtype.kind == "f" and not np.isfinite(rows).all():
        raise RequestError(400, "inputs[0] must hold finite numbers")
    if n_features is not None and shape[1] != n_features:
        raise RequestError(
            400, f"inputs[0] rows have {shape[1]} features; this model expects {n_features}"
        )
    return rows.astype(np.float64, copy=False) if dtype.kind == "f" else rows


def _check_outputs(outputs: Any) -> None:
    if outputs is None:
        return
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise RequestError(400, 'outputs must be a list of objects like {"name": "predict"}')
    unknown = [o.get("name") for o in outputs if o.get("name") != OUTPUT_NAME]
    if unknown:
        raise RequestError(
            400, f"unknown output {unknown[0]!r}; this model has outputs ['{OUTPUT_NAME}']"
        )


def tensor_bytes(values: np.ndarray) -> tuple[str, bytes]:
    """The V2 datatype and the raw bytes of ``values`` (row-major, little-endian)."""
    datatype = datatype_of(values.dtype)
    if datatype == "BYTES":
        parts = []
        for item in values.reshape(-1):
            data = item if isinstance(item, bytes) else str(item).encode()
            parts.append(struct.pack("<I", len(data)) + data)
        return datatype, b"".join(parts)
    if values.dtype.kind not in "biuf":  # e.g. datetimes: not a V2 tensor type
        values = values.astype(np.float64)
        datatype = "FP64"
    return datatype, np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).tobytes()


def encode_response(
    model_name: str, model_version: str, request: InferRequest, predictions: np.ndarray
) -> tuple[bytes, int]:
    """The binary answer: its body (JSON header + output bytes) and the header's length."""
    datatype, raw = tensor_bytes(predictions)
    header: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        header["id"] = request.id
    header["outputs"] = [
        {
            "name": request.output_name,
            "shape": list(predictions.shape),
            "datatype": datatype,
            "parameters": {"binary_data_size": len(raw)},
        }
    ]
    json_part = dumps(header)
    return json_part + raw, len(json_part)


# ----------------------------------------------------------------------------- client side


def encode_request(rows: np.ndarray, input_name: str = "input-0") -> tuple[bytes, int]:
    """A binary V2 request for ``rows`` (2-D, numeric) asking for a binary answer: its body
    and the value of ``Inference-Header-Content-Length``."""
    json_part, raw = encode_request_parts(rows, input_name)
    return json_part + bytes(raw), len(json_part)


def encode_request_parts(rows: np.ndarray, input_name: str = "input-0") -> tuple[bytes, memoryview]:
    """``encode_request`` as its two parts, the JSON header and the tensor's bytes; the bytes are
    a view of ``rows`` when it is already C-contiguous little-endian (no copy of a big chunk)."""
    if rows.dtype.kind not in "biuf":
        raise ValueError(f"rows must be numeric; got dtype {rows.dtype}")
    values = np.ascontiguousarray(rows, dtype=rows.dtype.newbyteorder("<"))
    raw = memoryview(values).cast("B")
    datatype = datatype_of(values.dtype.newbyteorder("="))
    header = {
        "inputs": [
            {
                "name": input_name,
                "shape": list(rows.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "outputs": [{"name": OUTPUT_NAME, "parameters": {"binary_data": True}}],
    }
    return dumps(header), raw


_NUMPY_OF_DATATYPE = {name: dtype.newbyteorder("<") for name, dtype in INPUT_DATATYPES.items()}


def decode_response(body: bytes, length: int | None) -> np.ndarray:
    """The first output of a V2 answer, binary (``length`` = its JSON header's size) or JSON."""
    header = load_json(body if length is None else body[:length])
    outputs = header.get("outputs") if isinstance(header, dict) else None
    if not isinstance(outputs, list) or not outputs:
        raise ValueError(f"the answer has no outputs: {body[:200]!r}")
    output = outputs[0]
    shape = output.get("shape") or [-1]
    if "data" in output:
        return np.asarray(output["data"]).reshape(shape)
    size = output.get("parameters", {}).get("binary_data_size")
    if length is None or size is None:
        raise ValueError("the answer's output has neither data nor binary_data_size")
    raw = body[length : length + size]
    datatype = output.get("datatype")
    if datatype == "BYTES":
        items, offset = [], 0
        while offset < len(raw):
            (n,) = struct.unpack_from("<I", raw, offset)
            items.append(raw[offset + 4 : offset + 4 + n].decode(errors="replace"))
            offset += 4 + n
        return np.asarray(items, dtype=object).reshape(shape)
    if datatype not in _NUMPY_OF_DATATYPE:
        raise ValueError(f"the answer's output has an unknown datatype {datatype!r}")
    return np.frombuffer(raw, dtype=_NUMPY_OF_DATATYPE[datatype]).reshape(shape)
