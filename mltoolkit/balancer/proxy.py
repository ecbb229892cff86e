"""The routing engine: replica states, a keep-alive pool per replica, health watchers, forwarding.

One ``Balancer`` per app. For each client request it reads the body once, asks the policy for a
replica, forwards the request over that replica's connection pool and passes the answer back. A
connection-level failure (refused, reset, disconnected before answering) takes the replica out of
rotation and is retried on another replica, up to ``config.retries`` times; HTTP error statuses
and timeouts are passed back as they are (a timeout as 504). The policy only chooses; all
counting happens here.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from mltoolkit.balancer.config import BalancerConfig
from mltoolkit.balancer.headers import forwarded_request_headers, returned_response_headers
from mltoolkit.balancer.health import apply_probe, mark_unreachable, probe
from mltoolkit.balancer.policies import Policy, ReplicaState, candidates

logger = logging.getLogger("mltoolkit.balancer")

IN_FLIGHT_HEADER = "X-In-Flight"
# Idle pooled connections are closed before common servers close them (uvicorn: 5 s), so a
# request rarely meets a connection the replica has already dropped.
POOL_KEEPALIVE_S = 4.0
# Headers aiohttp's client would otherwise add to requests that did not carry them.
_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


def json_error(status: int, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"error": message}),
        content_type="application/json",
    )


def parse_in_flight(value: str | None) -> int | None:
    """The replica's ``X-In-Flight`` header as a count; None when absent or not a count."""
    if value is None:
        return None
    try:
        count = int(value)
    except ValueError:
        return None
    return count if count >= 0 else None


class _Unreachable(Exception):
    """An attempt failed at the connection level: the request never got an answer."""

    def __init__(self, replica: ReplicaState, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}".rstrip(": "))
        self.replica = replica


