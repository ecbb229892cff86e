"""Hourly cost line items of what a program registers, priced from ``prices`` (pure functions).

The items are read off the registered resources themselves — node pools, the cluster, load
balancer Services and Ingresses, Cloud Armor policies, NAT, the model object in the bucket, the
serving image in the registry — so the estimate follows the program, not a second description
of it. Node counts are the pools' autoscaling minimum (``scale="min"``) or maximum
(``scale="max"``).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterable, Literal

import pandas as pd

from mltoolkit.gcp import catalog, prices
if TYPE_CHECKING:  # plain data in, no Pulumi needed to price or summarise it
    from mltoolkit.gcp.mock_runtime import RegisteredResource

COLUMNS = ["resource", "item", "quantity", "unit", "unit_price_per_hour", "usd_per_hour"]

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
    for pool in by_type.get(NODE_POOL, []):
        key = "totalMinNodeCount" if scale == "min" else "totalMaxNodeCount"
        nodes = int(_get(pool.inputs, "autoscaling", key, default=0))
        items += _node_pool_items(pool, nodes, private, nat)
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
