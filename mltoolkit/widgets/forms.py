"""The provision panel's fields as plain values: to spec dicts, and back from a SpecError. Pure.

The panel reads its widgets into :class:`DeploymentFields` / :class:`ClusterFields` /
:class:`TargetFields`; the functions here turn those into the dicts that
``DeploymentSpec.from_dict`` and ``ClusterSpec.from_dict`` validate, and map the ``field`` of a
``SpecError`` ("NodePoolSpec[default].machine_type") to the panel field it concerns
("machine_type"), so the message can be shown next to that widget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mltoolkit.gcp import catalog, prices
from mltoolkit.balancer.policies import DEFAULT_POLICY
from mltoolkit.spec.cluster import ClusterSpec
from mltoolkit.spec.deployment import DEFAULT_DATA_PLANE, DeploymentSpec, ModelSpec

LOCAL = "local"
GKE = "gke"
TARGET_KINDS = (LOCAL, GKE)
POOL_NAME = "default"

#: SpecError fields (list indices removed) → the panel field whose widget shows the message
PANEL_FIELD_OF = {
    "DeploymentSpec.replicas": "replicas",
    "DeploymentSpec.cpu": "cpu",
    "DeploymentSpec.memory": "memory",
    "BalancerSpec.policy": "policy",
    "BalancerSpec.data_plane": "data_plane",
    "LocalTarget.nodes": "nodes",
    "ClusterSpec.name": "cluster_name",
    "ClusterSpec.project": "project",
    "ClusterSpec.location": "location",
    "ClusterSpec.allowed_cidrs": "allowed_cidrs",
    "ClusterSpec.allow_public": "allow_public",
    "ClusterSpec.node_pools": "min_nodes",  # "at least one pool with min_nodes >= 1"
    "NodePoolSpec.machine_type": "machine_type",
    "NodePoolSpec.min_nodes": "min_nodes",
    "NodePoolSpec.max_nodes": "max_nodes",
    "NodePoolSpec.spot": "spot",
    "NodePoolSpec.gpu_type": "gpu_type",
    "NodePoolSpec.gpu_count": "gpu_count",
    "stack": "stack",
    "backend": "backend",
}
_INDEX = re.compile(r"\[[^\]]*\]")


def panel_field(spec_field: str) -> str | None:
    """The panel field a SpecError's ``field`` concerns, or None (shown with the panel's errors).

    >>> panel_field("NodePoolSpec[default].machine_type")
    'machine_type'
    >>> panel_field("ClusterSpec.allowed_cidrs[1]")
    'allowed_cidrs'
    """
    return PANEL_FIELD_OF.get(_INDEX.sub("", spec_field))


@dataclass(frozen=True)
class DeploymentFields:
    replicas: int = 2
    cpu: str = "500m"
    memory: str = "512Mi"
    policy: str = DEFAULT_POLICY
    data_plane: str = DEFAULT_DATA_PLANE


@dataclass(frozen=True)
class ClusterFields:
    """One node pool's worth of cluster fields; ``allowed_cidrs`` as typed (comma-separated)."""

    cluster_name: str = "mltoolkit"
    project: str = ""
    location: str = "us-central1-a"
    machine_type: str = "e2-standard-4"
    min_nodes: int = 1
    max_nodes: int = 3
    spot: bool = False
    gpu_type: str | None = None
    gpu_count: int = 0
    allowed_cidrs: str = ""
    allow_public: bool = False

    @classmethod
    def from_spec(cls, cluster: ClusterSpec) -> ClusterFields:
        """The fields showing ``cluster`` (its first node pool)."""
        pool = cluster.node_pools[0]
        return cls(
            cluster_name=cluster.name,
            project=cluster.project,
            location=cluster.location,
            machine_type=pool.machine_type,
            min_nodes=pool.min_nodes,
            max_nodes=pool.max_nodes,
            spot=pool.spot,
            gpu_type=pool.gpu_type,
            gpu_count=pool.gpu_count or 0,
            allowed_cidrs=", ".join(cluster.allowed_cidrs),
            allow_public=cluster.allow_public,
        )


@dataclass(frozen=True)
class TargetFields:
    kind: str = LOCAL
    nodes: int = 1
    stack: str = "dev"
    backend: str = ""


def split_cidrs(text: str) -> list[str]:
    """``"203.0.113.0/24, 198.51.100.7/32"`` → the list of ranges (commas or spaces separate)."""
    return [part for part in re.split(r"[,\s]+", text.strip()) if part]


def deployment_dict(model: ModelSpec, fields: DeploymentFields) -> dict[str, Any]:
    return {
        "model": model,
        "replicas": fields.replicas,
        "cpu": fields.cpu,
        "memory": fields.memory,
        "balancer": {"policy": fields.policy, "data_plane": fields.data_plane},
    }


def deployment_spec(model: ModelSpec, fields: DeploymentFields) -> DeploymentSpec:
    """Validated; raises SpecError naming the field."""
    return DeploymentSpec.from_dict(deployment_dict(model, fields))


def cluster_dict(fields: ClusterFields) -> dict[str, Any]:
    pool: dict[str, Any] = {
        "name": POOL_NAME,
        "machine_type": fields.machine_type,
        "min_nodes": fields.min_nodes,
        "max_nodes": fields.max_nodes,
        "spot": fields.spot,
        "gpu_type": fields.gpu_type,
        "gpu_count": fields.gpu_count,
    }
    return {
        "name": fields.cluster_name,
        "project": fields.project,
        "location": fields.location,
        "node_pools": [pool],
        "allowed_cidrs": split_cidrs(fields.allowed_cidrs),
        "allow_public": fields.allow_public,
    }


def cluster_spec(fields: ClusterFields) -> ClusterSpec:
    """Validated; raises SpecError naming the field."""
    return ClusterSpec.from_dict(cluster_dict(fields))


def _price(hourly: float) -> str:
    return f"${hourly:.3f}/h"


def machine_type_options() -> list[tuple[str, str]]:
    """(label, machine type) for every machine type in the shipped table, with its on-demand
    price per node (``prices``), sorted by name."""
    options = []
    for name, machine in sorted(catalog.MACHINE_TYPES.items()):
        try:
            price = _price(prices.machine_hourly(name, machine.vcpus, machine.memory_gb, spot=False))
        except prices.UnknownPrice:
            price = "price not in the table"
        gpu = f", {machine.bundled_gpu[1]} × {machine.bundled_gpu[0]}" if machine.bundled_gpu else ""
        options.append(
            (f"{name} — {machine.vcpus:g} vCPU, {machine.memory_gb:g} GB{gpu}, {price}", name)
        )
    return options


def gpu_type_options() -> list[tuple[str, str | None]]:
    """("none", None), then (label, GPU type) for each GPU in the table, with its price."""
    options: list[tuple[str, str | None]] = [("none", None)]
    for name in sorted(catalog.GPU_TYPES):
        try:
            price = _price(prices.gpu_hourly(name, spot=False))
        except prices.UnknownPrice:
            price = "price not in the table"
        options.append((f"{name} — {price} each", name))
    return options


def default_gpu_count(gpu_type: str | None) -> int:
    """The count a GPU type is first offered in (0 without a GPU)."""
    return 0 if gpu_type is None else catalog.GPU_TYPES[gpu_type].counts[0]


def location_options() -> list[str]:
    """Every region of the table, then each of its zones."""
    options = []
    for region, zones in sorted(catalog.REGIONS.items()):
        options.append(region)
        options.extend(f"{region}-{zone}" for zone in zones)
    return options
