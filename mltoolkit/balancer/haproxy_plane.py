"""``python -m mltoolkit.balancer --data-plane haproxy``: HAProxy forwards, this process controls.

This process binds the listening socket(s) and hands them to an HAProxy child process (``bind
fd@N``), so ``--port 0``, ``--reuse-port`` and a port already taken behave as with the python data
plane. It then never touches a client request. It keeps:

- the weights (policy ``ewma``): ``Controller`` reads HAProxy's per-server counters over the
  runtime API every 200 ms and sets each replica's weight from its time per request; with any
  policy it marks down a replica that broke off an answer, until its next health check passes;
- the membership: discovery (``--discover-service``) adds and drains servers (``add server`` /
  ``disable server``, wait for requests in flight, ``del server``);
- the admin routes ``/-/health``, ``/-/replicas`` and ``/-/metrics`` (HAProxy sends ``/-/...``
  here): counts and in-flight requests from ``show stat``, latency histograms from the requests
  HAProxy logs to its in-memory ring (one in ``latency_sample``; times in whole milliseconds),
  streamed over the runtime API and taken in every ``LOG_READ_INTERVAL_S``.

HAProxy dies with this process (``PR_SET_PDEATHSIG``); SIGTERM stops it softly (no new
connections, requests in flight finish, up to the request timeout). Closing removes the plane's
work directory; one left by a plane killed outright is removed by the next plane to start.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from mltoolkit.balancer import haproxy_config
from mltoolkit.balancer.config import BalancerConfig, ReplicaTarget
from mltoolkit.balancer.haproxy_controller import (
    Controller,
    HAProxyError,
    RuntimeAPI,
    ServerStat,
    WeightRule,
    haproxy_binary,
    servers_of,
    show_stat_rows,
)
from mltoolkit.balancer.metrics import ReplicaTraffic, metrics_document, prometheus_text
from mltoolkit.balancer.messages import REASONS
from mltoolkit.balancer.server import ADMIN_PATHS

logger = logging.getLogger("mltoolkit.balancer.haproxy")

START_TIMEOUT_S = 30.0
# Each wake-up of this process costs ~0.15 ms of the core HAProxy runs on (this VM); at 0.2 s
# the controller takes 0.5 us per request there instead of 1.1 us at 0.05 s (benchmarks/README.md).
# Between two reads the ring (``LOG_RING_BYTES``) and the socket's buffer hold ~0.8 s of lines at
# 60,000 requests a second.
LOG_READ_INTERVAL_S = 0.2
LOG_READ_BYTES = 2**18
WORKDIR_PREFIX = "mltoolkit-haproxy-"  # in the system's temporary directory, one per plane
RUNTIME_SOCKET = "admin.sock"
# A work directory this old whose runtime socket refuses connections belongs to a plane that
# ended without closing (SIGKILL, a crash): the next plane to start removes it. Older than any
# start takes (START_TIMEOUT_S), so a plane still starting keeps its own.
STALE_WORKDIR_AGE_S = 120.0
_PR_SET_PDEATHSIG = 1


class AdminPortError(OSError):
    """The ``--admin-port`` cannot be bound (told apart from ``--port``'s failure)."""


# -- latency histograms from HAProxy's log lines (pure) -------------------------------------------


class LatencyLog:
    """Per-server latency histograms from HAProxy's log lines (``LOG_FORMAT``: backend, server,
    status, response time in ms; -1 when no answer came). A time of n ms stands for [n, n+1) ms
    and is counted as n + 0.5 ms."""

    def __init__(self) -> None:
        self.traffic: dict[str, ReplicaTraffic] = {}
        self.lines = 0
        self.lock = threading.Lock()

    def observe_lines(self, data: bytes) -> bytes:
        """Every whole line of ``data`` (equal lines counted once, with their number); returns
        what follows the last newline, a line still arriving."""
        whole, _, rest = data.rpartition(b"\n")
        if whole:
            for line, times in Counter(whole.split(b"\n")).items():
                self.observe_line(line, times)
        return rest

    def observe_line(self, line: bytes, times: int = 1) -> None:
        parts = line.split()
        if len(parts) != 4 or parts[0] != haproxy_config.BACKEND.encode():
            return  # the admin backend, a request refused before any server (<NOSRV>), junk
        try:
            status, response_ms = int(parts[2]), int(parts[3])
        except ValueError:
            return
        if response_ms < 0:
            return  # no answer: counted from show stat's error counters, not timed
        name = parts[1].decode(errors="replace")
        with self.lock:
            self.lines += times
            traffic = self.traffic.get(name)
            if traffic is None:
                traffic = self.traffic[name] = ReplicaTraffic(name)
            traffic.observe((response_ms + 0.5) / 1000, status, times)


def traffic_rows(
    stats: list[ServerStat],
    log: LatencyLog,
    nodes: dict[str, str],
    sample: int,
) -> list[ReplicaTraffic]:
    """One row per server: counts by status class from ``show stat`` (exact), the histogram from
    the logged sample, scaled by ``sample``."""
    rows = []
    with log.lock:
        for stat in stats:
            logged = log.traffic.get(stat.name)
            row = ReplicaTraffic(stat.name, nodes.get(stat.name, ""))
            row.by_status.update(zip(("2xx", "3xx", "4xx", "5xx"), stat.hrsp))
            row.by_status["none"] = stat.eresp
            row.count = sum(row.by_status.values())
            if logged is not None:
                row.buckets = [count * sample for count in logged.buckets]
                row.sum_s = logged.sum_s * sample
            rows.append(row)
    return rows


def replicas_document(
    config: BalancerConfig,
    stats: list[ServerStat],
    targets: dict[str, ReplicaTarget],
    draining: set[str],
    clients: dict[str, Any],
) -> dict[str, Any]:
    """The ``GET /-/replicas`` document, with the python data plane's keys where HAProxy knows them
    (``latency_ewma_s``: HAProxy's average response time over a server's last 1024 requests)."""
    rows = []
    for stat in stats:
        target = targets.get(stat.name)
        rows.append({
            "name": stat.name,
            "url": target.url if target else None,
            "node": target.node if target else "",
            "healthy": stat.up,
            "draining": stat.name in draining or stat.status.startswith("MAINT"),
            "in_flight": stat.scur,
            "queued": stat.qcur,
            "served": stat.stot,
            "failed": stat.eresp + stat.econ,
            "weight": stat.weight,
            "latency_ewma_s": stat.rtime_ms / 1000 if stat.stot else None,
            "check": stat.check_status,
        })  # fmt: skip
    return {"policy": config.policy, "data_plane": "haproxy", "replicas": rows, "clients": clients}


# -- the listening sockets --------------------------------------------------------------------------


def bind_listener(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A bound, listening TCP socket HAProxy inherits; OSError when the port cannot be had."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(4096)
    except BaseException:
        sock.close()
        raise
    return sock


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


# -- membership: discovery's engine over the runtime API ------------------------------------------


class HAProxyEngine:
    """``discovery.ReplicaEngine`` over HAProxy's runtime API (blocking calls run in a thread)."""

    def __init__(self, plane: HAProxyPlane) -> None:
        self.plane = plane

    async def add_replica(self, target: ReplicaTarget) -> None:
        config = self.plane.config
        weight = haproxy_config.server_weight(target, haproxy_config.FULL_WEIGHT)
        options = haproxy_config.server_options(config)
        await asyncio.to_thread(self.plane.api.add_server, target, weight, options)
        self.plane.targets[target.name] = target
        logger.info("replica %s (%s) added", target.name, target.url)

    async def drain_replica(self, name: str) -> None:
        self.plane.draining.add(name)
        try:
            await asyncio.to_thread(self.plane.api.remove_server, name, self.plane.config.request_timeout_s)
        finally:
            self.plane.draining.discard(name)
        self.plane.targets.pop(name, None)
        logger.info("replica %s drained and removed", name)


# -- the data plane -----------------------------------------------------------------------------------


class HAProxyPlane:
    """HAProxy as a child process with its parts (sockets, admin server, log reader, controller).

    ``await start()`` returns the URL served; ``await close()`` stops HAProxy softly and removes
    the working directory. ``running`` is False once HAProxy has ended (on its own or closed).
    """

    def __init__(self, config: BalancerConfig) -> None:
        self.config = config
        self.binary = haproxy_binary()  # HAProxyError naming the install command when missing
        self.targets: dict[str, ReplicaTarget] = {t.name: t for t in config.replicas}
        self.draining: set[str] = set()
        self.log = LatencyLog()
        self.url = ""
        self.workdir = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.controller: Controller | None = None
        self.api: RuntimeAPI = RuntimeAPI("")
        self._admin: asyncio.AbstractServer | None = None
        self._log_thread: threading.Thread | None = None
        self._log_stop = threading.Event()

    async def start(self) -> str:
        listeners: list[socket.socket] = []
        try:
            listeners.append(bind_listener(self.config.host, self.config.port, self.config.reuse_port))
            if self.config.admin_port is not None:
                try:
                    listeners.append(bind_listener(self.config.host, self.config.admin_port, False))
                except OSError as exc:
                    raise AdminPortError(f"cannot listen on {self.config.host}:{self.config.admin_port} "
                                         f"(--admin-port): {exc}") from exc  # fmt: skip
            host, port = listeners[0].getsockname()[:2]
            self.url = f"http://{host}:{port}"
            removed = await asyncio.to_thread(remove_stale_workdirs)  # file system and sockets: off the loop
            if removed:
                logger.info("removed %d work directories of haproxy data planes that ended without "
                            "closing: %s", len(removed), ", ".join(removed))  # fmt: skip
            self.workdir = tempfile.mkdtemp(prefix=WORKDIR_PREFIX)
            paths = await self._prepare()
            config_path = os.path.join(self.workdir, "haproxy.cfg")
            fds = tuple(s.fileno() for s in listeners)
            Path(config_path).write_text(haproxy_config.render(self.config, paths, fds))
            self.process = subprocess.Popen(
                [self.binary, "-q", "-db", "-f", config_path], stdin=subprocess.DEVNULL,
                pass_fds=fds, preexec_fn=_die_with_parent,
            )  # fmt: skip
        except BaseException:
            await self.close()
            raise
        finally:
            for sock in listeners:
                sock.close()  # HAProxy holds them now; when it stops listening, so does the port
        try:
            await self._wait_for_runtime_api()
            self._log_thread = threading.Thread(target=self._read_log, name="haproxy-log", daemon=True)
            self._log_thread.start()
            rule = WeightRule() if self.config.policy == "ewma" else None  # weights for ewma only
            self.controller = Controller(self.api, rule).start()
        except BaseException:
            await self.close()
            raise
        return self.url

    async def _prepare(self) -> haproxy_config.Paths:
        """Error files, the admin server, the runtime API's path: what the config names."""
        error_files = {}
        for status in haproxy_config.ERRORS:
            path = os.path.join(self.workdir, f"{status}.http")
            Path(path).write_bytes(haproxy_config.error_response(status))
            error_files[status] = path
        self._admin = await asyncio.start_server(self._serve_admin, "127.0.0.1", 0)
        admin_port = self._admin.sockets[0].getsockname()[1]
        runtime_socket = os.path.join(self.workdir, RUNTIME_SOCKET)
        self.api = RuntimeAPI(runtime_socket)
        return haproxy_config.Paths(runtime_socket, admin_port, error_files)

    async def _wait_for_runtime_api(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise HAProxyError(f"haproxy exited with status {self.process.returncode} at start "
                                   "(its message is above)")  # fmt: skip
            try:
                await asyncio.to_thread(self.api.show_stat)
                return
            except (OSError, HAProxyError):
                if loop.time() > deadline:
                    raise HAProxyError(f"haproxy's runtime API did not answer within {START_TIMEOUT_S:g} s") from None
                await asyncio.sleep(0.02)

    def _read_log(self) -> None:
        """Stream the log ring from the runtime API and, every ``LOG_READ_INTERVAL_S``, take in
        the lines waiting: one wake-up per batch, not per request, so the reader takes little of
        the core HAProxy runs on. Ends when HAProxy closes the stream or the plane closes."""
        pending = b""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.api.timeout_s)
                sock.connect(self.api.socket_path)
                sock.sendall(f"show events {haproxy_config.LOG_RING} -w -n\n".encode())
                sock.setblocking(False)
                ended = False
                while not ended and not self._log_stop.wait(LOG_READ_INTERVAL_S):
                    data, ended = _waiting(sock)
                    pending = self.log.observe_lines(pending + data)
        except OSError as exc:
            if not self._log_stop.is_set():
                logger.warning("latency log: reading HAProxy's log ring failed: %s", exc)

    # -- admin routes ---------------------------------------------------------------------------------

    def stats(self) -> tuple[list[ServerStat], dict[str, Any]]:
        """The replicas' servers and the client side (``FRONTEND`` row) from one ``show stat``."""
        rows = show_stat_rows(self.api.command("show stat"))
        frontend = next((row for row in rows
                         if row.get("pxname") == haproxy_config.FRONTEND and row.get("svname") == "FRONTEND"), {})  # fmt: skip
        clients = {"open": int(frontend.get("scur") or 0), "cap": self.config.max_client_connections,
                   "total": int(frontend.get("stot") or 0)}  # fmt: skip
        return servers_of(rows), clients

    def answer(self, method: str, target: str) -> tuple[int, str, bytes]:
        """Status, content type and body for an admin request."""
        path, _, query = target.partition("?")
        if path not in ADMIN_PATHS:
            return _json(404, {"error": f"no admin route {path}; the admin routes are {list(ADMIN_PATHS)}"})
        if method != "GET":
            return _json(405, {"error": f"{method} is not allowed on {path}; use GET"})
        stats, clients = self.stats()
        if path == "/-/health":
            healthy = sum(1 for s in stats if s.up)
            return _json(200, {"status": "ok", "healthy_replicas": healthy, "replicas": len(stats),
                               "data_plane": "haproxy"})  # fmt: skip
        if path == "/-/replicas":
            return _json(200, replicas_document(self.config, stats, self.targets, self.draining, clients))
        nodes = {name: t.node for name, t in self.targets.items()}
        traffic = traffic_rows(stats, self.log, nodes, self.config.latency_sample)
        if "format=json" in query.split("&"):
            return _json(200, metrics_document(traffic))
        text = prometheus_text(traffic, {s.name: s.scur for s in stats})
        return 200, "text/plain; version=0.0.4; charset=utf-8", text.encode()

    async def _serve_admin(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request per connection (HAProxy closes the server side after each)."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]
            try:
                status, content_type, body = await asyncio.to_thread(self.answer, method, target)
            except (OSError, HAProxyError) as exc:
                status, content_type, body = _json(503, {"error": f"haproxy's runtime API: {exc}"})
            writer.write(f"HTTP/1.1 {status} {REASONS[status].decode()}\r\nContent-Type: {content_type}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)  # fmt: skip
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError,
                ConnectionError):  # fmt: skip
            pass
        finally:
            writer.close()

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def close(self, grace_s: float | None = None) -> None:
        """Stop taking connections, let requests in flight finish (up to ``grace_s``, by default
        the request timeout), then end HAProxy and remove what it used."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
        # the log stream first: HAProxy's soft stop would wait for it as for any open stream
        self._log_stop.set()
        if self._log_thread is not None:
            await asyncio.to_thread(self._log_thread.join)
            self._log_thread = None
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGUSR1)  # soft stop
            grace = self.config.request_timeout_s if grace_s is None else grace_s
            try:
                await asyncio.to_thread(process.wait, grace + 1)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def remove_stale_workdirs(root: str | None = None) -> list[str]:
    """Remove the work directories (config, error files, runtime socket) of planes that ended
    without closing: this user's own, older than ``STALE_WORKDIR_AGE_S``, their runtime socket
    refusing connections or never made. Returns their paths."""
    root = root or tempfile.gettempdir()
    removed = []
    for path in sorted(Path(root).glob(WORKDIR_PREFIX + "*")):
        try:
            if path.is_symlink() or not path.is_dir():
                continue
            info = path.stat()
        except OSError:
            continue
        if info.st_uid != os.getuid() or time.time() - info.st_mtime < STALE_WORKDIR_AGE_S:
            continue
        if _listening(path / RUNTIME_SOCKET):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    return removed


def _listening(socket_path: Path) -> bool:
    """Whether a process listens on the UNIX socket; True when that cannot be told (the socket
    of another user, a full backlog): such a directory is left alone."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(socket_path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True
    return True


def _waiting(sock: socket.socket) -> tuple[bytes, bool]:
    """What a non-blocking stream holds now, and whether its far end has closed it."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(LOG_READ_BYTES)
        except BlockingIOError:
            return b"".join(chunks), False
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


def _json(status: int, document: object) -> tuple[int, str, bytes]:
    return status, "application/json", orjson.dumps(document)


async def start_haproxy_plane(config: BalancerConfig) -> HAProxyPlane:
    """The haproxy data plane, running (``plane.url``); ``await plane.close()`` stops it."""
    plane = HAProxyPlane(config)
    await plane.start()
    return plane
