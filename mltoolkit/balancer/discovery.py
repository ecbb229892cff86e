"""Replicas found through Kubernetes: follow a Service's EndpointSlices and tell the data plane.

The balancer tier on GKE (``mltoolkit.gcp.balancer_tier``) runs the balancer with
``--discover-service SVC``; instead of a static ``--replica`` list it follows the EndpointSlices
of the model Service (label ``kubernetes.io/service-name=SVC``) through the Kubernetes API:

- **list** (paged with ``limit``/``continue``) gives every slice and a ``resourceVersion``;
- **watch** from that version (``watch=1&allowWatchBookmarks=true``) streams ADDED, MODIFIED,
  DELETED and BOOKMARK events; each one moves the version on, so a watch that the server closes
  (its ``timeoutSeconds``, a restart) resumes where it stopped;
- **410 Gone** (the version is older than the server keeps, as an answer or as an ERROR event)
  means events were lost: list again, and compare the new list with what was known before, so an
  endpoint that vanished in the gap is still removed;
- API errors (5xx, refused connections, broken streams) are retried after an exponential back-off
  with jitter (``Backoff``), reset by the next success; a watch that closes at once, without an
  event, backs off too, so a misbehaving server is not hammered.

The pure half turns slices into endpoints (``endpoints_from_slices``: address, port, node, pod name
and the ``ready``/``serving``/``terminating`` conditions) and two endpoint sets into decisions
(``decisions``): **add** an endpoint that became ready, **drain** one that is terminating or no
longer ready (no new requests; those in flight finish), **remove** one that is gone. The data plane
receives them through the small ``ReplicaSet`` interface; ``EndpointSliceFollower`` is the one place
that talks HTTP.

API access is the in-cluster configuration every pod gets (``KubeAPIConfig.in_cluster``): the API
server from ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT``, the service-account token and
CA from ``/var/run/secrets/kubernetes.io/serviceaccount``. The token file is read again for every
request: the kubelet rotates bound tokens in place. RBAC needed: get/list/watch ``endpointslices``
in group ``discovery.k8s.io``, in the Service's namespace, nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import ipaddress
import json
import logging
import os
import random
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Iterable, Literal, Mapping, Protocol
from urllib.parse import quote

import aiohttp

from mltoolkit.balancer.config import ReplicaTarget
from mltoolkit.errors import MltoolkitError, SpecError

logger = logging.getLogger("mltoolkit.balancer.discovery")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_PATH = SERVICE_ACCOUNT_DIR / "token"
CA_PATH = SERVICE_ACCOUNT_DIR / "ca.crt"
NAMESPACE_PATH = SERVICE_ACCOUNT_DIR / "namespace"
DEFAULT_PORT_NAME = "http"
LIST_PAGE_SIZE = 500

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # namespaces, port names
_SERVICE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # RFC 1035 label
_NOT_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class DiscoveryError(MltoolkitError):
    """Following the EndpointSlices failed in a way retrying cannot fix (bad configuration)."""


class _Gone(Exception):
    """The API server no longer has the resourceVersion we asked for (410): list again."""


class _ApiError(Exception):
    """A failed call that is worth retrying after a back-off."""


# -------------------------------------------------------------------------------------------
# Endpoints and decisions (pure)
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One address of the Service as its EndpointSlices describe it.

    ``name`` is the pod's name (the endpoint's ``targetRef``), or the address when there is none.
    The conditions follow the EndpointSlice API: ``ready`` and ``serving`` absent mean true,
    ``terminating`` absent means false.
    """

    name: str
    address: str
    port: int
    node: str = ""
    ready: bool = True
    serving: bool = True
    terminating: bool = False

    @property
    def routable(self) -> bool:
        """May receive new requests: ready and not terminating."""
        return self.ready and not self.terminating

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"

    def target(self) -> ReplicaTarget:
        return ReplicaTarget(name=self.name, url=self.url, node=self.node)


