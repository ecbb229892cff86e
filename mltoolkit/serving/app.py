"""The model server's HTTP application (aiohttp): routes, headers, errors, shutdown.

Routes: ``POST /predict``; Open Inference Protocol V2 ``GET /v2``, ``GET /v2/health/live``,
``GET /v2/health/ready``, ``GET /v2/models/{name}[/versions/{version}]``, ``.../ready`` and
``POST .../infer``.

Every response that reaches the application, errors included, carries ``X-Replica: <id>`` and
``X-In-Flight: <n>``, where n counts the *other* requests still in progress on this replica when
the answer leaves (so an idle replica answers 0). Errors are JSON ``{"error": "..."}`` with a 4xx
status for bad requests (the server stays up), 500 when the model's own predict raises; the
ready endpoints answer 503 once shutdown has begun. (A request so malformed that aiohttp's HTTP
parser rejects it never reaches the application, so its 400 has no such headers.)

HTTP stack: aiohttp, shared with the balancer; per-request work is kept to one JSON parse, one
``np.asarray``, one ``tolist`` and one JSON encode. JSON goes through orjson (see
``protocol.load_json``): measured with benchmarks/serving.py's setup (one core, 32 connections,
4 interleaved rounds of 5 s), it raised 64-row ``/predict`` throughput by a median 48% (34-61%;
the standard library's parse was ~250 of ~900 us per request) and 1-row by 18% (-5 to +33%).
aiohttp itself then costs most of what is left: ``GET /v2/health/live`` answers ~12,000-15,000
requests/s on one core with 32 connections; uvloop under aiohttp was no faster (A/B within noise).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Awaitable, Callable

from aiohttp import web

from mltoolkit.serving.batching import Batcher
from mltoolkit.serving.config import ServerConfig
from mltoolkit.serving.model import PredictError, ServedModel, load_model
from mltoolkit.serving.protocol import (
    RequestError,
    dumps,
    infer_response,
    parse_infer_request,
    parse_predict_request,
    predict_response,
)

log = logging.getLogger("mltoolkit.serving")
SERVER_NAME = "mltoolkit"
JSON = "application/json"


@dataclass
class ServerState:
    """The live state of one replica, reachable in-process as ``app[STATE]``."""

    config: ServerConfig
    model: ServedModel
    batcher: Batcher
    in_flight: int = 0
    served: int = 0
    ready: bool = True


STATE = web.AppKey("mltoolkit_serving_state", ServerState)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(config: ServerConfig, model: ServedModel | None = None) -> web.Application:
    """The aiohttp application for ``config`` (the model is loaded from ``config.model_path``
    unless given)."""
    served = model if model is not None else load_model(
        config.model_path, config.model_name, config.model_sha256
    )
    batcher = Batcher(served.predict, config.batching, slowdown=config.slowdown)
    state = ServerState(config=config, model=served, batcher=batcher)
    app = web.Application(
        client_max_size=config.max_request_bytes, middlewares=[_replica_headers(state)]
    )
    app[STATE] = state
    handlers = _Handlers(state)
    app.router.add_get("/v2", handlers.server_metadata)
    app.router.add_get("/v2/health/live", handlers.live)
    app.router.add_get("/v2/health/ready", handlers.ready)
    app.router.add_post("/predict", handlers.predict)
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        app.router.add_get(base, handlers.model_metadata)
        app.router.add_get(f"{base}/ready", handlers.model_ready)
        app.router.add_post(f"{base}/infer", handlers.infer)
    app.on_shutdown.append(handlers.on_shutdown)
    app.on_cleanup.append(handlers.on_cleanup)
    return app


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(body=dumps(payload), status=status, content_type=JSON)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _replica_headers(
    state: ServerState,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    replica = state.config.replica_id

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        state.in_flight += 1
        try:
            try:
                response = await handler(request)
            except RequestError as exc:
                response = _error(exc.status, exc.message)
                if exc.status == 408:  # the rest of the body may still come: do not wait for it
                    response.force_close()
            except PredictError as exc:
                response = _error(500, str(exc))
            except web.HTTPRequestEntityTooLarge:
                response = _error(
                    413,
                    f"the request body is larger than the limit of "
                    f"{state.config.max_request_bytes} bytes (--max-request-bytes)",
                )
            except web.HTTPException as exc:  # 404/405 from the router
                response = _error(exc.status, f"{exc.reason}: {request.method} {request.path}")
            except Exception as exc:  # a bug or an unencodable prediction: answer, log, stay up
                log.exception("error answering %s %s", request.method, request.path)
                response = _error(500, f"internal error: {type(exc).__name__}: {exc}")
            response.headers["X-Replica"] = replica
            response.headers["X-In-Flight"] = str(state.in_flight - 1)
            return response
        finally:
            state.in_flight -= 1
            state.served += 1

    return middleware


class _Handlers:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.model = state.model
        self.batcher = state.batcher

    async def server_metadata(self, request: web.Request) -> web.Response:
        return _json({"name": SERVER_NAME, "version": _VERSION, "extensions": []})

    async def live(self, request: web.Request) -> web.Response:
        return _json({"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        ready = self.state.ready
        return _json({"ready": ready}, 200 if ready else 503)

    def _check_model(self, request: web.Request) -> None:
        name = request.match_info["name"]
        if name != self.model.name:
            raise RequestError(
                404, f"unknown model {name!r}; this server serves {self.model.name!r}"
            )
        version = request.match_info.get("version")
        if version is not None and version != self.model.version:
            raise RequestError(
                404,
                f"unknown version {version!r} of model {name!r}; it has version "
                f"{self.model.version!r}",
            )

    async def model_metadata(self, request: web.Request) -> web.Response:
        self._check_model(request)
        return _json(self.model.metadata())

    async def model_ready(self, request: web.Request) -> web.Response:
        self._check_model(request)
        ready = self.state.ready
        return _json({"name": self.model.name, "ready": ready}, 200 if ready else 503)

    async def _body(self, request: web.Request) -> bytes:
        limit = self.state.config.max_request_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise RequestError(
                413,
                f"the request body of {length} bytes is larger than the limit of {limit} "
                "bytes (--max-request-bytes)",
            )
        timeout = self.state.config.body_timeout_s
        try:
            async with asyncio.timeout(timeout):
                return await request.read()
        except TimeoutError:
            raise RequestError(
                408, f"the request body did not arrive within {timeout:g} s (--body-timeout)"
            ) from None

    async def predict(self, request: web.Request) -> web.Response:
        rows = parse_predict_request(await self._body(request), self.model.n_features)
        predictions = await self.batcher.predict(rows)
        return _json(predict_response(predictions))

    async def infer(self, request: web.Request) -> web.Response:
        self._check_model(request)
        parsed = parse_infer_request(await self._body(request), self.model.n_features)
        predictions = await self.batcher.predict(parsed.rows)
        return _json(infer_response(self.model.name, self.model.version, parsed, predictions))

    async def on_shutdown(self, app: web.Application) -> None:
        self.state.ready = False
        self.batcher.flush("shutdown")

    async def on_cleanup(self, app: web.Application) -> None:
        self.batcher.close()


def _package_version() -> str:
    try:
        return version("mltoolkit")
    except PackageNotFoundError:
        return "0+unknown"


_VERSION = _package_version()
