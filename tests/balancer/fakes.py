"""Small stand-ins for model-server replicas, on free loopback ports, for the balancer's tests.

``FakeReplica`` answers ``GET /v2/health/ready`` and ``POST /predict`` with ``X-Replica`` and
``X-In-Flight`` headers, after a configurable delay or while a test holds it; ``/echo/...`` shows
what arrived; ``/status/N`` answers status N. ``ClosingServer`` accepts connections and drops them
without answering. Both count what reached them, so tests can tell where requests went.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Self

import pytest
from aiohttp import web

from mltoolkit.local.ports import free_ports


@dataclass(frozen=True)
class Address:
    """A replica address with nothing necessarily listening there."""

    name: str
    url: str


def free_port() -> int:
    return free_ports(1)[0]


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``condition`` until true; the timeout is only a safety net for a broken feature."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


async def until_up(running: Any, count: int) -> None:
    """Wait until ``count`` servers of a running haproxy data plane are up in HAProxy."""

    async def all_up() -> bool:
        stats = await asyncio.to_thread(running.api.show_stat)
        return sum(s.up for s in stats) == count

    await wait_until(all_up, timeout_s=30, what=f"{count} replicas up in HAProxy")


class FakeReplica:
    def __init__(self, name: str, delay_s: float = 0.0) -> None:
        self.name = name
        self.delay_s = delay_s
        self.port = free_port()
        self.health_status = 200
        self.health_hangs = False
        self.health_probes = 0  # readiness probes that arrived
        self.predicts = 0  # /predict requests that arrived
        self.in_progress = 0  # /predict requests being answered now
        self.max_in_progress = 0  # the most /predict requests it ever answered at once
        self.received: list[str] = []  # paths of every request except health probes
        self.peers: set[tuple[str, int]] = set()  # client addresses requests came from
        self._gate: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold(self) -> None:
        """From now on, ``/predict`` waits until ``release()``: the slowest possible replica."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    def _headers(self) -> dict[str, str]:
        return {"X-Replica": self.name, "X-In-Flight": str(self.in_progress)}

    async def _ready(self, request: web.Request) -> web.Response:
        self.health_probes += 1
        if self.health_hangs:
            await asyncio.sleep(3600)
        return web.json_response({"ready": self.health_status == 200}, status=self.health_status,
                                 headers=self._headers())  # fmt: skip

    def _arrived(self, request: web.Request) -> None:
        self.received.append(request.path)
        self.peers.add(request.transport.get_extra_info("peername")[:2])

    async def _predict(self, request: web.Request) -> web.Response:
        self._arrived(request)
        self.predicts += 1
        self.in_progress += 1
        self.max_in_progress = max(self.max_in_progress, self.in_progress)
        try:
            body = await request.json()
            if self._gate is not None:
                await self._gate.wait()
            elif self.delay_s:
                await asyncio.sleep(self.delay_s)
            headers = self._headers()
        finally:
            self.in_progress -= 1
        predictions = [sum(row) for row in body.get("instances", [])]
        return web.json_response({"predictions": predictions, "replica": self.name}, headers=headers)

    async def _echo(self, request: web.Request) -> web.Response:
        self._arrived(request)
        body = await request.read()
        document = {
            "method": request.method,
            "path": request.path,
            "query": request.rel_url.raw_query_string,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_b64": base64.b64encode(body).decode(),
        }
        response = web.Response(
            status=201, text=json.dumps(document), content_type="application/json", headers=self._headers()
        )
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        response.headers["X-Custom"] = "kept"
        response.headers["Connection"] = "keep-alive, X-Hop"
        response.headers["X-Hop"] = "dropped: named in Connection"
        response.headers["Keep-Alive"] = "timeout=5"
        return response

    async def _status(self, request: web.Request) -> web.Response:
        self._arrived(request)
        status = int(request.match_info["code"])
        return web.json_response({"status": status, "replica": self.name}, status=status,
                                 headers=self._headers())  # fmt: skip

    async def start(self) -> FakeReplica:
        """Listen on ``self.port`` (the same port again after ``stop``)."""
        app = web.Application()
        app.router.add_get("/v2/health/ready", self._ready)
        app.router.add_post("/predict", self._predict)
        app.router.add_route("*", "/echo/{tail:.*}", self._echo)
        app.router.add_route("*", "/status/{code:\\d+}", self._status)
        # A short shutdown: stop() behaves like a killed process for requests in progress.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request from ``reader``: its head is returned, its body (Content-Length) read past."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
    await reader.readexactly(length)
    return head


class _RawServer:
    """A TCP server on 127.0.0.1 whose ``_accept`` speaks (or breaks) HTTP by hand."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


HALF_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"


class HalfAnswerServer(_RawServer):
    """Answers health probes, but hangs up on every other request after half an answer: the
    status line, headers with a Content-Length of 100, and 7 bytes of body (or after ``sends``;
    ``b""``: without a byte)."""

    def __init__(self, name: str = "half", sends: bytes = HALF_ANSWER) -> None:
        super().__init__(name)
        self.sends = sends
        self.requests = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await read_request(reader)
                if head.startswith(b"GET /v2/health/ready "):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                    continue
                self.requests += 1
                writer.write(self.sends)
                await writer.drain()
                break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()



class OneAnswerPerConnection(HalfAnswerServer):
    """Answers the first request on each connection (keeping it open), then closes the connection
    without a byte when the next request arrives on it: a keep-alive connection the server
    dropped just as the client reused it."""

    def __init__(self, name: str = "oneshot") -> None:
        super().__init__(name)
        self.dropped = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = False
        try:
            while True:
                head = await read_request(reader)
                if answered:
                    self.dropped += 1
                    break
                answered = True
                if not head.startswith(b"GET /v2/health/ready "):
                    self.requests += 1
                body = b'{"predictions": [3]}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"X-Replica: %s\r\nContent-Length: %d\r\n\r\n%s"
                             % (self.name.encode(), len(body), body))  # fmt: skip
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


# what a slow or idle client sends before it stalls, and the status it gets (None: closed silently)
SLOW_AND_IDLE_CLIENTS = {
    "argvalues": [
        (b"", None),
        (b"POST /predict HTTP/1.1\r\nHost: lb\r\n", 408),  # headers never finished
        (b"POST /predict HTTP/1.1\r\nHost: lb\r\nContent-Length: 100\r\n\r\n0123456789", 408),
    ],
    "ids": ["idle", "slow headers", "slow body"],
}


async def raw_request(url: str, data: bytes, timeout_s: float = 15.0) -> bytes:
    """Send ``data`` as is on a new connection to ``url``; everything read until it closes."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()


def parse_responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The HTTP/1.1 responses in ``data``, in order: (status, headers lower-cased, body)."""
    import httptools

    responses: list[tuple[int, dict[str, str], bytes]] = []

    class Collector:
        def on_message_begin(self) -> None:
            self.headers: dict[str, str] = {}
            self.body = b""

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers[name.decode().lower()] = value.decode()

        def on_body(self, body: bytes) -> None:
            self.body += body

        def on_message_complete(self) -> None:
            responses.append((parser.get_status_code(), self.headers, self.body))

    parser = httptools.HttpResponseParser(Collector())
    parser.feed_data(data)
    return responses


class ClosingServer(_RawServer):
    """Accepts TCP connections and closes them without a byte: 'server disconnected'."""

    def __init__(self, name: str = "closing") -> None:
        super().__init__(name)
        self.connections = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()



needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None,
                                   reason="haproxy is not installed (apt-get install haproxy)")
