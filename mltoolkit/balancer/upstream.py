"""Keep-alive HTTP/1.1 connections to one replica, parsed with httptools, and their pool.

``UpstreamPool.exchange(request_bytes, deadline, head)`` sends one whole request on a pooled
connection (a new one when none is idle, waiting while ``limit`` are busy) and returns the
replica's whole answer as an ``UpstreamAnswer``. A connection the replica closed while it sat
idle in the pool is found out on use: when a reused connection fails before any byte of the
answer arrives, the request is sent once more on a fresh connection (what every keep-alive
client does; the replica never saw the first copy). Any other failure raises ``UpstreamLost``;
the deadline raises ``TimeoutError``; an answer that is not HTTP raises ``UpstreamBroken``.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import Callable

import httptools

# Idle pooled connections are closed before common servers close them (uvicorn: 5 s), so a
# request rarely meets a connection the replica has already dropped.
POOL_KEEPALIVE_S = 4.0
IN_FLIGHT_HEADER = b"x-in-flight"


class UpstreamLost(Exception):
    """The connection failed (refused, reset, closed) before the whole answer arrived."""

    def __init__(self, message: str, answered_bytes: int = 0) -> None:
        super().__init__(message)
        self.answered_bytes = answered_bytes


class UpstreamBroken(Exception):
    """The replica's answer was not valid HTTP/1.1."""


@dataclass
class UpstreamAnswer:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    in_flight: int | None  # the replica's X-In-Flight header, if a count


def _count(value: bytes) -> int | None:
    try:
        count = int(value)
    except ValueError:
        return None
    return count if count >= 0 else None


