"""Fixtures for batch tests: a real local fleet, and a small scripted V2 server on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from mltoolkit.endpoint import Endpoint
from mltoolkit.serving import binary
from mltoolkit.serving.protocol import InferRequest


class ScriptedServer:
    """A V2 server for 3-feature rows that predicts each row's sum. ``fail_next`` answers the
    next N infer requests with 503 (as the balancer does when no replica can take it);
    ``requests`` records (method, path) of everything received."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.fail_next = 0
        self.delay_s = 0.0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Replica", "scripted-0")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                with server.lock:
                    server.requests.append(("GET", self.path))
                meta = {"name": "sum", "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 3]}]}
                self._answer(200, json.dumps(meta).encode(), {"Content-Type": "application/json"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with server.lock:
                    server.requests.append(("POST", self.path))
                    failing = server.fail_next > 0
                    server.fail_next -= int(failing)
                if server.delay_s:
                    time.sleep(server.delay_s)
                if failing:
                    self._answer(503, b'{"error": "no replica"}', {"Content-Type": "application/json"})
                    return
                length = self.headers.get(binary.HEADER_LENGTH)
                parsed = binary.parse_request(body, None if length is None else int(length), 3)
                out, out_length = binary.encode_response(
                    "sum", "1", InferRequest(rows=parsed.request.rows), parsed.request.rows.sum(axis=1)
                )
                self._answer(200, out, {binary.HEADER_LENGTH: str(out_length)})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def posts(self) -> int:
        return sum(1 for method, _ in self.requests if method == "POST")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> ScriptedServer:
    server = ScriptedServer()
    yield server
    server.close()


@pytest.fixture
def scripted_endpoint(scripted) -> Endpoint:
    return Endpoint(scripted.url, "sum", timeout_s=10)


@pytest.fixture
def fleet(digits_model) -> Callable[..., object]:
    """``fleet(replicas=2)`` → a LocalTarget up with the digits model; downed after the test."""
    from mltoolkit.local import LocalTarget
    from mltoolkit.spec import BalancerSpec, DeploymentSpec, ModelSpec

    targets = []

    def start(replicas: int = 2, policy: str = "least_request", retries: int = 1) -> LocalTarget:
        clf = digits_model[0]
        target = LocalTarget(nodes=2, progress=False)
        targets.append(target)
        target.up(
            DeploymentSpec(
                model=ModelSpec.from_object(clf, name="digits"),
                replicas=replicas,
                balancer=BalancerSpec(policy=policy, retries=retries),
            )
        )
        return target

    yield start
    for target in targets:
        target.down()


def digits_rows(digits_model, copies: int) -> np.ndarray:
    return np.tile(digits_model[1], (copies, 1))
