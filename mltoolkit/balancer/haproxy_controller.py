"""The haproxy data plane's controller: what HAProxy reports, the weight rule, the runtime API.

HAProxy forwards every request (``mltoolkit.balancer.haproxy_plane`` runs it); this module reads
its per-server counters over the runtime API (a unix socket: ``show stat``) every ~200 ms,
estimates each replica's time per request from them, and sets per-server weights (``set server
B/S weight``) so that a replica N times slower gets about 1/N of the weight (policy ``ewma``).
Replicas join and leave with ``add server`` / ``del server``.

Whatever the policy, a replica that broke off an answer since the last poll (its ``srv_abrt``
grew: the status line was sent, then the connection closed before the whole body) is marked down
(``set server B/S health down``) until its next health check passes, as the python data plane
takes it out of rotation at once. HAProxy's own ``observe layer7`` would do that as the answer
breaks, but it also counts every 5xx answer, and one request that makes the model raise (a 500)
would take a replica out; ``observe layer4`` sees refused connections only.

Parts: ``parse_show_stat`` (pure), ``WeightRule`` (pure: samples in, weights out),
``broke_off`` (pure), ``RuntimeAPI`` (the socket) and ``Controller`` (the loop tying them
together, in a thread).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from mltoolkit.balancer.config import ReplicaTarget
from mltoolkit.balancer.haproxy_config import BACKEND, FULL_WEIGHT, MAX_WEIGHT, address
from mltoolkit.balancer.policies import EWMA_TIE_TOLERANCE, LATENCY_FLOOR_S
from mltoolkit.errors import SpecError

INSTALL_HINT = "apt-get install haproxy"

logger = logging.getLogger("mltoolkit.balancer.haproxy")


class HAProxyError(RuntimeError):
    """HAProxy is missing, did not start, or refused a runtime-API command."""


# -- what HAProxy reports (pure) ---------------------------------------------------------------


@dataclass(frozen=True)
class ServerStat:
    """One server's line of ``show stat``: status (UP, DOWN, MAINT, ...), weight, in-flight
    (``scur``), queued (``qcur``), requests so far (``stot``), and HAProxy's own averages over
    its last 1024 requests (``rtime``: response, ``ttime``: total, in ms)."""

    name: str
    status: str
    weight: int
    scur: int
    qcur: int
    stot: int
    rtime_ms: int
    ttime_ms: int
    hrsp: tuple[int, int, int, int] = (0, 0, 0, 0)  # answers 2xx, 3xx, 4xx, 5xx
    eresp: int = 0  # attempts that got no valid answer
    srv_abrt: int = 0  # answers the server broke off (counted in eresp too)
    econ: int = 0  # connections that failed
    check_status: str = ""  # the last health check's result, such as L7OK or L4CON

    @property
    def up(self) -> bool:
        return self.status.startswith("UP")


def _int(row: Mapping[str, str], key: str) -> int:
    value = row.get(key) or ""
    return int(value) if value.strip() else 0


def show_stat_rows(text: str) -> list[dict[str, str]]:
    """``show stat``'s CSV (header line ``# pxname,svname,...``) as one dict per row."""
    if not text.startswith("# "):
        raise HAProxyError(f"show stat answered {text[:200]!r}, not its CSV")
    return list(csv.DictReader(io.StringIO(text[2:])))


def parse_show_stat(text: str, backend: str = BACKEND) -> list[ServerStat]:
    """The servers of ``backend`` from ``show stat``'s CSV."""
    return servers_of(show_stat_rows(text), backend)


def servers_of(rows: Sequence[Mapping[str, str]], backend: str = BACKEND) -> list[ServerStat]:
    """The servers of ``backend`` among ``show stat``'s rows."""
    return [
        ServerStat(
            name=row["svname"], status=row.get("status", ""), weight=_int(row, "weight"),
            scur=_int(row, "scur"), qcur=_int(row, "qcur"), stot=_int(row, "stot"),
            rtime_ms=_int(row, "rtime"), ttime_ms=_int(row, "ttime"),
            hrsp=(_int(row, "hrsp_2xx"), _int(row, "hrsp_3xx"), _int(row, "hrsp_4xx"), _int(row, "hrsp_5xx")),
            eresp=_int(row, "eresp"), srv_abrt=_int(row, "srv_abrt"), econ=_int(row, "econ"),
            check_status=row.get("check_status") or "",
        )  # fmt: skip
        for row in rows
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND")
    ]


# -- the weight rule (pure) ---------------------------------------------------------------------


