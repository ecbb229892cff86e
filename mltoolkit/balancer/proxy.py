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
from time import monotonic
from typing import Any, Callable, Coroutine
from urllib.parse import urlsplit

import aiohttp

from mltoolkit.balancer.config import BalancerConfig, ReplicaTarget
from mltoolkit.balancer.headers import forwarded_request_head, returned_response_head
from mltoolkit.balancer.health import apply_probe, mark_unreachable, probe
from mltoolkit.balancer.messages import ProxyRequest, Reply, json_error
from mltoolkit.balancer.metrics import ReplicaTraffic
from mltoolkit.balancer.policies import Policy, ReplicaState, candidates
from mltoolkit.balancer.upstream import (
    POOL_KEEPALIVE_S,
    UpstreamAnswer,
    UpstreamBroken,
    UpstreamLost,
    UpstreamPool,
)

logger = logging.getLogger("mltoolkit.balancer")

# Latencies are measured with time.monotonic(), not loop.time(): uvloop's clock is libuv's, cached
# once per loop iteration at millisecond resolution, and on a busy loop that skews every latency
# average the policies learn from (measured: ewma's p99 2.8x the ideal instead of 1.1x at 90 %
# load in benchmarks/balance.py).
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
# Requests a hedge may copy: predictions (POST) and reads; model servers answer both without
# side effects.
_HEDGED_METHODS = frozenset({b"POST", b"GET", b"HEAD"})
# A request waits this many times the slowest other replica's latency average before it is hedged.
HEDGE_MULTIPLE = 3.0


