"""The balancer's settings as typed, validated dataclasses, and their command-line form.

``BalancerConfig`` validates itself on construction and raises one ``SpecError`` naming the field,
the value and what is allowed, so a bad setting is reported before any socket opens.
``to_cli_args`` / ``parse_replica`` keep the process command line
(``--replica NAME=URL[@NODE]``) in step with the dataclass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence
from urllib.parse import urlsplit

from mltoolkit.balancer.policies import DEFAULT_POLICY, policy_names
from mltoolkit.errors import SpecError

if TYPE_CHECKING:
    from mltoolkit.spec import BalancerSpec

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
NAME_ALLOWED = "1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"
URL_ALLOWED = "an http:// or https:// URL with a host, such as http://127.0.0.1:8001"
REPLICA_FORMAT = "NAME=URL[@NODE], such as digits-0=http://127.0.0.1:8001@node-0"
#: What forwards the requests (``BalancerSpec.data_plane``, ``--data-plane``): HAProxy with this
#: package as its controller (the default: issue 10 measured it), or this package's asyncio proxy.
DATA_PLANES = ("haproxy", "python")
DEFAULT_DATA_PLANE = "haproxy"


def check_data_plane(owner: str, data_plane: Any, hedge: bool) -> None:
    """``data_plane`` is one of ``DATA_PLANES``, and hedging asks for the python one (the rule of
    ``BalancerSpec`` and ``BalancerConfig`` alike; ``owner`` names the class in the error)."""
    if data_plane not in DATA_PLANES:
        raise SpecError(f"{owner}.data_plane", data_plane, f"one of {DATA_PLANES}")
    if hedge and data_plane != "python":
        raise SpecError(f"{owner}.hedge", hedge, f'False with data_plane "{data_plane}": hedging needs data_plane="python"')


def _check_number(field: str, value: Any, low: float, high: float, whole: bool = False) -> None:
    kinds: tuple[type, ...] = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise SpecError(field, value, f"{kind} from {low} to {high}")


@dataclass(frozen=True)
class ReplicaTarget:
    """One replica behind the balancer: its name, base URL, node label and relative weight."""

    name: str
    url: str
    node: str = ""
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise SpecError("ReplicaTarget.name", self.name, NAME_ALLOWED)
        if not isinstance(self.url, str):
            raise SpecError("ReplicaTarget.url", self.url, URL_ALLOWED)
        try:
            parts = urlsplit(self.url)
            parts.port  # raises ValueError on a port that is not a number or out of range
        except ValueError:
            raise SpecError("ReplicaTarget.url", self.url, URL_ALLOWED) from None
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise SpecError("ReplicaTarget.url", self.url, URL_ALLOWED)
        if self.node and (not isinstance(self.node, str) or not _NAME.match(self.node)):
            raise SpecError("ReplicaTarget.node", self.node, f"empty or {NAME_ALLOWED}")
        _check_number("ReplicaTarget.weight", self.weight, 0.001, 1000)
        object.__setattr__(self, "url", self.url.rstrip("/"))


def parse_replica(text: str) -> ReplicaTarget:
    """``NAME=URL[@NODE]`` → ReplicaTarget; the node is what follows the last ``@``."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise SpecError("--replica", text, REPLICA_FORMAT)
    url, at, node = rest.rpartition("@")
    if not at or "/" in node:  # no "@NODE", or the "@" belongs to the URL
        url, node = rest, ""
    elif not node:
        raise SpecError("--replica", text, REPLICA_FORMAT + " (the node after '@' is empty)")
    return ReplicaTarget(name=name, url=url, node=node)