def _safe_name(text: str) -> str:
    """``text`` as a replica or node name the balancer accepts (see ``ReplicaTarget``)."""
    return _NOT_NAME.sub("-", text)[:63].strip("._-")


def _condition(conditions: Mapping[str, Any], key: str, default: bool) -> bool:
    value = conditions.get(key)
    return default if value is None else bool(value)


def _slice_port(slice_object: Mapping[str, Any], port_name: str | None) -> int | None:
    ports = slice_object.get("ports") or []
    if port_name is None:
        numbers = [p.get("port") for p in ports if isinstance(p, Mapping)]
        return numbers[0] if len(numbers) == 1 and isinstance(numbers[0], int) else None
    for port in ports:
        if isinstance(port, Mapping) and port.get("name") == port_name and isinstance(port.get("port"), int):
            return int(port["port"])
    return None


def _rank(endpoint: Endpoint) -> tuple[bool, bool, bool]:
    return endpoint.routable, endpoint.ready, endpoint.serving


def endpoints_from_slices(
    slices: Iterable[Mapping[str, Any]], port_name: str | None = DEFAULT_PORT_NAME
) -> dict[str, Endpoint]:
    """Fold EndpointSlice objects into endpoints by name.

    Only IPv4/IPv6 slices count, and only their port named ``port_name`` (``None``: a slice's one
    and only port); a slice without that port contributes nothing. An endpoint listed in two
    slices (it happens while the controller moves endpoints between slices) is taken in its most
    usable state.
    """
    endpoints: dict[str, Endpoint] = {}
    for slice_object in slices:
        if slice_object.get("addressType") not in ("IPv4", "IPv6"):
            continue
        port = _slice_port(slice_object, port_name)
        if port is None:
            continue
        for item in slice_object.get("endpoints") or []:
            addresses = item.get("addresses") or []
            if not addresses:
                continue
            address = str(addresses[0])
            try:
                ipaddress.ip_address(address)
            except ValueError:
                continue
            target = item.get("targetRef") or {}
            name = _safe_name(str(target.get("name") or "")) or _safe_name(f"endpoint-{address}")
            conditions = item.get("conditions") or {}
            endpoint = Endpoint(
                name=name,
                address=address,
                port=port,
                node=_safe_name(str(item.get("nodeName") or "")),
                ready=_condition(conditions, "ready", True),
                serving=_condition(conditions, "serving", True),
                terminating=_condition(conditions, "terminating", False),
            )
            known = endpoints.get(name)
            if known is None or _rank(endpoint) > _rank(known):
                endpoints[name] = endpoint
    return endpoints


Action = Literal["add", "drain", "remove"]


@dataclass(frozen=True)
class Decision:
    """What the data plane should do with one replica. ``target`` is set for ``add``."""

    action: Action
    name: str
    target: ReplicaTarget | None = None


def decisions(before: Mapping[str, Endpoint], after: Mapping[str, Endpoint]) -> list[Decision]:
    """The decisions that take the data plane from ``before`` to ``after``: adds, then drains,
    then removes, each sorted by name.

    - add: routable now, and not before (new, became ready, stopped terminating) or at another
      address/port/node (the pod's IP changed: the replica is replaced);
    - drain: routable before, still listed, no longer routable (terminating, not ready);
    - remove: listed before, gone now.
    """
    adds, drains, removes = [], [], []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if new is None:
            removes.append(Decision("remove", name))
        elif new.routable:
            moved = old is not None and (old.url, old.node) != (new.url, new.node)
            if old is None or not old.routable or moved:
                adds.append(Decision("add", name, new.target()))
        elif old is not None and old.routable:
            drains.append(Decision("drain", name))
    return adds + drains + removes


# -------------------------------------------------------------------------------------------
# The data plane's side
# -------------------------------------------------------------------------------------------


