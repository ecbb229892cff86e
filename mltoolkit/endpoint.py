"""A served model's address, with blocking helpers for a notebook cell.

The same class fronts the local balancer and a cloud load balancer: both speak the model
server's protocols (``POST /predict`` and Open Inference Protocol V2).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import numpy as np

from mltoolkit.errors import MltoolkitError

REPLICA_HEADER = "X-Replica"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
# a local endpoint must never go through an HTTP proxy the user set for the internet
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_PROXIED = urllib.request.build_opener()


class EndpointError(MltoolkitError):
    """A request to the endpoint failed; the message carries the server's explanation."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Endpoint:
    url: str
    model_name: str
    timeout_s: float = 30.0

    @property
    def predict_url(self) -> str:
        return f"{self.url.rstrip('/')}/predict"

    @property
    def infer_url(self) -> str:
        return f"{self.url.rstrip('/')}/v2/models/{self.model_name}/infer"

    def _request(self, path: str, body: Any | None = None) -> tuple[Any, dict[str, str]]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url.rstrip('/')}{path}",
            data=data,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            host = urllib.parse.urlsplit(self.url).netloc.rsplit(":", 1)[0]
            opener = _DIRECT if host in _LOOPBACK_HOSTS else _PROXIED
            with opener.open(request, timeout=self.timeout_s) as response:
                return json.loads(response.read() or b"null"), dict(response.headers)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise EndpointError(f"{exc.code} from {path}: {detail}", status=exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise EndpointError(f"cannot reach {self.url}: {exc}") from None

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for the rows of ``X`` (array-like or DataFrame), via ``POST /predict``."""
        rows = np.asarray(X).tolist()
        answer, _ = self._request("/predict", {"instances": rows})
        return np.asarray(answer["predictions"])

    def predict_batch(self, data: Any, **options: Any) -> Any:
        """Score every row of ``data`` across the fleet behind this endpoint.

        ``data``: a DataFrame, a 2-D NumPy array, or the path(s) of Parquet file(s) (read in
        pieces, so they may be larger than memory). Returns the predictions as a Series (a
        DataFrame for several outputs per row) on the input's index; for Parquet input with
        ``output=``, the output directory (one Parquet part per chunk, in input order).

        Options (all checked before any request): ``output`` (a directory: predictions are
        written there as chunks finish, and a re-run with the same output resumes: no chunk
        twice, none skipped), ``chunk_rows`` (default: measured so a request takes
        ``target_request_s``, 0.25 s), ``in_flight`` (chunks in flight at once, default 4),
        ``max_retries`` (per chunk, for connection loss, timeouts, 5xx; default 5),
        ``timeout_s``, ``encoding`` ("binary" tensors, default, or "json"), ``progress``
        (True: a bar in Jupyter, a text line elsewhere; False; or a callable). Ctrl-C stops
        cleanly and raises ``BatchInterrupted`` with the rows done. ``run_batch`` returns the
        whole ``BatchRun`` (attempts, per-replica ``summary()``, rows/s).
        """
        return self.run_batch(data, **options).result

    def run_batch(self, data: Any, **options: Any) -> Any:
        """``predict_batch`` returning the ``mltoolkit.batch.BatchRun`` (predictions, attempts,
        ``summary()``, ``rows_per_s``)."""
        from mltoolkit.batch import run_batch

        return run_batch(self, data, **options)

    def metadata(self) -> dict[str, Any]:
        """The model's Open Inference Protocol V2 metadata."""
        answer, _ = self._request(f"/v2/models/{self.model_name}")
        return answer

    def ready(self) -> bool:
        try:
            self._request(f"/v2/models/{self.model_name}/ready")
        except EndpointError:
            return False
        return True
