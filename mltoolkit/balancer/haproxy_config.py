"""HAProxy's configuration for a ``BalancerConfig`` (pure): the ``haproxy`` data plane's settings.

How the balancer's settings map onto HAProxy:

- policy → ``balance``: ``round_robin`` → ``roundrobin``, ``random`` → ``random(1)``,
  ``power_of_two`` → ``random(2)``, ``least_request`` and ``ewma`` → ``leastconn`` (for ``ewma``
  the controller sets per-server weights from each replica's time per request), ``late_binding``
  → ``leastconn`` with one request per replica at a time, the rest waiting in HAProxy's queue (the
  central queue; the python data plane learns the slot count instead);
- health: ``GET /v2/health/ready`` every ``health_interval_s`` (each within ``health_timeout_s``),
  out after ``unhealthy_after`` failures in a row or at once on a refused connection (or, by
  the controller, on an answer broken off halfway), back after one pass;
- ``retries`` on connection failures and empty answers, to another replica (``redispatch``), for
  requests that fit whole in ``BUFFER_BYTES``; ``request_timeout_s`` bounds the wait for a
  replica's answer (then 504) and in the queue; a request line and headers over
  ``MAX_HEADER_BYTES`` get a 400;
- clients: ``client_header_timeout_s`` for a request's headers and, when it fits in
  ``BUFFER_BYTES``, its body (``option http-buffer-request``: HAProxy reads such a body whole
  before it picks a replica, so a client that stalls gets a 408 and never holds a replica's
  connection), ``client_body_timeout_s`` for idle gaps while a larger body is read or the answer
  sent, ``client_idle_timeout_s`` between keep-alive requests (a connection that sent nothing is
  closed without an answer: ``option http-ignore-probes``);
  ``max_client_connections`` open at once (more wait in the kernel's backlog); a declared body
  over ``max_request_bytes`` gets a 413 before it is read (a chunked body is passed on as it
  streams, never held whole, and the model server's own ``--max-request-bytes`` refuses one too
  large; the python data plane counts it);
- every error HAProxy answers itself is JSON (``{"error": ...}``), as the python data plane's;
- ``/-/...`` paths go to the controller's admin server (``/-/health``, ``/-/replicas``,
  ``/-/metrics``); everything else to the replicas;
- one request in ``latency_sample`` is logged (backend, server, status, response time in whole
  milliseconds) to an in-memory ring, ``LOG_RING``, which the controller streams from the runtime
  API (``show events``) into the latency histograms: no datagram per request, and many lines per
  read (carried 1.14x the requests a datagram socket did, benchmarks/README.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

from mltoolkit.balancer.config import BalancerConfig, ReplicaTarget
from mltoolkit.balancer.health import READY_PATH
from mltoolkit.balancer.messages import REASONS
from mltoolkit.errors import SpecError

FRONTEND = "balancer"
BACKEND = "replicas"
ADMIN_BACKEND = "admin"
FULL_WEIGHT = 100  # a replica of relative weight 1; HAProxy allows 0 to 256
MAX_WEIGHT = 256
ALGORITHMS = {
    "round_robin": "roundrobin",
    "random": "random(1)",
    "power_of_two": "random(2)",
    "least_request": "leastconn",
    "ewma": "leastconn",
    "late_binding": "leastconn",
}
LOG_FORMAT = "%b %s %ST %Tr"  # what the controller's log reader parses
LOG_RING = "latency"
LOG_RING_BYTES = 2**20  # ~40,000 lines: far more than arrive between two reads
CONNECT_TIMEOUT_S = 2.0
# HAProxy's buffer per request and per answer (its default is 16 KB). Every request it may have
# to replay to another replica (``retry-on``) is copied whole, buffer and all: at 8 KB that copy
# costs next to nothing (HAProxy's CPU per request with model servers: 13.75 us, as without
# retries, against 14.55-14.83 us at 16 KB; benchmarks/README.md). What it costs: a request's
# line and headers must fit in 7 KB (the buffer less HAProxy's 1 KB ``tune.maxrewrite``), and
# only a request that fits whole in it (a 6 KB body does, a 9 KB one does not) is replayed after a
# replica fails while answering it.
BUFFER_BYTES = 8192
MAXREWRITE_BYTES = 1024  # HAProxy's default ``tune.maxrewrite``: kept free in every buffer
MAX_HEADER_BYTES = BUFFER_BYTES - MAXREWRITE_BYTES

# The JSON errors HAProxy answers itself, by status (the statuses ``errorfile`` accepts).
ERRORS = {
    400: "bad request: not valid HTTP/1.1",
    403: "forbidden",
    405: "method not allowed",
    408: "the request did not arrive in time",
    413: "the request body is larger than the balancer accepts (--max-request-bytes)",
    429: "too many requests",
    500: "internal error in the balancer",
    502: "bad gateway: the replica's answer was not valid HTTP",
    503: "no replica is available",
    504: "no answer from the replica within the request timeout (--timeout)",
}


@dataclass(frozen=True)
class Paths:
    """Where the running data plane keeps its parts: the runtime API's socket, the admin server's
    loopback port, the error files (by status)."""

    runtime_socket: str
    admin_http_port: int
    error_files: Mapping[int, str]


def error_response(status: int, message: str | None = None) -> bytes:
    """A whole HTTP response with ``{"error": message}``: what an ``errorfile`` holds."""
    body = json.dumps({"error": message or ERRORS[status]}).encode()
    head = (
        f"HTTP/1.1 {status} {REASONS[status].decode()}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def address(target: ReplicaTarget) -> str:
    """``host:port`` of a replica; HAProxy speaks plain HTTP to replicas here."""
    parts = urlsplit(target.url)
    if parts.scheme != "http" or parts.path not in ("", "/"):
        raise SpecError(f"replica {target.name!r}", target.url,
                        "an http://HOST:PORT URL without a path (the haproxy data plane)")  # fmt: skip
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port or 80}"


def server_weight(target: ReplicaTarget, scale: float) -> int:
    """HAProxy's weight for a replica's relative weight; ``scale`` maps the largest to at most
    ``MAX_WEIGHT``."""
    return max(1, min(MAX_WEIGHT, round(target.weight * scale)))


def weight_scale(replicas: tuple[ReplicaTarget, ...]) -> float:
    heaviest = max((r.weight for r in replicas), default=1.0)
    return min(FULL_WEIGHT, MAX_WEIGHT / heaviest) if heaviest > 0 else FULL_WEIGHT


def server_options(config: BalancerConfig) -> str:
    """The options every replica's server line carries (and ``add server`` repeats)."""
    inter = max(10, round(config.health_interval_s * 1000))
    slots = " maxconn 1" if config.policy == "late_binding" else ""
    return (f"check inter {inter}ms fall {config.unhealthy_after} rise 1{slots} "
            "observe layer4 error-limit 1 on-error mark-down")  # fmt: skip