class ReplicaSet(Protocol):
    """What discovery asks of the data plane; each call is idempotent and may be async.

    ``add_replica`` with a known name and another URL replaces it; ``drain_replica`` stops new
    requests to it and lets those in flight finish, then forgets it; ``remove_replica`` does the
    same for a replica that is gone (its in-flight requests may still finish: a pod that is
    deleted gets SIGTERM and finishes them). Unknown names are ignored.
    """

    def add_replica(self, target: ReplicaTarget) -> Awaitable[None] | None: ...

    def drain_replica(self, name: str) -> Awaitable[None] | None: ...

    def remove_replica(self, name: str) -> Awaitable[None] | None: ...


async def apply_decisions(replicas: ReplicaSet, planned: Iterable[Decision]) -> None:
    """Perform ``planned`` on ``replicas`` in order (the one place that calls the data plane)."""
    for decision in planned:
        if decision.action == "add":
            assert decision.target is not None
            result = replicas.add_replica(decision.target)
        elif decision.action == "drain":
            result = replicas.drain_replica(decision.name)
        else:
            result = replicas.remove_replica(decision.name)
        if inspect.isawaitable(result):
            await result
        logger.info("discovery: %s %s", decision.action, decision.name)


class ReplicaEngine(Protocol):
    """The routing engine's own membership calls (``proxy.Balancer`` of the data plane):
    ``add_replica`` probes and adds a new name (a name in use is an error); ``drain_replica``
    stops new requests, returns when those in flight have finished, and forgets the replica."""

    async def add_replica(self, target: ReplicaTarget) -> None: ...

    async def drain_replica(self, name: str) -> None: ...


class EngineReplicaSet:
    """Discovery's ``ReplicaSet`` over a ``ReplicaEngine``: idempotent, and never blocking.

    Each replica's operations run in order in the background (a drain waits for its requests in
    flight; an add of the same name, say a pod ready again, waits for that drain), so one slow
    drain does not hold up the changes of other replicas. ``initial``: the replicas the engine
    starts with. A failed operation is logged and counted in ``failures``.
    """

    def __init__(self, engine: ReplicaEngine, initial: Iterable[ReplicaTarget] = ()) -> None:
        self.engine = engine
        self.active: dict[str, ReplicaTarget] = {t.name: t for t in initial}
        self.failures = 0
        self._tails: dict[str, asyncio.Task[None]] = {}

    def _then(self, name: str, step: Any) -> None:
        previous = self._tails.get(name)

        async def run() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            try:
                await step()
            except Exception:
                self.failures += 1
                logger.exception("discovery: the data plane failed an operation on replica %s", name)

        task = asyncio.create_task(run(), name=f"replica-{name}")
        self._tails[name] = task
        task.add_done_callback(lambda done: self._tails.pop(name) if self._tails.get(name) is done else None)

    def add_replica(self, target: ReplicaTarget) -> None:
        known = self.active.get(target.name)
        if known is not None and (known.url, known.node) == (target.url, target.node):
            return
        if known is not None:  # the pod's address changed: the old one goes first
            self._then(target.name, lambda: self.engine.drain_replica(target.name))
        self.active[target.name] = target
        self._then(target.name, lambda: self.engine.add_replica(target))

    def drain_replica(self, name: str) -> None:
        if self.active.pop(name, None) is not None:
            self._then(name, lambda: self.engine.drain_replica(name))

    def remove_replica(self, name: str) -> None:
        self.drain_replica(name)

    async def settled(self) -> None:
        """Wait until every operation started so far has finished (drains included)."""
        while self._tails:
            await asyncio.gather(*list(self._tails.values()), return_exceptions=True)


