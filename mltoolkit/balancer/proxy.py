"""The routing engine: replica states, a keep-alive pool per replica, health watchers, forwarding.

One ``Balancer`` per server. For each client request (read whole by the client side) it asks the
policy for a replica, sends the request over that replica's pool and returns the answer. A
connection-level failure (refused, reset, disconnected before answering) takes the replica out
of rotation and is retried on another replica, up to ``config.retries`` times; HTTP error
statuses and timeouts are passed back as they are (a timeout as 504). The policy only chooses;
all counting happens here.

Replicas can join and leave while it runs: ``add_replica(target)`` and
``drain_replica(name)`` (no new requests; returns once the ones in flight have finished, then
the replica is gone).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from mltoolkit.balancer.config import BalancerConfig, ReplicaTarget
from mltoolkit.balancer.headers import encode_headers, forwarded_request_headers, returned_response_headers
from mltoolkit.balancer.health import apply_probe, mark_unreachable, probe
from mltoolkit.balancer.messages import ProxyRequest, Reply, json_error
from mltoolkit.balancer.policies import Policy, ReplicaState, candidates
from mltoolkit.balancer.upstream import POOL_KEEPALIVE_S, UpstreamBroken, UpstreamLost, UpstreamPool

logger = logging.getLogger("mltoolkit.balancer")

_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})


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


class _Replica:
    """What the engine keeps per replica beside its policy-visible state."""

    __slots__ = ("state", "pool", "host_header", "watcher")

    def __init__(self, state: ReplicaState, pool: UpstreamPool, host_header: bytes) -> None:
        self.state = state
        self.pool = pool
        self.host_header = host_header
        self.watcher: asyncio.Task[None] | None = None


class Balancer:
    """Replica states, policy and connection pools behind one balancer server."""

    def __init__(self, config: BalancerConfig) -> None:
        self.config = config
        self.policy = Policy.make(config.policy)
        self.states: list[ReplicaState] = []  # replaced, never mutated: iterations stay valid
        self._replicas: dict[str, _Replica] = {}
        self._draining: frozenset[str] = frozenset()
        self._health_session: aiohttp.ClientSession | None = None
        self._changed = asyncio.Event()
        self._waiting = 0  # requests and drains waiting for a change of some replica's state
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the pools, probe every replica once, then keep probing in the background."""
        self._health_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit_per_host=2, keepalive_timeout=POOL_KEEPALIVE_S),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        added = [self._add(target) for target in self.config.replicas]
        await asyncio.gather(*(self._probe_once(replica.state) for replica in added))
        for replica in added:
            replica.watcher = asyncio.create_task(self._watch(replica.state))
        self._started = True

    async def stop(self) -> None:
        watchers = [r.watcher for r in self._replicas.values() if r.watcher is not None]
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        for replica in self._replicas.values():
            replica.pool.close()
        if self._health_session is not None:
            await self._health_session.close()
            self._health_session = None
        self._started = False

    # -- membership ------------------------------------------------------------------------

    def _add(self, target: ReplicaTarget) -> _Replica:
        parts = urlsplit(target.url)
        if parts.scheme != "http":
            raise ValueError(f"replica {target.name!r}: {target.url!r}; the balancer speaks http:// only")
        port = parts.port or 80
        state = ReplicaState(name=target.name, url=target.url, node=target.node, weight=target.weight)
        pool = UpstreamPool(parts.hostname or "127.0.0.1", port, self.config.max_connections_per_replica)
        replica = _Replica(state, pool, parts.netloc.encode())
        self._replicas[target.name] = replica
        self.states = [*self.states, state]
        return replica

    async def add_replica(self, target: ReplicaTarget) -> None:
        """Put a new replica into rotation (after one probe, as at start) and keep probing it."""
        if not isinstance(target, ReplicaTarget):
            raise TypeError(f"add_replica takes a ReplicaTarget, not {type(target).__name__}")
        if target.name in self._replicas:
            raise ValueError(
                f"replica name {target.name!r} is already in use"
                + (" (still draining)" if target.name in self._draining else "")
            )
        replica = self._add(target)
        await self._probe_once(replica.state)
        replica.watcher = asyncio.create_task(self._watch(replica.state))
        logger.info("replica %s added (%s)", target.name, target.url)
        self._notify()

    async def drain_replica(self, name: str) -> None:
        """Send ``name`` no new request, wait for its requests in flight to finish, remove it."""
        replica = self._replicas.get(name)
        if replica is None:
            raise ValueError(f"no replica named {name!r}; the replicas are {list(self._replicas)}")
        self._draining = self._draining | {name}
        logger.info("replica %s draining (%d in flight)", name, replica.state.in_flight)
        while replica.state.in_flight > 0:
            await self._wait_for_change(None)
        if replica.watcher is not None:
            replica.watcher.cancel()
            await asyncio.gather(replica.watcher, return_exceptions=True)
        replica.pool.close()
        del self._replicas[name]
        self.states = [s for s in self.states if s is not replica.state]
        self._draining = self._draining - {name}
        logger.info("replica %s removed", name)

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
        if self._waiting:
            self._changed.set()
            self._changed = asyncio.Event()

    async def _wait_for_change(self, timeout_s: float | None) -> None:
        changed = self._changed
        self._waiting += 1
        try:
            if timeout_s is None:
                await changed.wait()
            else:
                await asyncio.wait_for(changed.wait(), timeout_s)
        finally:
            self._waiting -= 1

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
                    "draining": s.name in self._draining,
                    "in_flight": s.in_flight,
                    "served": s.served,
                    "failed": s.failed,
                    "weight": s.weight,
                    "reported_in_flight": s.reported_in_flight,
                    "last_latency_s": s.last_latency_s,
                    "latency_ewma_s": s.latency_ewma_s,
                    "parallel_seen": s.parallel_seen,
                    "connections_opened": self._replicas[s.name].pool.opened,
                }
                for s in self.states
            ],
        }

    async def _choose(self, exclude: frozenset[str], deadline: float) -> ReplicaState | None:
        """The policy's pick; None when no candidate exists. Waits while the policy holds back."""
        loop = asyncio.get_running_loop()
        while True:
            states = self.states
            chosen = self.policy.choose(states, exclude)
            if chosen is not None or not candidates(states, exclude):
                return chosen
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            try:
                await self._wait_for_change(remaining)
            except asyncio.TimeoutError:
                raise TimeoutError from None

    async def handle(self, request: ProxyRequest) -> Reply:
        """Forward one client request to a replica and return its answer (or the error's)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.request_timeout_s
        tried: list[str] = []
        failures: list[str] = []
        replica: ReplicaState | None = None  # the replica being tried; None while choosing
        head = None
        try:
            for _ in range(1 + self.config.retries):
                replica = None
                exclude = self._draining.union(tried) if tried else self._draining
                replica = await self._choose(exclude, deadline)
                if replica is None:
                    break
                if head is None:
                    head = self._request_head(request)
                try:
                    return await self._forward(replica, request, head, deadline)
                except _Unreachable as exc:
                    tried.append(replica.name)
                    failures.append(f"{replica.name}: {exc}")
                    logger.info("replica %s unreachable (%s); out of rotation", replica.name, exc)
        except TimeoutError:
            what = (
                f"replica {replica.name!r} did not answer"
                if replica is not None
                else "no replica became free"
            )
            return json_error(
                504, f"{what} within the balancer's request timeout of {self.config.request_timeout_s:g} s"
            )
        except UpstreamBroken as exc:
            name = replica.name if replica is not None else "?"
            return json_error(502, f"replica {name!r} sent a broken answer: {exc}")
        if failures:
            return json_error(
                502,
                f"no replica answered after {len(failures)} attempt(s) "
                f"({'; '.join(failures)}); retries allowed: {self.config.retries}",
            )
        states = self.states
        unhealthy = ", ".join(s.name for s in states if not s.healthy)
        return json_error(
            503,
            f"no healthy replica: all {len(states)} replicas are out of rotation ({unhealthy})",
        )

    @staticmethod
    def _request_head(request: ProxyRequest) -> bytes:
        """The request's headers for any replica (all but Host), framing included."""
        headers = forwarded_request_headers(request.headers, request.client_ip, request.host)
        if request.body or request.method in _BODY_METHODS:
            headers.append((b"Content-Length", b"%d" % len(request.body)))
        return encode_headers(headers) + b"\r\n"

    async def _forward(
        self, state: ReplicaState, request: ProxyRequest, head: bytes, deadline: float
    ) -> Reply:
        replica = self._replicas[state.name]
        data = b"%s %s HTTP/1.1\r\nHost: %s\r\n%s%s" % (
            request.method, request.target, replica.host_header, head, request.body
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        ticket = state.begin_attempt(started)
        worked = False  # the replica did the work of this request and answered it
        try:
            async with asyncio.timeout_at(deadline):
                answer = await replica.pool.exchange(data, head=request.method == b"HEAD")
            # Only successful POSTs (inference) show how many requests the replica works on at
            # once; GETs (health, metadata) and rejected requests are answered without a slot.
            worked = request.method == b"POST" and answer.status < 300
        except UpstreamLost as exc:
            state.failed += 1
            if mark_unreachable(state, self.config.unhealthy_after):
                self._notify()
            raise _Unreachable(state, exc) from exc
        except BaseException:
            state.failed += 1
            raise
        finally:
            state.end_attempt(ticket, worked)
            self._notify()
        status = answer.status
        state.record_answer(loop.time() - started, answer.in_flight, failed=status >= 500)
        if status >= 500:
            state.failed += 1
        else:
            state.served += 1
            state.answered_since_probe += 1
        return Reply(status, answer.reason, returned_response_headers(answer.headers), answer.body)
