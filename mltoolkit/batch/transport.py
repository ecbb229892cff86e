"""Sending one chunk to the endpoint's V2 infer route: the only place ``predict_batch`` does I/O.

One keep-alive connection per worker thread. A failure is *transient* (worth retrying: no
answer, a dropped connection, a timeout, a 5xx or 429 — e.g. the balancer's 502 when a replica
dies mid-request) or *fatal* (any other 4xx: the request itself is wrong, retrying cannot help).
"""

from __future__ import annotations

import http.client
import time
import urllib.parse
from dataclasses import dataclass

import numpy as np

from mltoolkit.endpoint import REPLICA_HEADER
from mltoolkit.errors import MltoolkitError
from mltoolkit.serving import binary
from mltoolkit.serving.protocol import dumps

ENCODINGS = ("binary", "json")


class TransientError(MltoolkitError):
    """A try failed for a reason a retry may not meet again."""

    def __init__(self, message: str, status: int = 0, replica: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.replica = replica


class FatalError(MltoolkitError):
    """The server refused the chunk (a 4xx other than 429): retrying cannot help."""

    def __init__(self, message: str, status: int, replica: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.replica = replica


@dataclass(frozen=True)
class Answer:
    predictions: np.ndarray
    replica: str | None
    latency_s: float
    request_bytes: int
    response_bytes: int


def encode(rows: np.ndarray, encoding: str) -> tuple[list[bytes | memoryview], dict[str, str]]:
    """The request body (as parts sent one after the other) and headers for ``rows`` in
    ``encoding`` ("binary" or "json"). Binary sends a view of the rows: no copy of the chunk."""
    if encoding == "binary":
        json_part, raw = binary.encode_request_parts(rows)
        return [json_part, raw], {
            "Content-Type": binary.OCTET_STREAM,
            binary.HEADER_LENGTH: str(len(json_part)),
            "Content-Length": str(len(json_part) + len(raw)),
        }
    payload = {
        "inputs": [
            {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
        ]
    }
    body = dumps(payload)
    return [body], {"Content-Type": "application/json", "Content-Length": str(len(body))}


class Sender:
    """Posts chunks to ``infer_url`` over one reused connection (not thread-safe: one each)."""

    def __init__(self, infer_url: str, timeout_s: float, encoding: str) -> None:
        parts = urllib.parse.urlsplit(infer_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port
        self._path = parts.path
        self.timeout_s = timeout_s
        self.encoding = encoding
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = kind(self._host, self._port, timeout=self.timeout_s)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def send(self, rows: np.ndarray) -> Answer:
        parts, headers = encode(rows, self.encoding)
        started = time.perf_counter()
        try:
            connection = self._connect()
            connection.putrequest("POST", self._path, skip_accept_encoding=True)
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders()
            for part in parts:
                connection.send(part)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeout, ...
            self.close()
            raise TransientError(f"{type(exc).__name__}: {exc}") from None
        latency = time.perf_counter() - started
        replica = response.getheader(REPLICA_HEADER)
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        if response.status >= 500 or response.status == 429:
            raise TransientError(
                f"{response.status}: {data[:300].decode(errors='replace')}", response.status, replica
            )
        if response.status >= 400:
            raise FatalError(
                f"the endpoint refused a chunk of {len(rows)} rows with {response.status}: "
                f"{data[:500].decode(errors='replace')}",
                response.status,
                replica,
            )
        length = response.getheader(binary.HEADER_LENGTH)
        try:
            predictions = binary.decode_response(data, None if length is None else int(length))
        except (ValueError, MltoolkitError) as exc:
            raise TransientError(f"unreadable answer: {exc}", response.status, replica) from None
        if len(predictions) != len(rows):
            raise FatalError(
                f"the endpoint answered {len(predictions)} predictions for {len(rows)} rows",
                response.status,
                replica,
            )
        return Answer(predictions, replica, latency, int(headers["Content-Length"]), len(data))