# -------------------------------------------------------------------------------------------
# Configuration
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeAPIConfig:
    """Where the Kubernetes API is and how to authenticate: ``in_cluster()`` inside a pod."""

    url: str
    namespace: str
    token_path: Path | None = TOKEN_PATH
    ca_path: Path | None = CA_PATH

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not re.match(r"^https?://[^/\s]+$", self.url):
            raise SpecError("KubeAPIConfig.url", self.url, "http(s)://HOST:PORT of the Kubernetes API")
        if not isinstance(self.namespace, str) or not _DNS_LABEL.match(self.namespace):
            raise SpecError("KubeAPIConfig.namespace", self.namespace, "a namespace name (RFC 1123 label)")

    @classmethod
    def in_cluster(
        cls,
        namespace: str | None = None,
        *,
        environ: Mapping[str, str] = os.environ,
        service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    ) -> KubeAPIConfig:
        """The pod's own API access; ``namespace`` defaults to the pod's namespace."""
        host = environ.get("KUBERNETES_SERVICE_HOST", "")
        port = environ.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port:
            raise DiscoveryError(
                "--discover-service needs the in-cluster Kubernetes API: KUBERNETES_SERVICE_HOST and "
                "KUBERNETES_SERVICE_PORT are not set (not running in a pod?); use --replica outside Kubernetes"
            )
        token, ca = service_account_dir / "token", service_account_dir / "ca.crt"
        for path in (token, ca):
            if not path.is_file():
                raise DiscoveryError(
                    f"--discover-service needs the pod's service-account {path.name} at {path}; "
                    "set automountServiceAccountToken: true on the balancer's service account"
                )
        if namespace is None:
            try:
                namespace = (service_account_dir / "namespace").read_text().strip()
            except OSError:
                raise DiscoveryError(
                    f"no namespace given (--discover-namespace) and none at {service_account_dir / 'namespace'}"
                ) from None
        host = f"[{host}]" if ":" in host else host
        return cls(url=f"https://{host}:{port}", namespace=namespace, token_path=token, ca_path=ca)

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token_path is not None:
            headers["Authorization"] = f"Bearer {self.token_path.read_text().strip()}"
        return headers

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https://"):
            return None
        return ssl.create_default_context(cafile=str(self.ca_path) if self.ca_path else None)


@dataclass(frozen=True)
class DiscoveryConfig:
    """Which Service to follow and how patiently.

    ``port_name`` is the Service port whose endpoints are the replicas (None: the only one).
    ``watch_timeout_s`` is asked of the server for each watch (it closes the watch then; we resume).
    Back-off after failures: from ``backoff_initial_s``, doubling up to ``backoff_max_s``.
    """

    service: str
    port_name: str | None = DEFAULT_PORT_NAME
    watch_timeout_s: int = 300
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    request_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.service, str) or not _SERVICE_NAME.match(self.service):
            raise SpecError(
                "DiscoveryConfig.service", self.service,
                "a Service name: 1-63 lowercase letters, digits or '-', starting with a letter",
            )  # fmt: skip
        if self.port_name is not None and (not isinstance(self.port_name, str) or not _DNS_LABEL.match(self.port_name)):
            raise SpecError("DiscoveryConfig.port_name", self.port_name, "None or a Service port name")
        if isinstance(self.watch_timeout_s, bool) or not isinstance(self.watch_timeout_s, int) or not 1 <= self.watch_timeout_s <= 3600:
            raise SpecError("DiscoveryConfig.watch_timeout_s", self.watch_timeout_s, "a whole number of seconds from 1 to 3600")
        for name in ("backoff_initial_s", "backoff_max_s", "request_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.001 <= value <= 3600:
                raise SpecError(f"DiscoveryConfig.{name}", value, "a number of seconds from 0.001 to 3600")
        if self.backoff_max_s < self.backoff_initial_s:
            raise SpecError("DiscoveryConfig.backoff_max_s", self.backoff_max_s, f"at least backoff_initial_s ({self.backoff_initial_s})")

    @property
    def label_selector(self) -> str:
        return f"{SERVICE_NAME_LABEL}={self.service}"


@dataclass
class Backoff:
    """Exponential back-off with jitter: each delay is in [d/2, d], d doubling up to ``maximum``."""

    initial: float
    maximum: float
    attempts: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * 2 ** min(self.attempts, 30))
        self.attempts += 1
        return delay * self.rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempts = 0