class Balancer:
    """Replica states, policy and connection pools behind one balancer app."""

    def __init__(self, config: BalancerConfig) -> None:
        self.config = config
        self.policy = Policy.make(config.policy)
        self.states = [
            ReplicaState(name=r.name, url=r.url, node=r.node, weight=r.weight) for r in config.replicas
        ]
        self._pools: dict[str, aiohttp.ClientSession] = {}
        self._health_session: aiohttp.ClientSession | None = None
        self._watchers: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the pools, probe every replica once, then keep probing in the background."""
        for state in self.states:
            self._pools[state.name] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.config.max_connections_per_replica,
                    keepalive_timeout=POOL_KEEPALIVE_S,
                ),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=_NO_AUTO_HEADERS,
                timeout=aiohttp.ClientTimeout(total=None),
            )
        self._health_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit_per_host=2, keepalive_timeout=POOL_KEEPALIVE_S),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        await asyncio.gather(*(self._probe_once(state) for state in self.states))
        self._watchers = [asyncio.create_task(self._watch(state)) for state in self.states]

    async def stop(self) -> None:
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers = []
        sessions = [*self._pools.values()]
        if self._health_session is not None:
            sessions.append(self._health_session)
        await asyncio.gather(*(session.close() for session in sessions))
        self._pools = {}
        self._health_session = None

    # -- health ----------------------------------------------------------------------------

    async def _probe_once(self, state: ReplicaState) -> None:
        assert self._health_session is not None
        outcome = await probe(self._health_session, state.url, self.config.health_timeout_s)
        if apply_probe(state, outcome, self.config.unhealthy_after):
            verb = "back in rotation" if state.healthy else "out of rotation"
            logger.info("replica %s %s (probe %s)", state.name, verb, outcome.value)
            self._notify()

    async def _watch(self, state: ReplicaState) -> None:
        while True:
            await asyncio.sleep(self.config.health_interval_s)
            await self._probe_once(state)

    def _notify(self) -> None:
        """Wake requests waiting for a replica: some replica's state changed."""
        self._changed.set()
        self._changed = asyncio.Event()

    # -- routing ---------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """The ``GET /-/replicas`` document."""
        return {
            "policy": self.config.policy,
            "replicas": [
                {
                    "name": s.name,
                    "url": s.url,
                    "node": s.node,
                    "healthy": s.healthy,
                    "in_flight": s.in_flight,
                    "served": s.served,
                    "failed": s.failed,
                    "weight": s.weight,
                    "reported_in_flight": s.reported_in_flight,
                    "last_latency_s": s.last_latency_s,
                    "latency_ewma_s": s.latency_ewma_s,
                    "parallel_seen": s.parallel_seen,
                }
                for s in self.states
            ],
        }

    async def _choose(self, exclude: frozenset[str], deadline: float) -> ReplicaState | None:
        """The policy's pick; None when no candidate exists. Waits while the policy holds back."""
        loop = asyncio.get_running_loop()
        while True:
            chosen = self.policy.choose(self.states, exclude)
            if chosen is not None or not candidates(self.states, exclude):
                return chosen
            changed = self._changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except asyncio.TimeoutError:
                raise asyncio.TimeoutError from None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Forward one client request to a replica and pass its answer back."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.request_timeout_s
        body = await request.read()
        tried: list[str] = []
        failures: list[str] = []
        replica: ReplicaState | None = None  # the replica being tried; None while choosing
        try:
            for _ in range(1 + self.config.retries):
                replica = None
                replica = await self._choose(frozenset(tried), deadline)
                if replica is None:
                    break
                try:
                    return await self._forward(replica, request, body, deadline)
                except _Unreachable as exc:
                    tried.append(replica.name)
                    failures.append(f"{replica.name}: {exc}")
                    logger.info("replica %s unreachable (%s); out of rotation", replica.name, exc)
        except asyncio.TimeoutError:
            what = (
                f"replica {replica.name!r} did not answer"
                if replica is not None
                else "no replica became free"
            )
            return json_error(
                504, f"{what} within the balancer's request timeout of {self.config.request_timeout_s:g} s"
            )
        except aiohttp.ClientError as exc:
            name = replica.name if replica is not None else "?"
            return json_error(502, f"replica {name!r} sent a broken answer: {type(exc).__name__}: {exc}")
        if failures:
            return json_error(
                502,
                f"no replica answered after {len(failures)} attempt(s) "
                f"({'; '.join(failures)}); retries allowed: {self.config.retries}",
            )
        unhealthy = ", ".join(s.name for s in self.states if not s.healthy)
        return json_error(
            503,
            f"no healthy replica: all {len(self.states)} replicas are out of rotation ({unhealthy})",
        )

    async def _forward(
        self, replica: ReplicaState, request: web.Request, body: bytes, deadline: float
    ) -> web.Response:
        loop = asyncio.get_running_loop()
        pool = self._pools[replica.name]
        url = URL(replica.url + request.raw_path, encoded=True)
        headers = forwarded_request_headers(
            request.headers, request.remote, request.host, request.scheme
        )
        timeout = aiohttp.ClientTimeout(total=max(deadline - loop.time(), 0.001))
        started = loop.time()
        ticket = replica.begin_attempt(started)
        worked = False  # the replica did the work of this request and answered it
        try:
            async with pool.request(
                request.method,
                url,
                data=body if body else None,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as upstream:
                payload = await upstream.read()
            # Only successful POSTs (inference) show how many requests the replica works on at
            # once; GETs (health, metadata) and rejected requests are answered without a slot.
            worked = request.method == "POST" and upstream.status < 300
        except asyncio.TimeoutError:
            replica.failed += 1
            raise
        except aiohttp.ClientConnectionError as exc:
            replica.failed += 1
            if mark_unreachable(replica, self.config.unhealthy_after):
                self._notify()
            raise _Unreachable(replica, exc) from exc
        except BaseException:
            replica.failed += 1
            raise
        finally:
            replica.end_attempt(ticket, worked)
            self._notify()
        replica.record_answer(
            loop.time() - started,
            parse_in_flight(upstream.headers.get(IN_FLIGHT_HEADER)),
            failed=upstream.status >= 500,
        )
        if upstream.status >= 500:
            replica.failed += 1
        else:
            replica.served += 1
            replica.answered_since_probe += 1
        return web.Response(
            status=upstream.status,
            reason=upstream.reason,
            body=payload,
            headers=returned_response_headers(upstream.headers),
        )
