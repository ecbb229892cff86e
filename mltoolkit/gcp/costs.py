"""Hourly cost line items of what a program registers, priced from ``prices`` (pure functions).

The items are read off the registered resources themselves — node pools, the cluster, load
balancer Services and Ingresses, Cloud Armor policies, NAT, the model object in the bucket, the
serving image in the registry — so the estimate follows the program, not a second description
of it. Node counts are the pools' autoscaling minimum (``scale="min"``) or maximum
(``scale="max"``), raised to what GKE will actually run (``pool_node_counts``):

- a regional pool starts ``initialNodeCount`` nodes in *each* of its zones (GKE's default of 3),
  so ``min_nodes=1`` in a region runs 3 nodes until the autoscaler removes some;
- the replicas' requests (the Deployment's replicas × its container requests) must fit on the
  nodes of the pools they may run on — GPU pools only for pods that request GPUs (GKE taints
  them) — with ``catalog.NODE_RESERVED_FRACTION`` of each node kept by GKE; more nodes are counted
  where they do not fit (up to the pool's maximum).

The spread rules force no more than that: ``maxSkew: 1`` over hostnames counts only nodes that
exist, so replicas may share nodes when the requests allow it.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterable, Literal

import pandas as pd

from mltoolkit.gcp import catalog, prices
from mltoolkit.planning import COST_COLUMNS
from mltoolkit.spec.quantities import cpu_millicores, memory_bytes
if TYPE_CHECKING:  # plain data in, no Pulumi needed to price or summarise it
    from mltoolkit.gcp.mock_runtime import RegisteredResource

COLUMNS = COST_COLUMNS

NODE_POOL = "gcp:container/nodePool:NodePool"
CLUSTER = "gcp:container/cluster:Cluster"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
SECURITY_POLICY = "gcp:compute/securityPolicy:SecurityPolicy"
ROUTER_NAT = "gcp:compute/routerNat:RouterNat"
BUCKET_OBJECT = "gcp:storage/bucketObject:BucketObject"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


@dataclass(frozen=True)
class LineItem:
    resource: str
    item: str
    quantity: float
    unit: str
    #: NaN when the price table has no entry
    unit_price_per_hour: float

    @property
    def usd_per_hour(self) -> float:
        return self.quantity * self.unit_price_per_hour


def _get(data: Any, *path: str, default: Any = None) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


def _node_pool_items(pool: RegisteredResource, nodes: int, private: bool, nat: bool) -> list[LineItem]:
    config = pool.inputs.get("nodeConfig", {})
    machine_type = config.get("machineType", "")
    spot = bool(config.get("spot"))
    kind = "spot" if spot else "on demand"
    machine = catalog.MACHINE_TYPES.get(machine_type)
    try:
        if machine is None:
            raise prices.UnknownPrice(machine_type)
        unit_price = prices.machine_hourly(machine_type, machine.vcpus, machine.memory_gb, spot)
    except prices.UnknownPrice:
        unit_price = math.nan
    items = [LineItem(pool.name, f"{machine_type} VM ({kind})", nodes, "node", unit_price)]
    for accelerator in config.get("guestAccelerators") or []:
        gpu = accelerator.get("type", "")
        try:
            gpu_price = prices.gpu_hourly(gpu, spot)
        except prices.UnknownPrice:
            gpu_price = math.nan
        items.append(LineItem(pool.name, f"{gpu} GPU ({kind})", nodes * accelerator.get("count", 0), "GPU", gpu_price))
    disk_type = config.get("diskType", "pd-balanced")
    disk_gb = config.get("diskSizeGb", 100)
    items.append(
        LineItem(
            pool.name,
            f"{disk_type} boot disk",
            nodes * disk_gb,
            "GB",
            prices.monthly_to_hourly(prices.DISK_GB_MONTH.get(disk_type, math.nan)),
        )
    )
    if not private:
        ip_price = prices.EXTERNAL_IPV4_SPOT_HOURLY if spot else prices.EXTERNAL_IPV4_HOURLY
        items.append(LineItem(pool.name, f"node external IPv4 ({kind})", nodes, "address", ip_price))
    if nat:
        items.append(LineItem(pool.name, "Cloud NAT gateway", nodes, "VM", prices.CLOUD_NAT_VM_HOURLY))
    return items


GPU_RESOURCE = "nvidia.com/gpu"


def _pool_has_gpu(pool: RegisteredResource) -> bool:
    return bool(_get(pool.inputs, "nodeConfig", "guestAccelerators"))


def _replica_requests(deployment: RegisteredResource) -> tuple[int, float, float, int]:
    """(replicas, CPU cores, memory bytes, GPUs) that one Deployment asks of the nodes."""
    replicas = int(_get(deployment.inputs, "spec", "replicas", default=1) or 1)
    containers = _get(deployment.inputs, "spec", "template", "spec", "containers", default=[]) or []
    cpu = memory = 0.0
    gpus = 0
    for container in containers:
        requests = _get(container, "resources", "requests", default={}) or {}
        limits = _get(container, "resources", "limits", default={}) or {}
        if "cpu" in requests:
            cpu += cpu_millicores(requests["cpu"]) / 1000
        if "memory" in requests:
            memory += memory_bytes(requests["memory"])
        gpus += int(limits.get(GPU_RESOURCE, requests.get(GPU_RESOURCE, 0)) or 0)
    return replicas, cpu, memory, gpus


def _nodes_needed(pool: RegisteredResource, replicas: int, cpu: float, memory: float) -> int:
    machine = catalog.MACHINE_TYPES.get(_get(pool.inputs, "nodeConfig", "machineType", default=""))
    if machine is None:
        return 0  # an unlisted machine: its size is unknown
    usable = 1 - catalog.NODE_RESERVED_FRACTION
    per_node = min(
        int(machine.vcpus * usable // cpu) if cpu > 0 else replicas,
        int(machine.memory_gb * 1e9 * usable // memory) if memory > 0 else replicas,
    )
    return math.ceil(replicas / per_node) if per_node > 0 else 0


def pool_node_counts(
    resources: Iterable[RegisteredResource], *, scale: Literal["min", "max"] = "min"
) -> dict[str, int]:
    """Nodes each node pool runs (by pool name): its autoscaling bound, at least its initial
    nodes in every zone, at least what the replicas' requests need (see the module docstring)."""
    resources = list(resources)
    pools = [r for r in resources if r.type == NODE_POOL]
    counts: dict[str, int] = {}
    for pool in pools:
        key = "totalMinNodeCount" if scale == "min" else "totalMaxNodeCount"
        nodes = int(_get(pool.inputs, "autoscaling", key, default=0) or 0)
        per_zone = int(pool.inputs.get("initialNodeCount") or 0)
        counts[pool.name] = max(nodes, per_zone * catalog.zones_of(str(pool.inputs.get("location", ""))))
    for deployment in (r for r in resources if r.type == DEPLOYMENT):
        replicas, cpu, memory, gpus = _replica_requests(deployment)
        eligible = [p for p in pools if _pool_has_gpu(p) == (gpus > 0)]
        if not eligible:
            continue
        pool = eligible[0]  # the first pool the replicas may run on takes what does not fit
        ceiling = int(_get(pool.inputs, "autoscaling", "totalMaxNodeCount", default=0) or 0)
        needed = _nodes_needed(pool, replicas, cpu, memory)
        counts[pool.name] = max(counts[pool.name], min(needed, ceiling) if ceiling else needed)
    return counts