@dataclass
class ServerEstimate:
    """Smoothed in-flight requests and completions per second of one server; by Little's law
    their ratio is its time per request, queueing on the replica included. Both decay at the
    same pace when traffic stops, so the ratio stays."""

    in_flight: float = 0.0
    rate_rps: float = 0.0
    last_stot: int | None = None
    completed: int = 0  # requests observed since the controller started
    busy_s: float = 0.0  # request-seconds in flight observed since then

    @property
    def seconds_per_request(self) -> float | None:
        if self.rate_rps > 0:
            return self.in_flight / self.rate_rps if self.in_flight > 0 else None
        return math.inf if self.in_flight > 0 else None  # busy, nothing completes: stuck


@dataclass
class WeightRule:
    """Weights proportional to each replica's speed (1 / its time per request): a replica N times
    slower than the fastest gets ~``FULL_WEIGHT / N`` (``speed_weight``: near-ties get
    ``FULL_WEIGHT``), never below 1 (so it still gets a trickle of requests to be measured by).
    Estimates are exponential moving averages with time constant
    ``smoothing_s``; a server keeps ``FULL_WEIGHT`` until ``min_requests`` completed on it or it
    held requests for ``min_busy_s`` request-seconds (a stuck one completes none)."""

    smoothing_s: float = 2.0
    min_requests: int = 5
    min_busy_s: float = 2.0
    estimates: dict[str, ServerEstimate] = field(default_factory=dict)

    def update(self, stats: Sequence[ServerStat], elapsed_s: float) -> None:
        """Fold in one ``show stat`` sample taken ``elapsed_s`` after the previous one."""
        alpha = 1.0 - math.exp(-max(elapsed_s, 0.0) / self.smoothing_s)
        for stat in stats:
            estimate = self.estimates.setdefault(stat.name, ServerEstimate())
            if estimate.last_stot is None or elapsed_s <= 0:
                estimate.last_stot = stat.stot
                estimate.in_flight = float(stat.scur)
                continue
            done = max(0, stat.stot - estimate.last_stot)
            estimate.last_stot = stat.stot
            estimate.completed += done
            estimate.busy_s += stat.scur * elapsed_s
            estimate.rate_rps += alpha * (done / elapsed_s - estimate.rate_rps)
            estimate.in_flight += alpha * (stat.scur - estimate.in_flight)

    def weights(self, stats: Sequence[ServerStat]) -> dict[str, int]:
        """The weight for every server that is up."""
        times = {}
        for stat in stats:
            estimate = self.estimates.get(stat.name)
            seconds = estimate.seconds_per_request if estimate else None
            known = estimate is not None and (estimate.completed >= self.min_requests
                                              or estimate.busy_s >= self.min_busy_s)
            if stat.up and known and seconds:
                times[stat.name] = seconds
        fastest = min(times.values(), default=math.inf)
        weights = {}
        for stat in stats:
            if not stat.up:
                continue
            if stat.name in times and math.isfinite(fastest):
                weights[stat.name] = speed_weight(times[stat.name], fastest)
            else:
                weights[stat.name] = FULL_WEIGHT
        return weights


def speed_weight(seconds: float, fastest_s: float) -> int:
    """The weight of a replica taking ``seconds`` per request when the fastest takes ``fastest_s``.
    As in the python ewma, times below ``LATENCY_FLOOR_S``, or within ``EWMA_TIE_TOLERANCE`` of
    the fastest, are equal (noise between equal replicas must not split them unevenly)."""
    speed = max(fastest_s, LATENCY_FLOOR_S) / max(seconds, LATENCY_FLOOR_S)
    weight = FULL_WEIGHT if speed >= 1 - EWMA_TIE_TOLERANCE else round(FULL_WEIGHT * speed)
    return max(1, min(MAX_WEIGHT, weight))


def weight_changes(stats: Sequence[ServerStat], wanted: Mapping[str, int], tolerance: float = 0.1) -> dict[str, int]:
    """The weights worth sending: those more than ``tolerance`` (relative) from the current one."""
    current = {s.name: s.weight for s in stats}
    return {
        name: weight
        for name, weight in wanted.items()
        if name in current and abs(weight - current[name]) > tolerance * max(current[name], 1)
    }


def broke_off(stats: Sequence[ServerStat], seen: Mapping[str, int]) -> list[str]:
    """The servers up now whose broken-off answers (``srv_abrt``) grew past ``seen``'s count (0
    for a server not seen before: HAProxy's counters start at 0, for added servers too)."""
    return [s.name for s in stats if s.up and s.srv_abrt > seen.get(s.name, 0)]


