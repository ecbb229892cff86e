"""What the local target starts, decided without starting anything.

``plan_processes`` turns a ``DeploymentSpec`` and a node count into one ``ProcessSpec`` per
process: the replicas spread round-robin over the nodes, then the balancer(s) in front of them.
With ``BalancerSpec.balancers`` K > 1, K balancer processes share the endpoint port
(``--reuse-port``: the kernel spreads client connections over them, as an L4 load balancer
does) and each has its own ``--admin-port``, where its health and metrics are read.
The command lines follow the process contracts in docs/architecture.md. Replicas on a node
listed in ``node_slowdown`` get the server's ``--slowdown`` (an emulated slower machine); with
``service_ms`` every replica gets ``--service-ms`` (emulated service time, one request at a time:
mltoolkit/serving/emulation.py), which the slowdown then stretches.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pandas as pd

from mltoolkit.balancer.haproxy_controller import INSTALL_HINT
from mltoolkit.errors import SpecError
from mltoolkit.local.ports import LOOPBACK
from mltoolkit.serving.config import check_service_ms, check_slowdown
from mltoolkit.spec import DeploymentSpec
from mltoolkit.spec.libraries import check_library_versions, format_versions

REPLICA = "replica"
BALANCER = "balancer"
MAX_NODES = 64
READY_PATHS = {REPLICA: "/v2/health/ready", BALANCER: "/-/health"}
LIVE_PATHS = {REPLICA: "/v2/health/live", BALANCER: "/-/health"}
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class ProcessSpec:
    """One process to run: its role, name, node (a label; None for the balancer), port and argv.

    ``slowdown`` is the emulated slowness of a replica (1 = full speed; None for the balancer);
    ``service_ms`` its emulated service time per request, slowdown included (None when off).
    ``admin_port``: a balancer's own port when several share ``port``; its health is read there.
    """

    role: str
    name: str
    node: str | None
    port: int
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cpu_millicores: int | None = None
    memory_bytes: int | None = None
    slowdown: float | None = None
    service_ms: float | None = None
    admin_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def own_url(self) -> str:
        """The URL that reaches this process alone (``url`` may be shared by K balancers)."""
        return f"http://{LOOPBACK}:{self.admin_port}" if self.admin_port is not None else self.url

    @property
    def ready_url(self) -> str:
        return self.own_url + READY_PATHS[self.role]

    @property
    def live_url(self) -> str:
        return self.own_url + LIVE_PATHS[self.role]

    @property
    def label(self) -> str:
        """How progress lines and errors name the process: 'replica digits-0 on node-0'."""
        where = f" on {self.node}" if self.node else ""
        slower = f" ({self.slowdown:g}x slower)" if self.slowdown and self.slowdown > 1 else ""
        return f"{self.role} {self.name}{where}{slower}"


def check_nodes(nodes: Any) -> int:
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= MAX_NODES:
        raise SpecError("LocalTarget.nodes", nodes, f"a whole number from 1 to {MAX_NODES}")
    return nodes


def node_names(nodes: int) -> list[str]:
    return [f"node-{i}" for i in range(nodes)]


def check_node_slowdown(node_slowdown: Any, nodes: int) -> dict[str, float]:
    """``{node name: factor}`` validated against the ``nodes`` labels; factors from 1 up."""
    field_name = "LocalTarget.node_slowdown"
    if node_slowdown is None:
        return {}
    if not isinstance(node_slowdown, Mapping):
        raise SpecError(field_name, node_slowdown, "a dict of node name to factor: {'node-1': 3}")
    labels = node_names(nodes)
    allowed = labels[0] if nodes == 1 else f"one of {labels[0]} .. {labels[-1]}"
    checked: dict[str, float] = {}
    for node, factor in node_slowdown.items():
        if node not in labels:
            raise SpecError(field_name, node, f"a node name of this target ({allowed})")
        checked[node] = check_slowdown(f"{field_name}[{node!r}]", factor)
    return checked


def replica_names(model_name: str, replicas: int) -> list[str]:
    return [f"{model_name}-{i}" for i in range(replicas)]


def check_runnable_locally(spec: DeploymentSpec) -> None:
    """The local target runs model files; a container-image model can only go to the cloud.
    The replicas run this interpreter, so its library versions must be those that pickled the
    model (``LibraryVersionError`` otherwise, before anything starts)."""
    if not isinstance(spec, DeploymentSpec):
        raise SpecError("spec", type(spec).__name__, "a DeploymentSpec")
    if spec.model.path is None:
        raise SpecError(
            "ModelSpec.path",
            None,
            f"a model file for the local target (ModelSpec.from_object / from_file); "
            f"image {spec.model.image!r} can only be deployed to GKE",
        )
    check_library_versions(spec.model.library_versions, f"model {spec.model.name!r}")


def check_data_plane_installed(spec: DeploymentSpec, haproxy_path: str | None) -> None:
    """``data_plane="haproxy"`` runs the system's ``haproxy`` binary: without one on PATH
    (``haproxy_path``, what ``shutil.which("haproxy")`` found), say how to get it before anything
    starts."""
    if spec.balancer.data_plane == "haproxy" and haproxy_path is None:
        raise SpecError(
            "BalancerSpec.data_plane",
            spec.balancer.data_plane,
            f"a data plane installed on this machine: HAProxy is not (no haproxy on PATH); "
            f'install it with `{INSTALL_HINT}`, or use BalancerSpec(data_plane="python")',
        )


def replica_argv(
    spec: DeploymentSpec,
    replica_id: str,
    port: int,
    python: str = sys.executable,
    slowdown: float = 1.0,
    service_ms: float = 0.0,
) -> tuple[str, ...]:
    model = spec.model
    argv = [
        python, "-m", "mltoolkit.serving",
        "--model-path", str(model.path),
        "--model-name", model.name,
        "--port", str(port),
        "--replica-id", replica_id,
        "--host", LOOPBACK,
        "--max-request-bytes", str(spec.max_request_bytes),
    ]  # fmt: skip
    if model.sha256 is not None:
        argv += ["--model-sha256", model.sha256]
    if model.library_versions:
        argv += ["--library-versions", format_versions(model.library_versions)]
    if model.batching.enabled:
        argv += [
            "--max-batch-size", str(model.batching.max_batch_size),
            "--max-wait-ms", str(model.batching.max_wait_ms),
        ]  # fmt: skip
    else:
        argv.append("--no-batching")
    if slowdown != 1.0:
        argv += ["--slowdown", str(float(slowdown))]
    if service_ms > 0:
        argv += ["--service-ms", str(float(service_ms))]
    return tuple(argv)


STANDBY = "standby"


def standby_argv(spec: DeploymentSpec, python: str = sys.executable) -> tuple[str, ...]:
    """A warm spare replica: the replicas' command with ``--standby`` (port, replica id and
    slowdown are given when it takes over a replica)."""
    return (*replica_argv(spec, STANDBY, 0, python), "--standby")


def balancer_argv(
    spec: DeploymentSpec,
    port: int,
    replicas: Sequence[ProcessSpec],
    python: str = sys.executable,
    admin_port: int | None = None,
) -> tuple[str, ...]:
    """The balancer's command; with ``admin_port`` (one of K > 1 balancers) it shares ``port``."""
    balancer = spec.balancer
    argv = [
        python, "-m", "mltoolkit.balancer",
        "--port", str(port),
        "--host", LOOPBACK,
        "--policy", balancer.policy,
        "--health-interval", str(balancer.health_interval_s),
        "--retries", str(balancer.retries),
        "--timeout", str(balancer.request_timeout_s),
        "--max-request-bytes", str(spec.max_request_bytes),
        "--data-plane", balancer.data_plane,
    ]  # fmt: skip
    if balancer.hedge:
        argv.append("--hedge")
    if admin_port is not None:
        argv += ["--reuse-port", "--admin-port", str(admin_port)]
    for replica in replicas:
        argv += ["--replica", f"{replica.name}={replica.url}@{replica.node}"]
    return tuple(argv)


