"""The client side of the balancer: an asyncio protocol per connection, requests parsed by httptools.

Each connection reads requests whole (a chunked body is de-chunked; its size counts against the
limit as it arrives), answers them in order (pipelined requests are queued, up to
``PIPELINE_DEPTH`` before reading pauses) and keeps the connection alive as HTTP/1.1 says.
Admin routes under ``/-/`` are answered here; everything else goes to the routing engine.

Every error the balancer answers itself is JSON ``{"error": ...}``: a malformed request is a 400
(and the connection is closed, since its framing is lost), an absolute-form target
(``GET http://host/x``) is served as its path, a declared ``Content-Length`` above the limit is a
413 at once (before any body is read), too-large headers a 431. Slow and idle clients are cut
off: a request's headers must arrive within ``client_header_timeout_s`` of its first byte, its
body within ``client_body_timeout_s`` of its headers (else 408), and an idle keep-alive
connection is closed after ``client_idle_timeout_s``. At most ``max_client_connections`` are
open at once; one more is answered 503 and closed.

``start_server(config)`` runs it in-process (tests, embedding); ``close()`` stops listening,
lets requests in progress finish, then stops the engine.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import resource
import socket
from typing import Any, Callable

import httptools

from mltoolkit.balancer.config import BalancerConfig
from mltoolkit.balancer.messages import ProxyRequest, Reply, json_error, json_reply
from mltoolkit.balancer.metrics import metrics_document, prometheus_text
from mltoolkit.balancer.proxy import Balancer

logger = logging.getLogger("mltoolkit.balancer")

ADMIN_PREFIX = b"/-/"
ADMIN_PATHS = ("/-/health", "/-/replicas", "/-/metrics")
PIPELINE_DEPTH = 32  # requests read ahead on one connection before reading pauses
MAX_HEADER_BYTES = 64 * 1024  # request line and headers together
SWEEP_INTERVAL_S = 0.25  # how often deadlines of slow and idle clients are checked
REFUSAL_LOG_INTERVAL_S = 10.0  # at most one log line per interval about refused connections
# file descriptors kept for the upstream pools, health probes and the listening socket
RESERVED_FILES = 128

_IDLE, _HEADERS, _BODY = "idle", "headers", "body"
PROMETHEUS_TYPE = b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def connection_cap(wanted: int, open_files: int) -> int:
    """How many client connections may be open: ``wanted``, or fewer if the file limit is lower
    (each client connection may hold one upstream connection too)."""
    return max(1, min(wanted, (open_files - RESERVED_FILES) // 2))


class ClientConnection(asyncio.Protocol):
    """One client's connection: parse, queue, answer in order."""

    def __init__(self, server: BalancerServer) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client_ip: str | None = None
        self.deadline: float | None = None
        self.phase = _IDLE
        self.busy = False  # a task is answering this connection's queue
        self.closed = False
        self._stop_reading = False  # framing lost or refused: ignore further bytes
        self._keep_alive = True  # of the request passed straight to the engine
        self._head = False
        self._paused = False
        self._queue: collections.deque[tuple[ProxyRequest | Reply, bool]] = collections.deque()
        self._new_request()

    def _new_request(self) -> None:
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._head_bytes = 0
        self._host: bytes | None = None
        self._length = 0  # the declared Content-Length
        self._expect_continue = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self.server.admit(self):
            return
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else None
        self.deadline = self.loop.time() + self.server.config.client_idle_timeout_s

    def data_received(self, data: bytes) -> None:
        if self._stop_reading:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The request that asked for an upgrade is queued; no protocol switch happens, and
            # what follows it is not HTTP/1.1: answer it, then close.
            self._end_after_queue()
        except httptools.HttpParserError as exc:
            if not self._stop_reading:
                cause = exc.__context__ or exc
                self._refuse(json_error(400, f"malformed HTTP/1.1 request: {cause}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.forget(self)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._new_request()
        self.phase = _HEADERS
        self.deadline = self.loop.time() + self.server.config.client_header_timeout_s

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEADER_BYTES:
            self._count_head(0)
        size = len(name)
        if size == 4 or size == 6 or size == 14:  # only then can it be one of these three
            lower = name.lower()
            if lower == b"host":
                self._host = value
            elif lower == b"content-length":
                self._length = int(value) if value.isdigit() else 0  # the parser checked it
            elif lower == b"expect":
                self._expect_continue = value.lower() == b"100-continue"
        self._headers.append((name, value))

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEADER_BYTES and not self._stop_reading:
            self._refuse(json_error(431, f"request line and headers exceed {MAX_HEADER_BYTES} bytes"))
            raise _Stop

    def on_headers_complete(self) -> None:
        if self._stop_reading:
            return
        config = self.server.config
        length = self._length
        if length > config.max_request_bytes:
            self._refuse(json_error(
                413,
                f"request body of {length} bytes (Content-Length) exceeds the balancer's limit of "
                f"{config.max_request_bytes} bytes (--max-request-bytes)",
            ))  # fmt: skip
            raise _Stop
        self.phase = _BODY
        self.deadline = self.loop.time() + config.client_body_timeout_s
        if self._expect_continue and not self.busy and not self._queue and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._stop_reading:
            return
        self._size += len(body)
        limit = self.server.config.max_request_bytes
        if self._size > limit:
            self._refuse(json_error(
                413, f"request body exceeds the balancer's limit of {limit} bytes (--max-request-bytes)"
            ))  # fmt: skip
            raise _Stop
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._stop_reading:
            return
        keep_alive = self.parser.should_keep_alive()
        target, host = _origin_form(self._url, self._host)
        item: ProxyRequest | Reply
        if target is None:
            item = json_error(400, f"request target {self._url[:200]!r} is neither a path "
                                   "(such as /predict) nor an absolute http:// URL")  # fmt: skip
            keep_alive = False
        else:
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            item = ProxyRequest(
                self.parser.get_method(), target, self._headers, body, self.client_ip, host
            )
        self.phase = _IDLE
        self.deadline = None
        self._enqueue(item, keep_alive)

    # -- answering -------------------------------------------------------------------------

    def _enqueue(self, item: ProxyRequest | Reply, keep_alive: bool) -> None:
        if (
            not self.busy
            and not self._queue
            and item.__class__ is ProxyRequest
            and not item.target.startswith(ADMIN_PREFIX)  # type: ignore[union-attr]
        ):
            # the common case: nothing ahead of it on this connection, so no queue and no task
            self.busy = True
            self._keep_alive = keep_alive
            self._head = item.method == b"HEAD"  # type: ignore[union-attr]
            self.server.balancer.begin(item, self._answered)  # type: ignore[arg-type]
            return
        self._queue.append((item, keep_alive))
        if len(self._queue) >= PIPELINE_DEPTH and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()
        if not self.busy:
            self.busy = True
            self.server.track(self.loop.create_task(self._answer_queue()))

    def _answered(self, reply: Reply) -> None:
        """The answer to the request ``_enqueue`` passed straight to the engine."""
        keep_alive = self._keep_alive and not self.server.closing
        if self._head:
            reply = Reply(reply.status, reply.reason, reply.headers, b"")
        self._write(reply, keep_alive)
        if not keep_alive:
            self.busy = False
            self._close()
        elif self._queue:
            self.server.track(self.loop.create_task(self._answer_queue()))  # still busy
        else:
            self.busy = False
            if self.phase == _IDLE and not self.closed:
                self.deadline = self.loop.time() + self.server.config.client_idle_timeout_s

    def _refuse(self, reply: Reply) -> None:
        """Answer ``reply`` after what is queued, read nothing more, then close."""
        self._stop_reading = True
        self.deadline = None
        self._enqueue(reply, False)

    def _end_after_queue(self) -> None:
        self._stop_reading = True
        if self._queue:
            item, _ = self._queue.pop()
            self._queue.append((item, False))

    async def _answer_queue(self) -> None:
        try:
            while self._queue:
                item, keep_alive = self._queue.popleft()
                if self._paused and len(self._queue) < PIPELINE_DEPTH // 2 and self.transport:
                    self._paused = False
                    self.transport.resume_reading()
                if isinstance(item, Reply):
                    reply = item
                else:
                    try:
                        reply = await self.server.dispatch(item)
                    except Exception:  # a bug here must not take the connection's queue down
                        logger.exception("error answering %r", item.target[:200])
                        reply = json_error(500, "internal error in the balancer (see its log)")
                keep_alive = keep_alive and not self.server.closing
                if item.__class__ is ProxyRequest and item.method == b"HEAD":
                    reply = Reply(reply.status, reply.reason, reply.headers, b"")
                self._write(reply, keep_alive)
                if not keep_alive:
                    self._close()
                    return
        finally:
            self.busy = False
        if self.phase == _IDLE and not self.closed:
            if self.server.closing:
                self._close()
            else:
                self.deadline = self.loop.time() + self.server.config.client_idle_timeout_s

    def _write(self, reply: Reply, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        status = reply.status
        parts = [b"HTTP/1.1 %d %s\r\n" % (status, reply.reason), reply.headers]
        if status >= 200 and status not in (204, 304):
            parts.append(b"Content-Length: %d\r\n" % len(reply.body))
        if not keep_alive:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        parts.append(reply.body)
        transport.write(b"".join(parts))

    def _close(self) -> None:
        self._stop_reading = True
        self.deadline = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def expire(self, now: float) -> None:
        """The sweep found this connection past its deadline."""
        if self.phase == _IDLE:
            self._close()  # an idle keep-alive connection: close it quietly
            return
        config = self.server.config
        limit = config.client_header_timeout_s if self.phase == _HEADERS else config.client_body_timeout_s
        what = "headers" if self.phase == _HEADERS else "body"
        self.server.note_timeout()
        if self.busy:
            self._close()  # answers are still being written in order: cannot add one now
        else:
            self._write(json_error(408, f"request {what} not received within {limit:g} s"), False)
            self._close()


class _Stop(Exception):
    """Raised from a parser callback to stop parsing what follows on this connection."""


def _origin_form(url: bytes, host: bytes | None) -> tuple[bytes | None, bytes | None]:
    """The target as path and query, and the host; (None, host) for a target that is neither a
    path nor an absolute http(s) URL (which is served as its path, with its own host)."""
    if url[:1] == b"/":
        return url, host
    lower = url[:8].lower()
    if lower.startswith(b"http://") or lower.startswith(b"https://"):
        try:
            parts = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            return None, host
        target = parts.path or b"/"
        if parts.query:
            target += b"?" + parts.query
        authority = parts.host or b""
        if parts.port:
            authority += b":%d" % parts.port
        return target, authority or host
    return None, host


class BalancerServer:
    """The listening socket, its client connections, the routing engine and the admin routes."""

    def __init__(self, config: BalancerConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.balancer = Balancer(config)
        self.closing = False
        self.url = ""
        self.max_connections = config.max_client_connections
        self._connections: set[ClientConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._refused = 0
        self._timeouts = 0
        self._last_refusal_log = float("-inf")

    # -- connections -----------------------------------------------------------------------

    def admit(self, connection: ClientConnection) -> bool:
        if self.closing or len(self._connections) >= self.max_connections:
            self._refused += 1
            now = self.loop.time()
            if now - self._last_refusal_log >= REFUSAL_LOG_INTERVAL_S:
                self._last_refusal_log = now
                logger.warning(
                    "refusing client connections: %d open, the cap is %d (--max-client-connections);"
                    " %d refused so far", len(self._connections), self.max_connections, self._refused,
                )  # fmt: skip
            reason = (
                "the balancer is shutting down" if self.closing else
                f"too many client connections: the balancer's cap of {self.max_connections} "
                "open connections (--max-client-connections) is reached; retry later"
            )  # fmt: skip
            connection._write(json_error(503, reason), False)
            connection._close()
            return False
        self._connections.add(connection)
        return True

    def forget(self, connection: ClientConnection) -> None:
        self._connections.discard(connection)

    def track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def note_timeout(self) -> None:
        self._timeouts += 1

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            now = self.loop.time()
            for connection in [c for c in self._connections if c.deadline is not None and c.deadline < now]:
                connection.expire(now)

    # -- routes ----------------------------------------------------------------------------

    async def dispatch(self, request: ProxyRequest) -> Reply:
        if request.target.startswith(ADMIN_PREFIX):
            return self.admin(request)
        return await self.balancer.handle(request)

    def admin(self, request: ProxyRequest) -> Reply:
        path = request.target.split(b"?", 1)[0].decode("latin-1")
        if path not in ADMIN_PATHS:
            return json_error(404, f"no admin route {path}; the admin routes are {list(ADMIN_PATHS)}")
        if request.method != b"GET":
            return json_error(405, f"{request.method.decode()} is not allowed on {path}; use GET")
        if path == "/-/health":
            states = self.balancer.states
            return json_reply(200, {
                "status": "ok", "healthy_replicas": sum(1 for s in states if s.healthy),
                "replicas": len(states),
            })  # fmt: skip
        if path == "/-/metrics":
            return self.metrics(request.target)
        document = self.balancer.report()
        document["clients"] = self.client_report()
        return json_reply(200, document)

    def metrics(self, target: bytes) -> Reply:
        """Served traffic per replica: Prometheus text, or JSON with ``?format=json``."""
        query = target.partition(b"?")[2]
        traffic = self.balancer.traffic()
        if b"format=json" in query.split(b"&"):
            return json_reply(200, metrics_document(traffic))
        text = prometheus_text(traffic, self.balancer.in_flight())
        return Reply(200, b"OK", PROMETHEUS_TYPE, text.encode())

    def client_report(self) -> dict[str, Any]:
        return {
            "open": len(self._connections),
            "cap": self.max_connections,
            "refused": self._refused,
            "timed_out": self._timeouts,
        }

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> str:
        """Start the engine (probing every replica once), then listen; the URL served."""
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.max_connections = connection_cap(self.config.max_client_connections, open_files)
        if self.max_connections < self.config.max_client_connections:
            logger.warning(
                "at most %d client connections (not %d): the open-file limit is %d",
                self.max_connections, self.config.max_client_connections, open_files,
            )  # fmt: skip
        await self.balancer.start()
        try:
            self._server = await self.loop.create_server(
                lambda: ClientConnection(self), self.config.host, self.config.port,
                reuse_port=self.config.reuse_port or None, backlog=1024,
            )  # fmt: skip
        except BaseException:
            await self.balancer.stop()
            raise
        sock: socket.socket = self._server.sockets[0]
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self._sweeper = self.loop.create_task(self._sweep())
        return self.url

    async def close(self, grace_s: float | None = None) -> None:
        """Stop listening, close idle connections, let requests in progress finish (up to
        ``grace_s``, by default the request timeout), then stop the engine."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            if not connection.busy:
                connection._close()
        grace = self.config.request_timeout_s if grace_s is None else grace_s
        until = self.loop.time() + grace
        while any(c.busy for c in self._connections) and self.loop.time() < until:
            await asyncio.sleep(0.02)
        for connection in list(self._connections):
            connection._close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self.balancer.stop()


async def start_server(
    config: BalancerConfig, on_listening: Callable[[str], None] | None = None
) -> BalancerServer:
    """The balancer serving in this event loop; ``await server.close()`` stops it."""
    server = BalancerServer(config)
    url = await server.start()
    if on_listening is not None:
        on_listening(url)
    return server