# -- the runtime API (a unix socket) ------------------------------------------------------------


class RuntimeAPI:
    """HAProxy's runtime API: one command per connection, the answer read to the end."""

    def __init__(self, socket_path: str, backend: str = BACKEND, timeout_s: float = 5.0) -> None:
        self.socket_path = socket_path
        self.backend = backend
        self.timeout_s = timeout_s

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout_s)
            sock.connect(self.socket_path)
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def _checked(self, line: str) -> str:
        answer = self.command(line)
        text = answer.strip()
        if text and not text.startswith("New server registered") and not text.startswith("Server deleted"):
            raise HAProxyError(f"HAProxy refused {line!r}: {text}")
        return text

    def show_stat(self) -> list[ServerStat]:
        return parse_show_stat(self.command("show stat"), self.backend)

    def set_weight(self, server: str, weight: int) -> None:
        if not 0 <= weight <= MAX_WEIGHT:
            raise SpecError("weight", weight, f"a whole number from 0 to {MAX_WEIGHT}")
        self._checked(f"set server {self.backend}/{server} weight {weight}")

    def add_server(self, target: ReplicaTarget, weight: int, options: str) -> None:
        """A new replica, health-checked like the others, taking requests once its check passes."""
        self._checked(f"add server {self.backend}/{target.name} {address(target)} weight {weight} {options}")
        name = target.name
        self._checked(f"enable health {self.backend}/{name}")
        self._checked(f"enable server {self.backend}/{name}")

    def mark_down(self, name: str) -> None:
        """Out of rotation until its next health check passes (those in flight go on)."""
        self._checked(f"set server {self.backend}/{name} health down")

    def disable_server(self, name: str) -> None:
        """No new request goes to ``name`` (those in flight go on)."""
        self._checked(f"disable server {self.backend}/{name}")

    def remove_server(self, name: str, drain_timeout_s: float = 30.0) -> None:
        """Stop sending to ``name``, wait for its requests in flight, delete it."""
        self.disable_server(name)
        deadline = time.monotonic() + drain_timeout_s
        while any(s.name == name and s.scur > 0 for s in self.show_stat()):
            if time.monotonic() > deadline:
                raise HAProxyError(f"server {name} still has requests in flight after {drain_timeout_s:g} s")
            time.sleep(0.05)
        self._checked(f"del server {self.backend}/{name}")


def haproxy_binary() -> str:
    path = shutil.which("haproxy")
    if path is None:
        raise HAProxyError(f"haproxy is not installed; install it with: {INSTALL_HINT}")
    return path


# -- the control loop -------------------------------------------------------------------------------


class Controller:
    """Every ``interval_s``: ``show stat``; mark down the servers that ``broke_off`` an answer;
    with a ``WeightRule`` (policy ``ewma``; None for the others), fold the poll into it and send
    the weights that changed. Runs in a daemon thread between ``start()`` and ``stop()``;
    ``polls`` counts the polls made, ``errors`` those that failed (HAProxy briefly unreachable),
    ``weight_sets`` the weights sent, ``marked_down`` the servers marked down."""

    def __init__(self, api: RuntimeAPI, rule: WeightRule | None, interval_s: float = 0.2) -> None:
        if not 0.01 <= interval_s <= 60:
            raise SpecError("interval_s", interval_s, "seconds from 0.01 to 60")
        self.api = api
        self.rule = rule
        self.interval_s = interval_s
        self.polls = 0
        self.errors = 0
        self.weight_sets = 0
        self.marked_down = 0
        self.last_error = ""
        self._broken: dict[str, int] = {}  # srv_abrt per server at the last poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = 0.0

    def step(self) -> dict[str, int]:
        """One poll; the weights sent."""
        stats = self.api.show_stat()
        self.polls += 1
        for name in broke_off(stats, self._broken):
            self.api.mark_down(name)
            self.marked_down += 1
            logger.warning("replica %s broke off an answer: out of rotation until its next health "
                           "check passes", name)  # fmt: skip
        self._broken = {s.name: s.srv_abrt for s in stats}
        if self.rule is None:
            return {}
        now = time.monotonic()
        self.rule.update(stats, now - self._last if self._last else 0.0)
        self._last = now
        changes = weight_changes(stats, self.rule.weights(stats))
        for name, weight in changes.items():
            self.api.set_weight(name, weight)
            self.weight_sets += 1
        return changes

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
            except (OSError, HAProxyError) as exc:
                self.errors += 1
                self.last_error = str(exc)

    def start(self) -> Controller:
        self._thread = threading.Thread(target=self._run, name="haproxy-controller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Controller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