def line_items(
    resources: Iterable[RegisteredResource], *, scale: Literal["min", "max"] = "min"
) -> list[LineItem]:
    resources = list(resources)
    by_type: dict[str, list[RegisteredResource]] = {}
    for resource in resources:
        by_type.setdefault(resource.type, []).append(resource)
    clusters = by_type.get(CLUSTER, [])
    private = any(_get(c.inputs, "privateClusterConfig", "enablePrivateNodes") for c in clusters)
    nat = bool(by_type.get(ROUTER_NAT))
    items: list[LineItem] = []
    for cluster in clusters:
        items.append(LineItem(cluster.name, "GKE cluster management fee", 1, "cluster", prices.GKE_CLUSTER_HOURLY))
    node_counts = pool_node_counts(resources, scale=scale)
    for pool in by_type.get(NODE_POOL, []):
        items += _node_pool_items(pool, node_counts[pool.name], private, nat)
    for service in by_type.get(SERVICE, []):
        if _get(service.inputs, "spec", "type") == "LoadBalancer":
            items.append(
                LineItem(service.name, "L4 load balancer forwarding rule", 1, "rule", prices.FORWARDING_RULE_HOURLY)
            )
    for ingress in by_type.get(INGRESS, []):
        items.append(
            LineItem(ingress.name, "L7 load balancer forwarding rule", 1, "rule", prices.FORWARDING_RULE_HOURLY)
        )
    for policy in by_type.get(SECURITY_POLICY, []):
        rules = len(policy.inputs.get("rules") or [])
        items.append(
            LineItem(policy.name, "Cloud Armor policy", 1, "policy", prices.monthly_to_hourly(prices.CLOUD_ARMOR_POLICY_MONTH))
        )
        items.append(
            LineItem(policy.name, "Cloud Armor rules", rules, "rule", prices.monthly_to_hourly(prices.CLOUD_ARMOR_RULE_MONTH))
        )
    registries = [r.outputs.get("registryUri") for r in by_type.get(REPOSITORY, []) if r.outputs.get("registryUri")]
    stored: set[str] = set()  # one image serving several Deployments (model, balancer) is stored once
    for deployment in by_type.get(DEPLOYMENT, []):
        containers = _get(deployment.inputs, "spec", "template", "spec", "containers", default=[]) or []
        images = {str(c.get("image", "")) for c in containers} - stored
        if any(image.startswith(f"{uri}/") for image in images for uri in registries):
            stored |= images
            items.append(
                LineItem(
                    deployment.name,
                    "serving image in Artifact Registry (size estimated)",
                    prices.SERVING_IMAGE_GB,
                    "GB",
                    prices.monthly_to_hourly(prices.ARTIFACT_REGISTRY_GB_MONTH),
                )
            )
    for model in by_type.get(BUCKET_OBJECT, []):
        path = _get(model.inputs, "source", "path")
        size_gb = os.path.getsize(path) / 1e9 if path and os.path.exists(path) else 0.0
        items.append(
            LineItem(
                model.name,
                "model file in Cloud Storage",
                size_gb,
                "GB",
                prices.monthly_to_hourly(prices.CLOUD_STORAGE_STANDARD_GB_MONTH),
            )
        )
    return items


def cost_frame(items: Iterable[LineItem]) -> pd.DataFrame:
    rows = [{**asdict(item), "usd_per_hour": item.usd_per_hour} for item in items]
    return pd.DataFrame(rows, columns=COLUMNS)


def total_per_hour(items: Iterable[LineItem]) -> float:
    """The sum of the priced items (items without a price count as 0; see ``unpriced``)."""
    return float(sum(i.usd_per_hour for i in items if not math.isnan(i.usd_per_hour)))


def unpriced(items: Iterable[LineItem]) -> list[str]:
    return [i.item for i in items if math.isnan(i.unit_price_per_hour)]