class UpstreamConnection(asyncio.Protocol):
    """One connection to a replica; one exchange at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.idle_since = 0.0
        self.reused = False
        self.closed = False
        self._waiter: Callable[[UpstreamAnswer | None, BaseException | None], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._head = False
        self._received = 0
        self._reset()

    def _reset(self) -> None:
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._in_flight: int | None = None
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: the end of the body is known

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamBroken(f"not an HTTP answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self._waiter is not None:
            if self._headers_done and not self._framed:
                self._finish()  # an answer delimited by the end of the connection
                return
            reason = f"{type(exc).__name__}: {exc}" if exc else "the replica closed the connection"
            self._fail(UpstreamLost(f"{reason} before answering", self._received))

    # -- httptools callbacks ---------------------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name)
        if size == 11 or size == 14 or size == 17:  # only then can it be one of these three
            lower = name.lower()
            if lower == IN_FLIGHT_HEADER:
                self._in_flight = _count(value)
            elif lower == b"content-length" or (
                lower == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                self._framed = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        status = self.parser.get_status_code()
        if status < 200:
            self._reset()  # an interim answer (100 Continue): the real one follows
        elif self._head:
            self._finish(keep=False)  # no body follows; the parser cannot be told so: drop it

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._headers_done:
            self._finish()

    # -- exchanges -------------------------------------------------------------------------

    def _finish(self, keep: bool = True) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None:
            return
        self._timer.cancel()  # type: ignore[union-attr]
        answer = UpstreamAnswer(
            status=self.parser.get_status_code(),
            reason=self._reason,
            headers=self._headers,
            body=b"".join(self._body),
            in_flight=self._in_flight,
        )
        keep = keep and self._framed and self.parser.should_keep_alive() and not self.closed
        self._reset()
        if keep:
            self.pool.release(self)
        else:
            self.close()
        waiter(answer, None)

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
        if waiter is not None:
            waiter(None, exc)

    def _expire(self) -> None:
        """The exchange's deadline passed: give up on it and on this connection."""
        self._fail(TimeoutError())
        self.close()

    def send(
        self,
        data: bytes,
        head: bool,
        deadline: float,
        on_done: Callable[[UpstreamAnswer | None, BaseException | None], None],
    ) -> None:
        """Send one request; ``on_done(answer, None)`` or ``on_done(None, error)`` follows once
        (an ``UpstreamLost``, ``UpstreamBroken`` or, at ``deadline``, ``TimeoutError``)."""
        assert self.transport is not None and self._waiter is None
        self._waiter = on_done
        self._timer = self.pool.loop.call_at(deadline, self._expire)
        self._head = head
        self._received = 0
        self._reset()
        self.transport.write(data)

    def abandon(self) -> None:
        """The exchange on this connection is given up (cancelled): close it."""
        if self._timer is not None:
            self._timer.cancel()
        self._waiter = None
        self.close()

    def close(self) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Keep-alive connections to one replica: at most ``limit`` open, idle ones reused newest first."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host = host
        self.port = port
        self.limit = limit
        self.loop = asyncio.get_running_loop()
        self.opened = 0  # connections ever opened (tests read it to see reuse)
        self._idle: list[UpstreamConnection] = []
        self._open: set[UpstreamConnection] = set()
        self._opening = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    @property
    def busy(self) -> int:
        return len(self._open) + self._opening - len(self._idle)

    def forget(self, connection: UpstreamConnection) -> None:
        if connection in self._open:
            self._open.discard(connection)
            if connection in self._idle:
                self._idle.remove(connection)
            self._wake()

    def release(self, connection: UpstreamConnection) -> None:
        if self._closed or connection.closed:
            connection.close()
            return
        connection.idle_since = self.loop.time()
        connection.reused = True
        self._idle.append(connection)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def take_idle(self) -> UpstreamConnection | None:
        """An idle pooled connection that is still fresh (newest first), or None."""
        stale_before = self.loop.time() - POOL_KEEPALIVE_S
        while self._idle:
            connection = self._idle.pop()
            if connection.idle_since >= stale_before and not connection.closed:
                return connection
            connection.close()
        return None

    async def _acquire(self, fresh: bool, deadline: float) -> UpstreamConnection:
        while True:
            if not fresh:
                connection = self.take_idle()
                if connection is not None:
                    return connection
            elif self._idle and len(self._open) + self._opening >= self.limit:
                self._idle.pop(0).close()  # make room for the fresh connection
            if len(self._open) + self._opening < self.limit:
                async with asyncio.timeout_at(deadline):
                    return await self._connect()
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the turn on
                raise

    async def _connect(self) -> UpstreamConnection:
        self._opening += 1
        try:
            _, connection = await self.loop.create_connection(
                lambda: UpstreamConnection(self), self.host, self.port
            )
        except OSError as exc:
            raise UpstreamLost(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._opening -= 1
            self._wake()
        self.opened += 1
        if self._closed:
            connection.close()
            raise UpstreamLost("the pool is closed")
        self._open.add(connection)
        return connection

    async def exchange(
        self, data: bytes, deadline: float, head: bool = False, fresh: bool = False
    ) -> UpstreamAnswer:
        """Send one request (whole, as bytes) and return the whole answer; TimeoutError once
        ``deadline`` (on the loop's clock) passes. ``fresh``: on a new connection."""
        while True:
            connection = await self._acquire(fresh, deadline)
            future: asyncio.Future[UpstreamAnswer] = self.loop.create_future()

            def settle(answer: UpstreamAnswer | None, exc: BaseException | None) -> None:
                if not future.done():
                    if exc is None:
                        future.set_result(answer)  # type: ignore[arg-type]
                    else:
                        future.set_exception(exc)

            connection.send(data, head, deadline, settle)
            try:
                return await future
            except UpstreamLost as exc:
                if not connection.reused or exc.answered_bytes or fresh:
                    raise
                fresh = True  # the replica had closed the idle connection: once more, on a new one
            except BaseException:
                connection.abandon()
                raise

    def close(self) -> None:
        self._closed = True
        for connection in list(self._open):
            connection.close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(UpstreamLost("the pool is closed"))
        self._waiters.clear()
