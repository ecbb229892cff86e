"""A fleet of simulated replicas in one process: one asyncio loop, one port per replica, plus a
control port.

Control API (JSON): ``GET /replicas`` -> ``{"replicas": [stats...]}`` with each replica's ``name``,
``url``, ``slots``, ``speed``, ``busy``, ``waiting``, ``in_flight``, ``arrived``, ``served``, ``rejected``,
``busy_s``, ``slowed``, ``slow_factor``, ``dead``; ``POST /replicas/{name}/slowdown``
``{"factor": 10}``; ``POST /replicas/{name}/die`` ``{"mode": "close" | "hang"}``.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import numpy as np
from aiohttp import web

from mltoolkit.sim.fleet_spec import DEATH_MODES, FleetSpec
from mltoolkit.sim.replica import SimReplica


class Fleet:
    """Start with ``await fleet.start()`` (or ``async with Fleet(spec) as fleet``); stop with
    ``await fleet.stop()``, which ends every connection and frees every port."""

    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(len(spec.replicas))]
        self.replicas = {
            r.name: SimReplica(r, spec.costs, rng) for r, rng in zip(spec.replicas, rngs)
        }
        self.urls: dict[str, str] = {}
        self.control_url = ""
        self._runners: dict[str, web.AppRunner] = {}
        self._sites: dict[str, web.TCPSite] = {}
        self._control: web.AppRunner | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._background: set[asyncio.Future[None]] = set()
        self.started_at: float | None = None

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        try:
            for i, (name, replica) in enumerate(self.replicas.items()):
                port = self.spec.base_port + i if self.spec.base_port else 0
                runner = web.AppRunner(replica.app, access_log=None, shutdown_timeout=2.0)
                await runner.setup()
                self._runners[name] = runner
                site = web.TCPSite(runner, self.spec.host, port, backlog=1024)
                await site.start()
                self._sites[name] = site
                self.urls[name] = _url(self.spec.host, runner.addresses[0][1])
            control = web.Application()
            control.router.add_get("/replicas", self._list)
            control.router.add_post("/replicas/{name}/slowdown", self._slowdown)
            control.router.add_post("/replicas/{name}/die", self._die)
            self._control = web.AppRunner(control, access_log=None, shutdown_timeout=1.0)
            await self._control.setup()
            await web.TCPSite(self._control, self.spec.host, 0).start()
            self.control_url = _url(self.spec.host, self._control.addresses[0][1])
        except BaseException:
            await self.stop()
            raise
        loop = asyncio.get_running_loop()
        self.started_at = loop.time()
        for r in self.spec.replicas:
            if r.slow_at_s is not None:
                self._timers.append(loop.call_later(r.slow_at_s, self.replicas[r.name].slow_down))
            if r.die_at_s is not None:
                self._timers.append(
                    loop.call_later(r.die_at_s, lambda n=r.name, m=r.death_mode: self._spawn_kill(n, m))
                )

    def _spawn_kill(self, name: str, mode: str) -> None:
        task = asyncio.ensure_future(self.kill(name, mode))
        self._background.add(task)  # keep a reference until it finishes
        task.add_done_callback(self._background.discard)

    async def kill(self, name: str, mode: str = "close") -> None:
        """Kill replica ``name``: ``close`` stops listening and drops its connections; ``hang``
        keeps them open but never answers again."""
        replica = self.replicas[name]
        replica.die(mode)
        if mode == "close":
            site = self._sites.pop(name, None)
            if site is not None:
                await site.stop()  # closes the listening socket: new connections are refused
            runner = self._runners.get(name)
            if runner is not None and runner.server is not None:
                for handler in runner.server.connections:
                    if handler.transport is not None:
                        handler.transport.abort()

    def slow_down(self, name: str, factor: float | None = None) -> None:
        self.replicas[name].slow_down(factor)

    def stats(self) -> list[dict[str, Any]]:
        return [{**r.stats(), "url": self.urls.get(name, "")} for name, r in self.replicas.items()]

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for replica in self.replicas.values():
            replica.release_hung()
        runners = list(self._runners.values()) + ([self._control] if self._control else [])
        self._runners.clear()
        self._sites.clear()
        self._control = None
        await asyncio.gather(*(r.cleanup() for r in runners), return_exceptions=True)

    # -- control API ---------------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        return web.json_response({"replicas": self.stats(), "control": self.control_url})

    def _replica_name(self, request: web.Request) -> str:
        name = request.match_info["name"]
        if name not in self.replicas:
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"replica {name!r} not in {sorted(self.replicas)}"}),
                content_type="application/json",
            )
        return name

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json() if request.can_read_body else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise _bad("the body must be a JSON object")
        return body

    async def _slowdown(self, request: web.Request) -> web.Response:
        name = self._replica_name(request)
        body = await self._body(request)
        factor = body.get("factor", self.replicas[name].slow_factor)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not (
            math.isfinite(factor) and 1 <= factor <= 1e6
        ):
            raise _bad(f"field 'factor': {factor!r} is not allowed; expected a number from 1 to 1e6")
        self.slow_down(name, float(factor))
        return web.json_response(self.replicas[name].stats())

    async def _die(self, request: web.Request) -> web.Response:
        name = self._replica_name(request)
        body = await self._body(request)
        mode = body.get("mode", "close")
        if mode not in DEATH_MODES:
            raise _bad(f"field 'mode': {mode!r} is not allowed; expected one of {list(DEATH_MODES)}")
        await self.kill(name, mode)
        return web.json_response(self.replicas[name].stats())


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