def server_line(target: ReplicaTarget, config: BalancerConfig, scale: float) -> str:
    return (f"    server {target.name} {address(target)} weight {server_weight(target, scale)} "
            f"{server_options(config)}")  # fmt: skip


def _seconds(value: float) -> str:
    return f"{max(1, math.ceil(value * 1000))}ms"


def render(config: BalancerConfig, paths: Paths, listeners: tuple[int, ...]) -> str:
    """The configuration: ``listeners`` are inherited file descriptors of bound sockets."""
    if not listeners:
        raise SpecError("listeners", listeners, "one or more file descriptors")
    scale = weight_scale(config.replicas)
    servers = "\n".join(server_line(r, config, scale) for r in config.replicas)
    binds = "\n".join(f"    bind fd@{fd}" for fd in listeners)
    errors = "\n".join(f"    errorfile {status} {path}" for status, path in sorted(paths.error_files.items()))
    timeout = _seconds(config.request_timeout_s)
    return f"""\
# generated by mltoolkit.balancer.haproxy_config
global
    maxconn {config.max_client_connections + 64}
    nbthread 1
    tune.bufsize {BUFFER_BYTES}
    stats socket {paths.runtime_socket} mode 600 level admin
    hard-stop-after {_seconds(config.request_timeout_s + 5)}

ring {LOG_RING}
    format raw
    maxlen 256
    size {LOG_RING_BYTES}

defaults
    mode http
    option http-keep-alive
    timeout connect {_seconds(CONNECT_TIMEOUT_S)}
    timeout client {_seconds(config.client_body_timeout_s)}
    timeout http-request {_seconds(config.client_header_timeout_s)}
    timeout http-keep-alive {_seconds(config.client_idle_timeout_s)}
    timeout server {timeout}
    timeout queue {timeout}
    timeout check {_seconds(config.health_timeout_s)}
{errors}

frontend {FRONTEND}
{binds}
    maxconn {config.max_client_connections}
    option forwardfor
    option http-buffer-request
    option http-ignore-probes
    log ring@{LOG_RING} len 256 format raw sample 1:{config.latency_sample} local0
    log-format "{LOG_FORMAT}"
    http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt {config.max_request_bytes} }}
    use_backend {ADMIN_BACKEND} if {{ path_beg /-/ }}
    default_backend {BACKEND}

backend {ADMIN_BACKEND}
    option http-server-close
    timeout server 10s
    server controller 127.0.0.1:{paths.admin_http_port}

backend {BACKEND}
    balance {ALGORITHMS[config.policy]}
    http-reuse always
    retries {config.retries}
    option redispatch 1
    retry-on conn-failure empty-response
    option httpchk GET {READY_PATH}
{servers}
"""