def parse_in_flight(value: str | None) -> int | None:
    """The replica's ``X-In-Flight`` header as a count; None when absent or not a count."""
    if value is None:
        return None
    try:
        count = int(value)
    except ValueError:
        return None
    return count if count >= 0 else None


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
        self._traffic: dict[str, ReplicaTraffic] = {}  # what each replica served
        self.hedged: dict[str, int] = {}  # copies of stuck requests sent to each replica
        self._draining: frozenset[str] = frozenset()
        self._health_session: aiohttp.ClientSession | None = None
        self._changed = asyncio.Event()
        self._waiting = 0  # requests and drains waiting for a change of some replica's state
        self._started = False
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[Reply]] = set()
        self._abandoned: set[asyncio.Task[Reply]] = set()  # stuck attempts that lost a hedge

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
        for task in (*watchers, *self._abandoned):
            task.cancel()
        await asyncio.gather(*watchers, *self._abandoned, return_exceptions=True)
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
        self._traffic[target.name] = ReplicaTraffic(target.name, target.node)
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
        del self._traffic[name]
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

    def traffic(self) -> list[ReplicaTraffic]:
        """What each replica in rotation served (counts, latency histogram), in replica order."""
        return [self._traffic[s.name] for s in self.states]

    def in_flight(self) -> dict[str, int]:
        return {s.name: s.in_flight for s in self.states}

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
                    "hedged": self.hedged.get(s.name, 0),
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

    def begin(self, request: ProxyRequest, done: Callable[[Reply], None]) -> None:
        """Forward ``request``; ``done(reply)`` is called once with the answer.

        The common case runs without a task: the policy picks a replica at once, its pool has an
        idle connection, and the answer's arrival calls back. Anything else (the policy holds the
        request, a connection must be opened or waited for, a failure to retry) continues in
        ``handle``, with what happened so far.
        """
        loop = self._loop
        deadline = loop.time() + self.config.request_timeout_s
        if self.config.hedge and request.method in _HEDGED_METHODS:
            self._spawn(self.handle(request, deadline), done)  # hedging needs a task to wait
            return
        state = self.policy.choose(self.states, self._draining)
        if state is None:
            self._spawn(self.handle(request, deadline), done)
            return
        replica = self._replicas[state.name]
        started = monotonic()
        # counted as in flight at once, before anything else is chosen (policies read in_flight)
        ticket = state.begin_attempt(started)
        connection = replica.pool.take_idle()
        if connection is None:
            self._spawn(self.handle(request, deadline, first=(state, ticket, started)), done)
            return
        data = self._request_bytes(request, replica, self._request_head(request))

        def answered(answer: UpstreamAnswer | None, exc: BaseException | None) -> None:
            if answer is not None:
                state.end_attempt(ticket, request.method == b"POST" and answer.status < 300)
                self._notify()
                done(self._answered(state, answer, monotonic() - started))
                return
            if isinstance(exc, UpstreamLost) and not exc.answered_bytes:
                # a pooled connection the replica had closed: once more on a new one, no failure
                retry_started = monotonic()
                again = state.begin_attempt(retry_started)
                state.end_attempt(ticket, False)
                self._spawn(
                    self.handle(request, deadline, first=(state, again, retry_started), fresh=True),
                    done,
                )
                return
            state.failed += 1
            self._traffic[state.name].observe(monotonic() - started, 0)
            state.end_attempt(ticket, False)
            self._notify()
            if isinstance(exc, UpstreamLost):
                failure = self._unreachable(state, exc)
                self._spawn(self.handle(request, deadline, tried=[state.name], failures=[failure]), done)
            elif isinstance(exc, TimeoutError):
                done(self._timed_out(state))
            elif isinstance(exc, UpstreamBroken):
                done(json_error(502, f"replica {state.name!r} sent a broken answer: {exc}"))
            else:
                logger.error("replica %s: unexpected %r", state.name, exc)
                done(json_error(500, "internal error in the balancer (see its log)"))

        connection.send(data, request.method == b"HEAD", deadline, answered)

    def _spawn(self, work: Coroutine[Any, Any, Reply], done: Callable[[Reply], None]) -> None:
        def finished(task: asyncio.Task[Reply]) -> None:
            if task.cancelled() or task.exception() is not None:
                if not task.cancelled():
                    logger.error("error forwarding a request", exc_info=task.exception())
                done(json_error(500, "internal error in the balancer (see its log)"))
            else:
                done(task.result())

        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(finished)

    def _unreachable(self, state: ReplicaState, exc: BaseException) -> str:
        """A connection-level failure on ``state``: out of rotation; the failure's description."""
        if mark_unreachable(state, self.config.unhealthy_after):
            self._notify()
        logger.info("replica %s unreachable (%s); out of rotation", state.name, exc)
        return f"{state.name}: {type(exc).__name__}: {exc}"

    def _timed_out(self, state: ReplicaState | None) -> Reply:
        what = f"replica {state.name!r} did not answer" if state is not None else "no replica became free"
        return json_error(
            504, f"{what} within the balancer's request timeout of {self.config.request_timeout_s:g} s"
        )

    async def handle(
        self,
        request: ProxyRequest,
        deadline: float | None = None,
        first: tuple[ReplicaState, int, float] | None = None,
        fresh: bool = False,
        tried: list[str] | None = None,
        failures: list[str] | None = None,
    ) -> Reply:
        """Forward one client request to a replica and return its answer (or the error's).

        ``begin`` hands over here what it has done: the ``first`` replica already chosen, with
        its attempt's ticket and start (to send on a ``fresh`` connection, if so), or the
        replicas ``tried`` and their ``failures``.
        """
        loop = self._loop
        if deadline is None:
            deadline = loop.time() + self.config.request_timeout_s
        tried = tried or []
        failures = failures or []
        replica: ReplicaState | None = None  # the replica being tried; None while choosing
        head = None
        try:
            for _ in range(1 + self.config.retries - len(failures)):
                replica = None
                begun: tuple[int, float] | None = None
                if first is not None:
                    replica, ticket, started = first
                    begun, first = (ticket, started), None
                else:
                    exclude = self._draining.union(tried) if tried else self._draining
                    replica = await self._choose(exclude, deadline)
                if replica is None:
                    break
                if head is None:
                    head = self._request_head(request)
                try:
                    if self.config.hedge and request.method in _HEDGED_METHODS:
                        return await self._forward_hedged(replica, request, head, deadline, fresh, begun)
                    return await self._forward(replica, request, head, deadline, fresh, begun)
                except UpstreamLost as exc:
                    tried.append(replica.name)
                    failures.append(self._unreachable(replica, exc))
                fresh = False
        except TimeoutError:
            return self._timed_out(replica)
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
        if not states:
            return json_error(503, "no replica yet: none has been found (discovery adds them when ready)")
        unhealthy = ", ".join(s.name for s in states if not s.healthy)
        return json_error(
            503,
            f"no healthy replica: all {len(states)} replicas are out of rotation ({unhealthy})",
        )

    @staticmethod
    def _request_head(request: ProxyRequest) -> bytes:
        """The request's headers for any replica (all but Host), framing included."""
        head = forwarded_request_head(request.headers, request.client_ip, request.host)
        if request.body or request.method in _BODY_METHODS:
            return head + b"Content-Length: %d\r\n\r\n" % len(request.body)
        return head + b"\r\n"

    @staticmethod
    def _request_bytes(request: ProxyRequest, replica: _Replica, head: bytes) -> bytes:
        return b"%s %s HTTP/1.1\r\nHost: %s\r\n%s%s" % (
            request.method, request.target, replica.host_header, head, request.body
        )

    def _answered(self, state: ReplicaState, answer: UpstreamAnswer, latency_s: float) -> Reply:
        """Count an answered attempt (after ``end_attempt``); the reply to pass back."""
        status = answer.status
        state.record_answer(latency_s, answer.in_flight, failed=status >= 500)
        self._traffic[state.name].observe(latency_s, status)
        if status >= 500:
            state.failed += 1
        else:
            state.served += 1
            state.answered_since_probe += 1
        return Reply(status, answer.reason, returned_response_head(answer.headers), answer.body)

    def hedge_delay(self, state: ReplicaState) -> float | None:
        """How long a request may wait on ``state`` before a copy goes to another replica:
        ``HEDGE_MULTIPLE`` times the slowest latency average of the *other* replicas in rotation
        (what an answer normally takes there), at least ``config.hedge_min_s``; None while no other
        replica has answered yet."""
        others = [
            s.latency_ewma_s for s in self.states
            if s is not state and s.healthy and s.latency_ewma_s is not None
        ]  # fmt: skip
        if not others:
            return None
        return max(self.config.hedge_min_s, HEDGE_MULTIPLE * max(others))

    async def _forward_hedged(
        self,
        state: ReplicaState,
        request: ProxyRequest,
        head: bytes,
        deadline: float,
        fresh: bool,
        begun: tuple[int, float] | None,
    ) -> Reply:
        """``_forward``, and if no answer came within ``hedge_delay``, the same request to
        another replica too: the first answer wins. Predictions are idempotent, so the copy is
        safe. A copy that loses is cancelled; a stuck attempt that loses is left to finish (its
        answer is dropped): it is still queued on its replica, and while it counts there in
        flight the policy sends that replica no more than its load warrants (cancelling it made
        a hung replica look idle, and it drew more requests until its health checks failed)."""
        loop = self._loop
        primary = loop.create_task(self._forward(state, request, head, deadline, fresh, begun))
        delay = self.hedge_delay(state)
        if delay is not None:
            done, _ = await asyncio.wait({primary}, timeout=min(delay, max(0.0, deadline - loop.time())))
            if not done:
                other = self.policy.choose(self.states, self._draining | {state.name})
                if other is not None:
                    return await self._race(primary, other, request, head, deadline)
        return await primary

    async def _race(
        self,
        primary: asyncio.Task[Reply],
        other: ReplicaState,
        request: ProxyRequest,
        head: bytes,
        deadline: float,
    ) -> Reply:
        self.hedged[other.name] = self.hedged.get(other.name, 0) + 1
        self._traffic[other.name].hedged += 1
        logger.info("hedging a request stuck on a replica: a copy goes to %s", other.name)
        hedge = self._loop.create_task(self._forward(other, request, head, deadline, False, None))
        pending = {primary, hedge}
        error: BaseException | None = None
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is None:
                        return task.result()
                    error = error or task.exception()
            assert error is not None
            raise error
        finally:
            if primary in pending:
                pending.discard(primary)
                self._leave_running(primary)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    def _leave_running(self, attempt: asyncio.Task[Reply]) -> None:
        """Let a stuck attempt that lost a hedge end by itself (answer, failure or the request
        deadline), its result dropped; ``stop()`` cancels it."""
        self._abandoned.add(attempt)
        attempt.add_done_callback(self._abandoned.discard)
        attempt.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def _forward(
        self,
        state: ReplicaState,
        request: ProxyRequest,
        head: bytes,
        deadline: float,
        fresh: bool,
        begun: tuple[int, float] | None,
    ) -> Reply:
        """One attempt on ``state`` (``begun``: its ticket and start, if already counted)."""
        replica = self._replicas[state.name]
        data = self._request_bytes(request, replica, head)
        loop = self._loop
        if begun is None:
            started = monotonic()
            ticket = state.begin_attempt(started)
        else:
            ticket, started = begun
        worked = False  # the replica did the work of this request and answered it
        try:
            answer = await replica.pool.exchange(
                data, deadline, head=request.method == b"HEAD", fresh=fresh
            )
            # Only successful POSTs (inference) show how many requests the replica works on at
            # once; GETs (health, metadata) and rejected requests are answered without a slot.
            worked = request.method == b"POST" and answer.status < 300
        except BaseException:
            state.failed += 1
            self._traffic[state.name].observe(monotonic() - started, 0)
            raise
        finally:
            state.end_attempt(ticket, worked)
            self._notify()
        return self._answered(state, answer, monotonic() - started)
