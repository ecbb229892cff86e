"""Fixtures for the model server's tests: saved real models and in-process servers, all closed."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import joblib
import pytest
from aiohttp.test_utils import TestClient, TestServer

from mltoolkit.serving import ServerConfig, create_app
from mltoolkit.spec import BatchingSpec

from .process import ServerProcess, start_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def digits_path(tmp_path_factory, digits_model) -> str:
    """The real digits LogisticRegression, saved with joblib."""
    path = tmp_path_factory.mktemp("models") / "digits.joblib"
    joblib.dump(digits_model[0], path)
    return str(path)


@pytest.fixture
def save_model(tmp_path) -> Callable[[Any, str], str]:
    """``save_model(obj, "name")`` → the path of ``obj`` saved with joblib under tmp_path."""

    def save(model: Any, name: str = "model") -> str:
        path = Path(tmp_path) / f"{name}.joblib"
        joblib.dump(model, path)
        return str(path)

    return save


def make_config(model_path: str, model_name: str = "digits", **batching: Any) -> ServerConfig:
    """A config for in-process tests; keyword arguments go to ``BatchingSpec``."""
    extra = {k: batching.pop(k) for k in ("max_request_bytes",) if k in batching}
    return ServerConfig(
        model_path=model_path,
        model_name=model_name,
        port=0,
        replica_id="replica-a",
        batching=BatchingSpec(**batching),
        **extra,
    )


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[ServerConfig], Awaitable[TestClient]]]:
    """``client = await serve(config)``: the app on a loopback port, closed after the test."""
    clients: list[TestClient] = []

    async def start(config: ServerConfig) -> TestClient:
        client = TestClient(TestServer(create_app(config), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
def servers():
    """``servers(*args)`` → a started ServerProcess; every one is stopped after the test."""
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        server = start_server(*args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(signal.SIGKILL if server.process.poll() is None else signal.SIGTERM)