@dataclass(frozen=True)
class BalancerConfig:
    """Everything the balancer process needs.

    ``port`` 0 lets the OS choose a free port (the process prints the one it got).
    ``health_timeout_s`` bounds each readiness probe; a replica is taken out of rotation at once
    when a connection is refused, after ``unhealthy_after`` failed probes in a row otherwise, and
    put back after one passing probe. ``retries`` is how many other replicas a request may try
    after a connection-level failure. ``request_timeout_s`` bounds a whole request, retries and
    waiting included (then 504).
    Clients: a request's headers must arrive within ``client_header_timeout_s`` of its first
    byte and its body within ``client_body_timeout_s`` after them (else 408; on the haproxy
    data plane a body of up to 8 KB counts in the headers' time, see ``haproxy_config``); an idle
    keep-alive connection is closed after ``client_idle_timeout_s``; at most
    ``max_client_connections`` are open at once (one more gets a 503). ``reuse_port`` binds with
    SO_REUSEPORT so several balancer processes can share one port. ``hedge``: a POST or GET with
    no answer after ``HEDGE_MULTIPLE`` times the slowest other replica's latency average (at least
    ``hedge_min_s``) is sent to another replica too; the first answer wins.
    ``admin_port``: a second, private port of this process only (not shared with SO_REUSEPORT),
    serving the same routes, so its ``/-/health`` and ``/-/metrics`` can be asked of this one
    process when several share ``port``.
    ``data_plane``: ``"haproxy"`` (HAProxy forwards the requests, this package's controller sets
    its weights and membership: ``mltoolkit.balancer.haproxy_plane``) or ``"python"`` (this
    package's asyncio data plane, ``mltoolkit.balancer.server``; the only one that hedges).
    ``latency_sample``: the haproxy data plane times one request in N for ``/-/metrics``.
    ``discovered``: replicas also join and leave while the balancer runs (``--discover-service``),
    so ``replicas`` may be empty at start (requests get a 503 "no replica yet" until one joins);
    ``to_cli_args`` leaves the discovery options to the caller.
    """

    replicas: tuple[ReplicaTarget, ...]
    policy: str = DEFAULT_POLICY
    host: str = "127.0.0.1"
    port: int = 0
    health_interval_s: float = 0.25
    health_timeout_s: float = 0.5
    unhealthy_after: int = 2
    retries: int = 1
    request_timeout_s: float = 30.0
    max_request_bytes: int = 2**30
    max_connections_per_replica: int = 100
    client_header_timeout_s: float = 10.0
    client_body_timeout_s: float = 60.0
    client_idle_timeout_s: float = 60.0
    max_client_connections: int = 8192
    reuse_port: bool = False
    hedge: bool = False
    hedge_min_s: float = 0.1
    admin_port: int | None = None
    discovered: bool = False
    data_plane: str = DEFAULT_DATA_PLANE
    latency_sample: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.replicas, (list, tuple)):
            object.__setattr__(self, "replicas", tuple(self.replicas))
        if not isinstance(self.discovered, bool):
            raise SpecError("BalancerConfig.discovered", self.discovered, "True or False")
        if not isinstance(self.replicas, tuple) or not (self.replicas or self.discovered):
            allowed = "ReplicaTarget items" if self.discovered else "one or more ReplicaTarget"
            raise SpecError("BalancerConfig.replicas", self.replicas, allowed)
        seen: set[str] = set()
        for replica in self.replicas:
            if not isinstance(replica, ReplicaTarget):
                raise SpecError("BalancerConfig.replicas", replica, "ReplicaTarget items")
            if replica.name in seen:
                raise SpecError("BalancerConfig.replicas", replica.name, "unique replica names")
            seen.add(replica.name)
        if self.policy not in policy_names():
            raise SpecError("BalancerConfig.policy", self.policy, f"one of {policy_names()}")
        if not isinstance(self.host, str) or not self.host or any(c.isspace() for c in self.host):
            raise SpecError("BalancerConfig.host", self.host, "an IP address or host name")
        _check_number("BalancerConfig.port", self.port, 0, 65535, whole=True)
        _check_number("BalancerConfig.health_interval_s", self.health_interval_s, 0.05, 60)
        _check_number("BalancerConfig.health_timeout_s", self.health_timeout_s, 0.05, 60)
        _check_number("BalancerConfig.unhealthy_after", self.unhealthy_after, 1, 100, whole=True)
        _check_number("BalancerConfig.retries", self.retries, 0, 3, whole=True)
        _check_number("BalancerConfig.request_timeout_s", self.request_timeout_s, 0.1, 3600)
        _check_number("BalancerConfig.max_request_bytes", self.max_request_bytes, 1024, 2**31, whole=True)
        _check_number(
            "BalancerConfig.max_connections_per_replica", self.max_connections_per_replica, 1, 10_000,
            whole=True,
        )  # fmt: skip
        _check_number("BalancerConfig.client_header_timeout_s", self.client_header_timeout_s, 0.05, 3600)
        _check_number("BalancerConfig.client_body_timeout_s", self.client_body_timeout_s, 0.05, 3600)
        _check_number("BalancerConfig.client_idle_timeout_s", self.client_idle_timeout_s, 0.05, 3600)
        _check_number(
            "BalancerConfig.max_client_connections", self.max_client_connections, 1, 1_000_000, whole=True
        )
        if not isinstance(self.reuse_port, bool):
            raise SpecError("BalancerConfig.reuse_port", self.reuse_port, "True or False")
        if not isinstance(self.hedge, bool):
            raise SpecError("BalancerConfig.hedge", self.hedge, "True or False")
        _check_number("BalancerConfig.hedge_min_s", self.hedge_min_s, 0.001, 3600)
        check_data_plane("BalancerConfig", self.data_plane, self.hedge)
        _check_number("BalancerConfig.latency_sample", self.latency_sample, 1, 10_000, whole=True)
        if self.admin_port is not None:
            _check_number("BalancerConfig.admin_port", self.admin_port, 1, 65535, whole=True)
            if self.admin_port == self.port:
                raise SpecError("BalancerConfig.admin_port", self.admin_port, f"a port other than --port {self.port}")

    @classmethod
    def from_spec(
        cls, spec: BalancerSpec, replicas: Sequence[ReplicaTarget], **overrides: Any
    ) -> BalancerConfig:
        """The config a ``BalancerSpec`` describes, for these replicas."""
        values: dict[str, Any] = {
            "policy": spec.policy,
            "health_interval_s": spec.health_interval_s,
            "retries": spec.retries,
            "request_timeout_s": spec.request_timeout_s,
            "hedge": spec.hedge,
            "data_plane": spec.data_plane,
        }
        values.update(overrides)
        return cls(replicas=tuple(replicas), **values)

    def to_cli_args(self) -> list[str]:
        """The ``python -m mltoolkit.balancer`` arguments that rebuild this config."""
        args = [
            "--port", str(self.port),
            "--host", self.host,
            "--policy", self.policy,
            "--health-interval", repr(float(self.health_interval_s)),
            "--health-timeout", repr(float(self.health_timeout_s)),
            "--unhealthy-after", str(self.unhealthy_after),
            "--retries", str(self.retries),
            "--timeout", repr(float(self.request_timeout_s)),
            "--max-request-bytes", str(self.max_request_bytes),
            "--max-connections-per-replica", str(self.max_connections_per_replica),
            "--client-header-timeout", repr(float(self.client_header_timeout_s)),
            "--client-body-timeout", repr(float(self.client_body_timeout_s)),
            "--client-idle-timeout", repr(float(self.client_idle_timeout_s)),
            "--max-client-connections", str(self.max_client_connections),
            "--data-plane", self.data_plane,
            "--latency-sample", str(self.latency_sample),
        ]  # fmt: skip
        if self.reuse_port:
            args.append("--reuse-port")
        if self.hedge:
            args += ["--hedge", "--hedge-min", repr(float(self.hedge_min_s))]
        if self.admin_port is not None:
            args += ["--admin-port", str(self.admin_port)]
        for replica in self.replicas:
            node = f"@{replica.node}" if replica.node else ""
            args += ["--replica", f"{replica.name}={replica.url}{node}"]
            if replica.weight != 1.0:
                args += ["--weight", f"{replica.name}={float(replica.weight)!r}"]
        return args
