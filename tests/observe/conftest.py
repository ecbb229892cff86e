"""A tiny model server for load tests: real aiohttp on a loopback port, in its own thread.

It records what it saw (requests, bodies, the most requests it held at once) and can be made
slow, serial, or failing.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from mltoolkit.endpoint import Endpoint

MODEL_NAME = "digits"


@dataclass
class Behaviour:
    delay_s: float = 0.0
    one_at_a_time: bool = False  # handle requests serially (a lock around the delay)
    fail_every: int = 0  # every n-th inference request gets a 400
    replicas: tuple[str, ...] = ("r0", "r1")
    metadata_input: dict = field(
        default_factory=lambda: {"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}
    )


class FakeModelServer:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.bodies: list[tuple[str, object]] = []  # (path, JSON) of inference requests
        self.in_flight = 0
        self.max_in_flight = 0
        self.inferences = 0
        self._lock: asyncio.Lock | None = None
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fake-model-server", daemon=True
        )

    def endpoint(self) -> Endpoint:
        return Endpoint(self.url, MODEL_NAME, timeout_s=10.0)

    async def _infer(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.inferences += 1
            number = self.inferences
            self.bodies.append((request.path, await request.json()))
            if self.behaviour.one_at_a_time:
                async with self._lock:
                    await asyncio.sleep(self.behaviour.delay_s)
            elif self.behaviour.delay_s:
                await asyncio.sleep(self.behaviour.delay_s)
            replicas = self.behaviour.replicas
            headers = {"X-Replica": replicas[number % len(replicas)]} if replicas else {}
            if self.behaviour.fail_every and number % self.behaviour.fail_every == 0:
                return web.Response(
                    status=400, text=f"bad input in request {number}", headers=headers
                )
            return web.json_response({"predictions": [0]}, headers=headers)
        finally:
            self.in_flight -= 1

    async def _metadata(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        return web.json_response(
            {"name": MODEL_NAME, "inputs": [self.behaviour.metadata_input], "outputs": []}
        )

    async def _start(self) -> None:
        self._lock = asyncio.Lock()
        app = web.Application()
        app.router.add_post("/predict", self._infer)
        app.router.add_post("/v2/models/{name}/infer", self._infer)
        app.router.add_get("/v2/models/{name}", self._metadata)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    def start(self) -> FakeModelServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
        self._sock.close()


@pytest.fixture
def fake_server():
    """``fake_server(**behaviour)`` → a started ``FakeModelServer``; all stopped at test end."""
    started: list[FakeModelServer] = []

    def start(**behaviour) -> FakeModelServer:
        server = FakeModelServer(Behaviour(**behaviour))
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