# -------------------------------------------------------------------------------------------
# The command line: python -m mltoolkit.balancer --discover-service SVC [...]
# -------------------------------------------------------------------------------------------

#: DiscoveryConfig / KubeAPIConfig field -> the option that sets it, so errors name what was typed
OPTION_OF_FIELD = {
    "DiscoveryConfig.service": "--discover-service",
    "DiscoveryConfig.port_name": "--discover-port-name",
    "KubeAPIConfig.namespace": "--discover-namespace",
}


def add_discovery_options(parser: argparse.ArgumentParser) -> None:
    """``--discover-service``, ``--discover-namespace``, ``--discover-port-name``."""
    group = parser.add_argument_group("replicas found through Kubernetes (in a pod; instead of --replica)")
    group.add_argument(
        "--discover-service", metavar="SERVICE", default=None,
        help="follow the EndpointSlices of this Service: its ready pods are the replicas",
    )  # fmt: skip
    group.add_argument(
        "--discover-namespace", metavar="NAMESPACE", default=None,
        help="the Service's namespace (default: the pod's own)",
    )  # fmt: skip
    group.add_argument(
        "--discover-port-name", metavar="NAME", default=DEFAULT_PORT_NAME,
        help="the Service port whose endpoints are the replicas (default %(default)s)",
    )  # fmt: skip


def discovery_from_args(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str] = os.environ,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> tuple[KubeAPIConfig, DiscoveryConfig] | None:
    """The API access and discovery settings the options ask for; None without --discover-service.

    Raises ``SpecError`` (see ``OPTION_OF_FIELD`` for the option) or ``DiscoveryError`` (not in a
    pod, no service-account token).
    """
    if not args.discover_service:
        return None
    config = DiscoveryConfig(service=args.discover_service, port_name=args.discover_port_name)
    api = KubeAPIConfig.in_cluster(args.discover_namespace, environ=environ, service_account_dir=service_account_dir)
    return api, config


# -------------------------------------------------------------------------------------------
# The follower (the side effects)
# -------------------------------------------------------------------------------------------


@dataclass
class FollowerCounters:
    """What the follower did, for logs and tests."""

    lists: int = 0
    watches: int = 0
    events: int = 0
    relists_after_gone: int = 0
    errors: int = 0
    watches_closed: int = 0


