"""Running the application as a process: bind, serve until SIGTERM/SIGINT, drain, exit.

On a signal the server stops accepting connections, closes idle keep-alive connections, flushes
any open batch and waits (up to ``shutdown_timeout_s``) for in-flight requests to be answered.

Unless ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` or ``MKL_NUM_THREADS`` says otherwise, the
process runs its BLAS/OpenMP libraries single-threaded: a replica answers many small requests,
and idle BLAS threads spin on the cores the event loop needs. Measured with the digits model on
one core (32 connections, 1-row requests): OpenBLAS's default 2 threads cut throughput from
~7100 to ~3200 requests/s with batching and from ~2800 to ~1500 without (one A/B run).

Slow and idle clients (see ``ServerConfig``): aiohttp's keep-alive timer, which runs from a
connection's opening and from each answer until complete request headers arrive, is the idle and
header timeout; the body timeout is the application's (a 408); connections beyond the cap get a
503 from a tiny protocol that never reaches aiohttp. The soft open-file limit is raised to the
hard one at start, and the cap kept below it, so a flood of connections is refused instead of
exhausting file descriptors ("Too many open files" for everyone).
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import sys
from typing import Any, Callable, Mapping

from aiohttp import web

from mltoolkit.errors import MltoolkitError
from mltoolkit.serving.app import STATE, create_app
from mltoolkit.serving.config import ServerConfig
from mltoolkit.serving.model import ServedModel
from mltoolkit.serving.protocol import dumps
from mltoolkit.startup import freeze_startup_objects

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class BindError(MltoolkitError):
    """The server cannot listen on its host and port (in use, or not an address of this host)."""


def _listen(config: ServerConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    try:
        return socket.create_server((config.host, config.port), family=family, backlog=1024)
    except OSError as exc:
        reason = exc.strerror or exc
        raise BindError(f"cannot listen on {config.host}:{config.port}: {reason}") from exc


FILE_RESERVE = 64  # descriptors kept free of client connections (model files, logs, pipes)


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(configured: int, file_limit: int) -> int:
    """The connection cap in force: the configured one, kept below the open-file limit."""
    return max(1, min(configured, file_limit - FILE_RESERVE))


class _Refusal(asyncio.Protocol):
    """Answers one connection over the cap with a 503 and closes it, without parsing anything."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self._answer)
        # let the client read the answer before the close (closing with its request unread
        # would reset the connection); give up after a second
        asyncio.get_running_loop().call_later(1.0, transport.close)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        if self._transport is not None:
            self._transport.close()
        return False


def refusal_answer(cap: int, replica_id: str) -> bytes:
    body = dumps(
        {
            "error": f"too many connections: this replica accepts at most {cap} open "
            "connections (--max-connections); retry later"
        }
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nRetry-After: 1\r\n"
        f"X-Replica: {replica_id}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class CappedSockSite(web.SockSite):
    """A ``SockSite`` whose connections beyond ``cap`` are refused with a 503."""

    def __init__(self, runner: web.AppRunner, sock: socket.socket, cap: int, answer: bytes) -> None:
        super().__init__(runner, sock)
        self._cap = cap
        self._answer = answer

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        cap, answer = self._cap, self._answer

        def protocol() -> Any:
            if len(server.connections) >= cap:
                return _Refusal(answer)
            return server()

        factory: Callable[[], Any] = protocol
        self._server = await asyncio.get_running_loop().create_server(
            factory, sock=self._sock, backlog=self._backlog
        )


async def serve(config: ServerConfig, model: ServedModel | None = None) -> None:
    """Serve ``config`` until SIGTERM or SIGINT, then shut down gracefully."""
    app = create_app(config, model)
    frozen = freeze_startup_objects()  # before the first request, after the model and warm-up
    cap = connection_cap(config.max_connections, raise_open_file_limit())
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=config.shutdown_timeout_s,
        keepalive_timeout=config.idle_timeout_s,
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        sock = _listen(config)
        await CappedSockSite(runner, sock, cap, refusal_answer(cap, config.replica_id)).start()
        host, port = sock.getsockname()[:2]
        state = app[STATE]
        print(
            f"mltoolkit.serving: model {state.model.name!r} (version {state.model.version}) "
            f"on http://{host}:{port} as replica {config.replica_id!r} ({frozen} start-up "
            f"objects frozen out of garbage collection; at most {cap} connections)",
            flush=True,
        )
        await stop.wait()
        print("mltoolkit.serving: stopping; finishing requests in flight", flush=True)
    finally:
        await runner.cleanup()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def limit_blas_threads(environ: Mapping[str, str]) -> bool:
    """Make BLAS/OpenMP single-threaded unless a thread-count variable is set; True if it did."""
    if any(environ.get(name) for name in THREAD_VARIABLES):
        return False
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    return True


def run(config: ServerConfig, model: ServedModel | None = None) -> int:
    """Serve in this process; return the exit status (0 after a graceful stop)."""
    limit_blas_threads(os.environ)
    try:
        asyncio.run(serve(config, model))
    except BindError as exc:
        print(f"mltoolkit.serving: {exc}", file=sys.stderr)
        return 1
    return 0
