"""Google Cloud list prices that ``plan()`` multiplies out, in USD, for region us-central1.

PRICES_AS_OF says when these prices were current. Honest provenance: they were written from the
author's knowledge of Google's public pricing pages as they stood around mid-2024; this machine
has no internet access, so they were NOT re-checked against the pages when written. Spot prices
change up to once a month and are the least certain numbers here. Other regions cost more (often
10-30 %); ``plan()`` applies these us-central1 prices everywhere and says so. Update by editing
the numbers below and PRICES_AS_OF.

Public sources (Google Cloud pricing pages):
- machine types and spot VMs: https://cloud.google.com/compute/vm-instance-pricing
  (N1, N2, N2D, E2, G2 per-vCPU and per-GB rates; predefined machine types are the sum)
- GPUs: https://cloud.google.com/compute/gpus-pricing
- persistent disks: https://cloud.google.com/compute/disks-image-pricing
- GKE cluster management fee: https://cloud.google.com/kubernetes-engine/pricing
  (one zonal or Autopilot cluster per billing account is covered by a monthly free-tier credit
  of $74.40; ``plan()`` does not subtract it)
- load balancer forwarding rules, external IPv4 addresses, Cloud NAT:
  https://cloud.google.com/vpc/network-pricing
- Cloud Armor: https://cloud.google.com/armor/pricing
- Artifact Registry storage: https://cloud.google.com/artifact-registry/pricing
- Cloud Storage (Standard, regional): https://cloud.google.com/storage/pricing

Not priced (usage-based, depends on traffic): network egress, load balancer data processing,
Cloud NAT data processing, Cloud Armor per-request charges, Cloud Build minutes, logging and
monitoring beyond the free allotments.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_AS_OF = "2024-07"
PRICE_REGION = "us-central1"
CURRENCY = "USD"
HOURS_PER_MONTH = 730  # Google's own convention for monthly estimates


@dataclass(frozen=True)
class FamilyRates:
    """$/hour for one vCPU and for one GB of memory, on demand and as spot VMs."""

    vcpu: float
    memory_gb: float
    spot_vcpu: float
    spot_memory_gb: float


MACHINE_FAMILY_RATES: dict[str, FamilyRates] = {
    "e2": FamilyRates(vcpu=0.021811, memory_gb=0.002923, spot_vcpu=0.006543, spot_memory_gb=0.000877),
    "n1": FamilyRates(vcpu=0.031611, memory_gb=0.004237, spot_vcpu=0.006980, spot_memory_gb=0.000940),
    "n2": FamilyRates(vcpu=0.031611, memory_gb=0.004237, spot_vcpu=0.007650, spot_memory_gb=0.001025),
    "n2d": FamilyRates(vcpu=0.027502, memory_gb=0.003686, spot_vcpu=0.006630, spot_memory_gb=0.000890),
    # G2: the machine part only; its L4 GPU is priced under GPU_HOURLY
    "g2": FamilyRates(vcpu=0.025020, memory_gb=0.002930, spot_vcpu=0.007506, spot_memory_gb=0.000879),
}

# machine types priced on their own rather than by vCPU and memory: (on demand, spot) $/hour
MACHINE_HOURLY_OVERRIDES: dict[str, tuple[float, float]] = {
    "e2-medium": (0.033503, 0.010051),  # shared core
}

# $/hour per GPU: (on demand, spot)
GPU_HOURLY: dict[str, tuple[float, float]] = {
    "nvidia-tesla-t4": (0.35, 0.11),
    "nvidia-tesla-v100": (2.48, 0.74),
    "nvidia-l4": (0.56, 0.224),
}

# $ per GB-month of provisioned persistent disk
DISK_GB_MONTH: dict[str, float] = {
    "pd-standard": 0.040,
    "pd-balanced": 0.100,
    "pd-ssd": 0.170,
}

GKE_CLUSTER_HOURLY = 0.10  # Standard cluster management fee, per cluster
FORWARDING_RULE_HOURLY = 0.025  # first 5 forwarding rules in a project, per rule
EXTERNAL_IPV4_HOURLY = 0.005  # in use by a standard VM
EXTERNAL_IPV4_SPOT_HOURLY = 0.0025  # in use by a spot VM
CLOUD_NAT_VM_HOURLY = 0.0014  # per VM using the gateway (up to 32 VMs)
CLOUD_ARMOR_POLICY_MONTH = 5.00
CLOUD_ARMOR_RULE_MONTH = 1.00
ARTIFACT_REGISTRY_GB_MONTH = 0.10  # beyond 0.5 GB free, not subtracted
CLOUD_STORAGE_STANDARD_GB_MONTH = 0.020
#: assumed size of the model server image (Python, NumPy, SciPy, scikit-learn): an estimate
SERVING_IMAGE_GB = 1.0


class UnknownPrice(KeyError):
    """The table has no price for this machine type or GPU."""


def machine_hourly(machine_type: str, vcpus: float, memory_gb: float, spot: bool) -> float:
    """$/hour of one VM of ``machine_type`` (GPUs excluded)."""
    if machine_type in MACHINE_HOURLY_OVERRIDES:
        on_demand, spot_price = MACHINE_HOURLY_OVERRIDES[machine_type]
        return spot_price if spot else on_demand
    family = machine_type.split("-", 1)[0]
    if family not in MACHINE_FAMILY_RATES:
        raise UnknownPrice(machine_type)
    rates = MACHINE_FAMILY_RATES[family]
    if spot:
        return vcpus * rates.spot_vcpu + memory_gb * rates.spot_memory_gb
    return vcpus * rates.vcpu + memory_gb * rates.memory_gb


def gpu_hourly(gpu_type: str, spot: bool) -> float:
    if gpu_type not in GPU_HOURLY:
        raise UnknownPrice(gpu_type)
    on_demand, spot_price = GPU_HOURLY[gpu_type]
    return spot_price if spot else on_demand


def monthly_to_hourly(per_month: float) -> float:
    return per_month / HOURS_PER_MONTH
