"""The balancer's aiohttp application: admin routes under ``/-/`` and everything else proxied."""

from __future__ import annotations

from typing import AsyncIterator

from aiohttp import web

from mltoolkit.balancer.config import BalancerConfig
from mltoolkit.balancer.proxy import Balancer, json_error

BALANCER_KEY = web.AppKey("balancer", Balancer)
ADMIN_PREFIX = "/-/"
ADMIN_PATHS = ("/-/health", "/-/replicas")


async def _health(request: web.Request) -> web.Response:
    balancer = request.app[BALANCER_KEY]
    healthy = sum(1 for s in balancer.states if s.healthy)
    return web.json_response({"status": "ok", "healthy_replicas": healthy, "replicas": len(balancer.states)})


async def _replicas(request: web.Request) -> web.Response:
    return web.json_response(request.app[BALANCER_KEY].report())


async def _proxy(request: web.Request) -> web.StreamResponse:
    if request.path.startswith(ADMIN_PREFIX):
        if request.path in ADMIN_PATHS:
            return json_error(405, f"{request.method} is not allowed on {request.path}; use GET")
        return json_error(404, f"no admin route {request.path}; the admin routes are {list(ADMIN_PATHS)}")
    return await request.app[BALANCER_KEY].handle(request)


def create_app(config: BalancerConfig) -> web.Application:
    """The balancer as an aiohttp app; replicas are probed once on startup, then in the background."""
    balancer = Balancer(config)
    app = web.Application(client_max_size=config.max_request_bytes)
    app[BALANCER_KEY] = balancer

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await balancer.start()
        yield
        await balancer.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/-/health", _health, allow_head=False)
    app.router.add_get("/-/replicas", _replicas, allow_head=False)
    app.router.add_route("*", "/{tail:.*}", _proxy)
    return app