class EndpointSliceFollower:
    """List and watch one Service's EndpointSlices, and apply the decisions to ``replicas``.

    ``await start()`` returns once the first list has been applied (or raises what stops it:
    401/403 are configuration errors, not retried); ``await stop()`` ends the watch.
    """

    def __init__(self, api: KubeAPIConfig, config: DiscoveryConfig, replicas: ReplicaSet) -> None:
        self.api = api
        self.config = config
        self.replicas = replicas
        self.slices: dict[str, Mapping[str, Any]] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.resource_version = ""
        self.counters = FollowerCounters()
        self.backoff = Backoff(config.backoff_initial_s, config.backoff_max_s)
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._synced: asyncio.Future[None] | None = None

    @property
    def _path(self) -> str:
        return f"/apis/discovery.k8s.io/v1/namespaces/{quote(self.api.namespace)}/endpointslices"

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.api.ssl_context() or False, limit=2),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._synced = loop.create_future()
        self._task = asyncio.create_task(self._run(), name=f"discover-{self.config.service}")
        await asyncio.shield(self._synced)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- state -----------------------------------------------------------------------------------

    async def _apply(self) -> None:
        """Fold the slices, compare with what the data plane has, and tell it the difference."""
        current = endpoints_from_slices(self.slices.values(), self.config.port_name)
        planned = decisions(self.endpoints, current)
        self.endpoints = current
        await apply_decisions(self.replicas, planned)

    # -- the loop ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                    if self._synced is not None and not self._synced.done():
                        self._synced.set_result(None)
                if await self._watch():
                    continue  # closed after a useful watch: resume at once
                self.counters.watches_closed += 1
                await asyncio.sleep(self.backoff.next_delay())
            except _Gone:
                self.counters.relists_after_gone += 1
                logger.info("discovery: resourceVersion %s expired (410 Gone); listing again", self.resource_version)
                need_list = True
            except DiscoveryError as exc:
                if self._synced is not None and not self._synced.done():
                    self._synced.set_exception(exc)
                    return
                logger.error("discovery: %s; retrying", exc)
                await asyncio.sleep(self.backoff.next_delay())
            except (_ApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
                self.counters.errors += 1
                delay = self.backoff.next_delay()
                logger.warning("discovery: %s: %s; retrying in %.2f s", type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
            except Exception:  # the data plane failed a decision: start over from a fresh list
                self.counters.errors += 1
                logger.exception("discovery: applying a change failed; listing again")
                self.endpoints = {name: e for name, e in self.endpoints.items() if not e.routable}
                need_list = True
                await asyncio.sleep(self.backoff.next_delay())

    def _check(self, status: int, body: bytes, what: str) -> None:
        if status == 410:
            raise _Gone
        if status in (401, 403):
            raise DiscoveryError(
                f"{what} was refused ({status}): the balancer's service account needs get/list/watch on "
                f"endpointslices (discovery.k8s.io) in namespace {self.api.namespace}: {body[:300]!r}"
            )
        if status != 200:
            raise _ApiError(f"{what} answered {status}: {body[:300]!r}")

    async def _list(self) -> None:
        assert self._session is not None
        items: list[Mapping[str, Any]] = []
        token = ""
        timeout = aiohttp.ClientTimeout(total=self.config.request_timeout_s)
        while True:
            params = {"labelSelector": self.config.label_selector, "limit": str(LIST_PAGE_SIZE)}
            if token:
                params["continue"] = token
            async with self._session.get(
                self.api.url + self._path, params=params, headers=self.api.headers(), timeout=timeout
            ) as response:
                body = await response.read()
                self._check(response.status, body, "listing endpointslices")
            document = json.loads(body)
            items += document.get("items") or []
            metadata = document.get("metadata") or {}
            token = metadata.get("continue") or ""
            if not token:
                break
        self.counters.lists += 1
        self.resource_version = str(metadata.get("resourceVersion") or "")
        self.slices = {s["metadata"]["name"]: s for s in items if (s.get("metadata") or {}).get("name")}
        self.backoff.reset()
        await self._apply()

    async def _watch(self) -> bool:
        """One watch, until the server closes it; True if it delivered events (resume at once)."""
        assert self._session is not None
        params = {
            "watch": "1",
            "labelSelector": self.config.label_selector,
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.config.watch_timeout_s),
        }
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.config.request_timeout_s, sock_read=self.config.watch_timeout_s + 30
        )
        delivered = False
        self.counters.watches += 1
        async with self._session.get(
            self.api.url + self._path, params=params, headers=self.api.headers(), timeout=timeout
        ) as response:
            if response.status != 200:
                self._check(response.status, await response.read(), "watching endpointslices")
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        await self._event(json.loads(line))
                        delivered = True
        return delivered

    async def _event(self, event: Mapping[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        self.counters.events += 1
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone
            raise _ApiError(f"watch error event: {obj.get('code')} {obj.get('message')}")
        metadata = obj.get("metadata") or {}
        if metadata.get("resourceVersion"):
            self.resource_version = str(metadata["resourceVersion"])
        self.backoff.reset()
        if kind == "BOOKMARK":
            return
        name = metadata.get("name")
        if not name or kind not in ("ADDED", "MODIFIED", "DELETED"):
            return
        labels = metadata.get("labels") or {}
        if kind == "DELETED" or labels.get(SERVICE_NAME_LABEL) != self.config.service:
            self.slices.pop(name, None)
        else:
            self.slices[name] = obj
        await self._apply()
