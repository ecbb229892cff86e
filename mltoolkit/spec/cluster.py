"""Where a deployment runs on Google Cloud: a GKE cluster, its node pools and who may reach it.

Like the deployment specs, every spec validates itself on construction and raises one
``SpecError`` naming the field, the value and what is allowed — before Pulumi runs. Machine types,
GPU types and regions are checked against the table shipped in ``mltoolkit.gcp.catalog``.

Who may reach the model endpoint (``allowed_cidrs``) defaults to nobody: with no CIDR given the
model Service gets no external load balancer at all (type ``ClusterIP``, reachable only from inside
the cluster or through ``kubectl port-forward``). Opening it to the whole internet
(``0.0.0.0/0``) needs ``allow_public=True``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from mltoolkit.errors import SpecError
from mltoolkit.gcp import catalog
from mltoolkit.spec.deployment import DeploymentSpec, ModelSpec, build_spec

RELEASE_CHANNELS = ("RAPID", "REGULAR", "STABLE", "EXTENDED")
LOAD_BALANCERS = ("l4", "l7")

_GKE_NAME = re.compile(r"^[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?$")
GKE_NAME_ALLOWED = (
    "1-40 characters of lowercase letters, digits and '-', starting with a letter and ending "
    "with a letter or digit"
)
_PROJECT_ID = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
PROJECT_ALLOWED = (
    "a Google Cloud project ID: 6-30 lowercase letters, digits and '-', starting with a letter "
    "and not ending with '-'"
)
_UNLISTED_MACHINE = re.compile(r"^[a-z][a-z0-9]*-[a-z0-9]+(?:-[a-z0-9]+)*$")
_LABEL_KEY = re.compile(r"^[a-z](?:[a-z0-9_-]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?)?$")
LABEL_KEY_ALLOWED = (
    "a label key of 1-63 lowercase letters, digits, '_' and '-', starting with a letter and "
    "ending with a letter or digit (valid for both Google Cloud and Kubernetes)"
)
LABEL_VALUE_ALLOWED = (
    "a label value of up to 63 lowercase letters, digits, '_' and '-', starting and ending with a "
    "letter or digit (valid for both Google Cloud and Kubernetes)"
)
MAX_LABELS = 60  # Google Cloud allows 64 per resource; mltoolkit adds its own


def _check_bool(field_name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise SpecError(field_name, value, "True or False")


def _check_int(field_name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(field_name, value, f"a whole number from {low} to {high}")


def _check_gke_name(field_name: str, value: Any) -> None:
    if not isinstance(value, str) or not _GKE_NAME.match(value):
        raise SpecError(field_name, value, GKE_NAME_ALLOWED)


def _as_tuple(field_name: str, value: Any, what: str) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise SpecError(field_name, value, f"a list of {what}")
    return tuple(value)


def _cidr(field_name: str, value: Any, *, ipv6: bool) -> str:
    """Parse one CIDR range strictly (no host bits set) and return its canonical text."""
    allowed = "an IPv4" + (" or IPv6" if ipv6 else "") + " CIDR range such as '203.0.113.0/24' with no host bits set"
    if not isinstance(value, str):
        raise SpecError(field_name, value, allowed)
    try:
        network = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError:
        raise SpecError(field_name, value, allowed) from None
    if network.version == 6 and not ipv6:
        raise SpecError(field_name, value, allowed)
    return str(network)


def check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """Validate labels meant for Google Cloud resources and Kubernetes objects alike."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise SpecError("labels", labels, "a mapping of label keys to values")
    if len(labels) > MAX_LABELS:
        raise SpecError("labels", f"{len(labels)} labels", f"at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key):
            raise SpecError(f"labels.{key}", key, LABEL_KEY_ALLOWED)
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            raise SpecError(f"labels.{key}", value, LABEL_VALUE_ALLOWED)
    return dict(labels)


@dataclass(frozen=True)
class NodePoolSpec:
    """A GKE node pool: machine type, boot disk, autoscaling bounds (total nodes), spot, GPUs.

    ``min_nodes``/``max_nodes`` count nodes over the whole pool (all zones of a regional
    cluster). ``gpu_count`` defaults to 1 when ``gpu_type`` is given. A machine type missing from
    the shipped catalogue is rejected unless ``allow_unlisted_machine_type=True``.
    """

    name: str
    machine_type: str = "e2-standard-4"
    disk_size_gb: int = 100
    disk_type: str = "pd-balanced"
    min_nodes: int = 1
    max_nodes: int = 3
    spot: bool = False
    gpu_type: str | None = None
    gpu_count: int | None = None
    allow_unlisted_machine_type: bool = False

    def __post_init__(self) -> None:
        label = f"NodePoolSpec[{self.name}]" if isinstance(self.name, str) else "NodePoolSpec"
        _check_gke_name(f"{label}.name", self.name)
        _check_bool(f"{label}.allow_unlisted_machine_type", self.allow_unlisted_machine_type)
        machine = catalog.MACHINE_TYPES.get(self.machine_type) if isinstance(self.machine_type, str) else None
        if machine is None:
            if not self.allow_unlisted_machine_type:
                raise SpecError(
                    f"{label}.machine_type",
                    self.machine_type,
                    f"one of {sorted(catalog.MACHINE_TYPES)} (or pass "
                    "allow_unlisted_machine_type=True for a machine type not in the table)",
                )
            if not isinstance(self.machine_type, str) or not _UNLISTED_MACHINE.match(self.machine_type):
                raise SpecError(
                    f"{label}.machine_type", self.machine_type, "a machine type name such as 'c3-standard-8'"
                )
        _check_int(f"{label}.disk_size_gb", self.disk_size_gb, 10, 65536)
        if self.disk_type not in catalog.DISK_TYPES:
            raise SpecError(f"{label}.disk_type", self.disk_type, f"one of {catalog.DISK_TYPES}")
        _check_int(f"{label}.min_nodes", self.min_nodes, 0, 1000)
        _check_int(f"{label}.max_nodes", self.max_nodes, 1, 1000)
        if self.min_nodes > self.max_nodes:
            raise SpecError(
                f"{label}.min_nodes", self.min_nodes, f"at most max_nodes ({self.max_nodes})"
            )
        _check_bool(f"{label}.spot", self.spot)
        self._check_gpu(label, machine)

    def _check_gpu(self, label: str, machine: catalog.MachineType | None) -> None:
        family = catalog.machine_family(self.machine_type)
        if self.gpu_type is None:
            if self.gpu_count not in (None, 0):
                raise SpecError(f"{label}.gpu_count", self.gpu_count, "0 when gpu_type is not set")
            if machine is not None and machine.bundled_gpu is not None:
                gpu, count = machine.bundled_gpu
                raise SpecError(
                    f"{label}.gpu_type",
                    None,
                    f"{gpu!r}: {self.machine_type} comes with {count} of them",
                )
            object.__setattr__(self, "gpu_count", 0)
            return
        gpu_spec = catalog.GPU_TYPES.get(self.gpu_type) if isinstance(self.gpu_type, str) else None
        if gpu_spec is None:
            raise SpecError(f"{label}.gpu_type", self.gpu_type, f"None or one of {sorted(catalog.GPU_TYPES)}")
        if self.gpu_count is None:
            object.__setattr__(self, "gpu_count", gpu_spec.counts[0])
        if isinstance(self.gpu_count, bool) or self.gpu_count not in gpu_spec.counts:
            raise SpecError(
                f"{label}.gpu_count", self.gpu_count, f"one of {gpu_spec.counts} for {self.gpu_type}"
            )
        if machine is not None and family not in gpu_spec.families:
            families = ", ".join(f"{f}-*" for f in gpu_spec.families)
            raise SpecError(
                f"{label}.gpu_type",
                self.gpu_type,
                f"a GPU that attaches to {self.machine_type}; {self.gpu_type} needs machine type {families}",
            )
        if machine is not None and machine.bundled_gpu is not None:
            if (self.gpu_type, self.gpu_count) != machine.bundled_gpu:
                gpu, count = machine.bundled_gpu
                raise SpecError(
                    f"{label}.gpu_count",
                    self.gpu_count,
                    f"{count} × {gpu}, the GPUs that come with {self.machine_type}",
                )

    @property
    def has_gpu(self) -> bool:
        return self.gpu_type is not None


def _default_pools() -> tuple[NodePoolSpec, ...]:
    return (NodePoolSpec(name="default"),)


@dataclass(frozen=True)
class ClusterSpec:
    """A GKE Standard cluster and how its model endpoint is exposed.

    ``location`` is a region (``"us-central1"``, a regional cluster: control plane and nodes in
    several zones) or a zone (``"us-central1-a"``). ``allowed_cidrs`` are the source ranges
    allowed to reach the endpoint; empty means no external endpoint. ``load_balancer`` is ``"l4"``
    (a Service of type LoadBalancer: a regional passthrough network load balancer) or ``"l7"``
    (a GKE Ingress: global external HTTP load balancer with container-native NEGs, source ranges
    enforced by a Cloud Armor policy). ``serving_image`` is the model server image for models
    given as a file; by default the stack's own registry image built with Cloud Build
    (see ``mltoolkit.gcp.images``, which installs HAProxy). The balancer tier runs from it too, so
    with ``BalancerSpec(data_plane="haproxy")`` an image named here must carry the ``haproxy``
    binary. ``managed_prometheus``: register a PodMonitoring so Google
    Cloud Managed Service for Prometheus scrapes the balancer pods' ``/-/metrics`` (the cluster's
    managed collection must be on, as it is by default on new GKE clusters).
    """

    name: str
    project: str
    location: str
    release_channel: str = "REGULAR"
    node_pools: tuple[NodePoolSpec, ...] = field(default_factory=_default_pools)
    private_nodes: bool = False
    master_authorized_networks: tuple[str, ...] = ()
    allowed_cidrs: tuple[str, ...] = ()
    allow_public: bool = False
    load_balancer: str = "l4"
    serving_image: str | None = None
    managed_prometheus: bool = False

    def __post_init__(self) -> None:
        _check_gke_name("ClusterSpec.name", self.name)
        _check_bool("ClusterSpec.managed_prometheus", self.managed_prometheus)
        if not isinstance(self.project, str) or not _PROJECT_ID.match(self.project):
            raise SpecError("ClusterSpec.project", self.project, PROJECT_ALLOWED)
        region = catalog.region_of(self.location) if isinstance(self.location, str) else None
        if region is None:
            raise SpecError(
                "ClusterSpec.location",
                self.location,
                f"a region or zone of a region in {sorted(catalog.REGIONS)} "
                "(zone = region + '-' + a zone letter, e.g. 'us-central1-a')",
            )
        if self.release_channel not in RELEASE_CHANNELS:
            raise SpecError("ClusterSpec.release_channel", self.release_channel, f"one of {RELEASE_CHANNELS}")
        self._check_node_pools(region)
        _check_bool("ClusterSpec.private_nodes", self.private_nodes)
        networks = _as_tuple("ClusterSpec.master_authorized_networks", self.master_authorized_networks, "CIDR ranges")
        object.__setattr__(
            self,
            "master_authorized_networks",
            tuple(
                _cidr(f"ClusterSpec.master_authorized_networks[{i}]", c, ipv6=False)
                for i, c in enumerate(networks)
            ),
        )
        _check_bool("ClusterSpec.allow_public", self.allow_public)
        cidrs = tuple(
            _cidr(f"ClusterSpec.allowed_cidrs[{i}]", c, ipv6=True)
            for i, c in enumerate(_as_tuple("ClusterSpec.allowed_cidrs", self.allowed_cidrs, "CIDR ranges"))
        )
        for i, cidr in enumerate(cidrs):
            if ipaddress.ip_network(cidr).prefixlen == 0 and not self.allow_public:
                raise SpecError(
                    f"ClusterSpec.allowed_cidrs[{i}]",
                    cidr,
                    "a range narrower than the whole internet; to open the endpoint to everyone "
                    "pass allow_public=True",
                )
        object.__setattr__(self, "allowed_cidrs", cidrs)
        if self.load_balancer not in LOAD_BALANCERS:
            raise SpecError("ClusterSpec.load_balancer", self.load_balancer, f"one of {LOAD_BALANCERS}")
        if self.load_balancer == "l4":
            for i, cidr in enumerate(cidrs):
                if ipaddress.ip_network(cidr).version == 6:
                    raise SpecError(
                        f"ClusterSpec.allowed_cidrs[{i}]",
                        cidr,
                        "an IPv4 range with load_balancer='l4': the cluster's network and its "
                        "passthrough load balancer are IPv4 only (Cloud Armor checks IPv6 ranges "
                        "with load_balancer='l7')",
                    )
        if self.serving_image is not None and (
            not isinstance(self.serving_image, str)
            or not self.serving_image
            or any(c.isspace() for c in self.serving_image)
        ):
            raise SpecError("ClusterSpec.serving_image", self.serving_image, "None or a container image reference")

    def _check_node_pools(self, region: str) -> None:
        pools = _as_tuple("ClusterSpec.node_pools", self.node_pools, "NodePoolSpec")
        pools = tuple(
            build_spec(NodePoolSpec, p, f"ClusterSpec.node_pools[{i}]") if isinstance(p, Mapping) else p
            for i, p in enumerate(pools)
        )
        if not pools:
            raise SpecError("ClusterSpec.node_pools", pools, "at least one NodePoolSpec")
        for i, pool in enumerate(pools):
            if not isinstance(pool, NodePoolSpec):
                raise SpecError(f"ClusterSpec.node_pools[{i}]", pool, "a NodePoolSpec")
        names = [p.name for p in pools]
        for name in names:
            if names.count(name) > 1:
                raise SpecError("ClusterSpec.node_pools", name, "node pools with distinct names")
        if all(p.min_nodes == 0 for p in pools):
            raise SpecError(
                "ClusterSpec.node_pools",
                "min_nodes=0 in every pool",
                "at least one pool with min_nodes >= 1 (system pods need a node)",
            )
        for pool in pools:
            if pool.gpu_type is not None and region not in catalog.GPU_TYPES[pool.gpu_type].regions:
                offered = sorted(catalog.GPU_TYPES[pool.gpu_type].regions)
                raise SpecError(
                    f"NodePoolSpec[{pool.name}].gpu_type",
                    pool.gpu_type,
                    f"a GPU offered in {region} per the shipped table; {pool.gpu_type} is offered in {offered}",
                )
        object.__setattr__(self, "node_pools", pools)

    @property
    def region(self) -> str:
        region = catalog.region_of(self.location)
        assert region is not None  # checked on construction
        return region

    @property
    def is_regional(self) -> bool:
        return self.location == self.region

    @property
    def zones_per_pool(self) -> int:
        """How many zones a node pool spans: GKE's default of 3 for a regional cluster."""
        return catalog.zones_of(self.location)

    @property
    def has_gpu(self) -> bool:
        return any(p.has_gpu for p in self.node_pools)

    @property
    def exposed(self) -> bool:
        """Whether the endpoint gets an external load balancer (someone is allowed to reach it)."""
        return self.allow_public or bool(self.allowed_cidrs)

    @property
    def source_ranges(self) -> tuple[str, ...]:
        """The source ranges allowed to reach the endpoint, ``0.0.0.0/0`` only if asked for."""
        if self.allow_public:
            return ("0.0.0.0/0",)
        return self.allowed_cidrs

    def initial_nodes_per_zone(self, pool: NodePoolSpec) -> int:
        return math.ceil(pool.min_nodes / self.zones_per_pool)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("master_authorized_networks", "allowed_cidrs"):
            data[key] = list(data[key])
        data["node_pools"] = [asdict(p) for p in self.node_pools]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClusterSpec:
        return build_spec(cls, data, "ClusterSpec")

    @classmethod
    def original_sketch(
        cls,
        project: str,
        *,
        name: str = "mltoolkit",
        location: str = "us-central1-a",
        allowed_cidrs: Sequence[str] = (),
        **overrides: Any,
    ) -> ClusterSpec:
        """The cluster of the original design sketch: 3 × n1-standard-4 spot nodes, 100 GB disks.

        Give ``allowed_cidrs`` (e.g. your address as ``"198.51.100.7/32"``) to get the sketch's
        external LoadBalancer; without it the endpoint stays internal (see the module docstring).
        """
        pool = NodePoolSpec(
            name="sketch",
            machine_type="n1-standard-4",
            disk_size_gb=100,
            disk_type="pd-standard",
            min_nodes=3,
            max_nodes=3,
            spot=True,
        )
        values: dict[str, Any] = {
            "name": name,
            "project": project,
            "location": location,
            "node_pools": (pool,),
            "allowed_cidrs": tuple(allowed_cidrs),
        }
        values.update(overrides)
        return cls(**values)


def original_sketch_deployment(model: ModelSpec, **overrides: Any) -> DeploymentSpec:
    """The deployment of the original sketch: one Deployment of 3 replicas behind one LoadBalancer."""
    values: dict[str, Any] = {"model": model, "replicas": 3, "cpu": "1", "memory": "2Gi"}
    values.update(overrides)
    return DeploymentSpec(**values)
