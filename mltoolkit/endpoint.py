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