def ports_needed(spec: DeploymentSpec) -> int:
    """Ports ``plan_processes`` takes: one per replica, the endpoint's, and with K > 1 balancers
    one admin port each."""
    balancers = spec.balancer.balancers
    return spec.replicas + 1 + (balancers if balancers > 1 else 0)


def balancer_names(model_name: str, balancers: int) -> list[str]:
    if balancers == 1:
        return [f"{model_name}-balancer"]
    return [f"{model_name}-balancer-{i}" for i in range(balancers)]


def thread_env(cpu_millicores: int) -> dict[str, str]:
    """Cap numeric libraries' threads at the replica's CPU request (at least one)."""
    threads = str(max(1, cpu_millicores // 1000))
    return {name: threads for name in _THREAD_VARIABLES}


def plan_processes(
    spec: DeploymentSpec,
    nodes: int,
    ports: Sequence[int] | None = None,
    python: str = sys.executable,
    node_slowdown: Mapping[str, float] | None = None,
    service_ms: float = 0.0,
) -> list[ProcessSpec]:
    """The replicas (round-robin over ``nodes``) and then the balancer(s).

    ``ports`` gives one port per replica, then the endpoint's, then (K > 1 balancers) one admin
    port per balancer (``ports_needed``); without it every port is 0 ("chosen at start"), which
    is what ``plan()`` shows. ``node_slowdown`` maps node
    names to the slowdown factor of the replicas placed there (see ``check_node_slowdown``);
    ``service_ms`` > 0 gives every replica an emulated service time (``--service-ms``).
    """
    check_runnable_locally(spec)
    check_nodes(nodes)
    slowdown = check_node_slowdown(node_slowdown, nodes)
    service_ms = check_service_ms("LocalTarget.service_ms", service_ms)
    needed = ports_needed(spec)
    if ports is None:
        ports = [0] * needed
    if len(ports) != needed:
        raise ValueError(f"need {needed} ports (replicas, endpoint, balancers' own), got {len(ports)}")
    labels = node_names(nodes)
    replicas: list[ProcessSpec] = []
    for i, name in enumerate(replica_names(spec.model.name, spec.replicas)):
        node = labels[i % nodes]
        factor = slowdown.get(node, 1.0)
        replicas.append(
            ProcessSpec(
                role=REPLICA,
                name=name,
                node=node,
                port=ports[i],
                argv=replica_argv(spec, name, ports[i], python, factor, service_ms),
                env=thread_env(spec.cpu_millicores),
                cpu_millicores=spec.cpu_millicores,
                memory_bytes=spec.memory_bytes,
                slowdown=factor,
                service_ms=service_ms * factor if service_ms > 0 else None,
            )
        )
    endpoint_port = ports[spec.replicas]
    names = balancer_names(spec.model.name, spec.balancer.balancers)
    admin_ports: list[int | None] = list(ports[spec.replicas + 1 :]) if len(names) > 1 else [None]
    balancers = [
        ProcessSpec(
            role=BALANCER,
            name=name,
            node=None,
            port=endpoint_port,
            argv=balancer_argv(spec, endpoint_port, replicas, python, admin_port=admin),
            admin_port=admin,
        )
        for name, admin in zip(names, admin_ports)
    ]
    return [*replicas, *balancers]


def command_summary(argv: Sequence[str]) -> str:
    """The command without the interpreter path: 'mltoolkit.serving --model-name digits ...'.

    Port 0 (not chosen yet) shows as '<auto>'.
    """
    parts = list(argv)
    if len(parts) >= 3 and parts[1] == "-m":
        parts = parts[2:]
    text = " ".join(parts)
    return re.sub(r"(--port |127\.0\.0\.1:)0\b", r"\1<auto>", text)


PLAN_COLUMNS = [
    "kind", "name", "node", "slowdown", "service_ms", "port", "command", "cpu", "memory", "usd_per_hour",
]  # fmt: skip


def plan_frame(spec: DeploymentSpec, processes: Sequence[ProcessSpec]) -> pd.DataFrame:
    rows = []
    for process in processes:
        is_replica = process.role == REPLICA
        rows.append(
            {
                "kind": process.role,
                "name": process.name,
                "node": process.node,
                "slowdown": process.slowdown,
                "service_ms": process.service_ms,
                "port": "auto" if process.port == 0 else process.port,
                "command": command_summary(process.argv),
                "cpu": spec.cpu if is_replica else None,
                "memory": spec.memory if is_replica else None,
                "usd_per_hour": 0.0,
            }
        )
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)
