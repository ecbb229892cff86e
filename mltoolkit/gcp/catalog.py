"""What Google Cloud offers, as far as cluster specs are checked: regions, machine types, GPUs.

Pure data, no Pulumi: ``mltoolkit.spec.cluster`` validates against it before anything runs.

Compiled from Google's public pages (Compute Engine "Machine families resource and comparison
guide", "GPU regions and zones availability", "Regions and zones") as the author knew them in
mid-2024; this machine has no internet access, so the table was not re-checked when written.
GPU availability is recorded per *region*; Google publishes it per zone, so a zonal location can
still lack a GPU its region has. A machine type missing here can be used with
``NodePoolSpec(allow_unlisted_machine_type=True)``; its price is then unknown to ``plan()``.
"""

from __future__ import annotations

from dataclasses import dataclass

# region -> its zone suffixes
REGIONS: dict[str, tuple[str, ...]] = {
    "us-central1": ("a", "b", "c", "f"),
    "us-east1": ("b", "c", "d"),
    "us-east4": ("a", "b", "c"),
    "us-west1": ("a", "b", "c"),
    "us-west4": ("a", "b", "c"),
    "northamerica-northeast1": ("a", "b", "c"),
    "southamerica-east1": ("a", "b", "c"),
    "europe-west1": ("b", "c", "d"),
    "europe-west2": ("a", "b", "c"),
    "europe-west3": ("a", "b", "c"),
    "europe-west4": ("a", "b", "c"),
    "asia-east1": ("a", "b", "c"),
    "asia-northeast1": ("a", "b", "c"),
    "asia-southeast1": ("a", "b", "c"),
    "australia-southeast1": ("a", "b", "c"),
}

DISK_TYPES = ("pd-standard", "pd-balanced", "pd-ssd")

#: what GKE and its system pods keep of a node, roughly: requests above the rest never schedule
NODE_RESERVED_FRACTION = 0.1
#: the zones a regional cluster's node pool spans by default
REGIONAL_POOL_ZONES = 3


def zones_of(location: str) -> int:
    """How many zones a node pool at ``location`` (a region or a zone) spans by default."""
    region = region_of(location)
    if region is None or region != location:
        return 1
    return min(REGIONAL_POOL_ZONES, len(REGIONS[region]))


@dataclass(frozen=True)
class MachineType:
    name: str
    family: str
    vcpus: float
    memory_gb: float
    #: GPUs that come with the machine type (G2 machines carry L4s): (gpu type, count)
    bundled_gpu: tuple[str, int] | None = None


@dataclass(frozen=True)
class GpuType:
    name: str
    #: machine families the GPU attaches to
    families: tuple[str, ...]
    counts: tuple[int, ...]
    regions: frozenset[str]


def _shapes(family: str, kind: str, sizes: tuple[int, ...], gb_per_vcpu: float) -> list[MachineType]:
    return [
        MachineType(f"{family}-{kind}-{n}", family, float(n), round(n * gb_per_vcpu, 2))
        for n in sizes
    ]


_MACHINES: list[MachineType] = [
    MachineType("e2-medium", "e2", 2.0, 4.0),  # shared core: 2 vCPUs at 50 %
    *_shapes("e2", "standard", (2, 4, 8, 16, 32), 4.0),
    *_shapes("e2", "highmem", (2, 4, 8, 16), 8.0),
    *_shapes("e2", "highcpu", (2, 4, 8, 16, 32), 1.0),
    *_shapes("n1", "standard", (1, 2, 4, 8, 16, 32), 3.75),
    *_shapes("n1", "highmem", (2, 4, 8, 16, 32), 6.5),
    *_shapes("n1", "highcpu", (4, 8, 16, 32), 0.9),
    *_shapes("n2", "standard", (2, 4, 8, 16, 32), 4.0),
    *_shapes("n2", "highmem", (2, 4, 8, 16), 8.0),
    *_shapes("n2", "highcpu", (2, 4, 8, 16, 32), 1.0),
    *_shapes("n2d", "standard", (2, 4, 8, 16, 32), 4.0),
    MachineType("g2-standard-4", "g2", 4.0, 16.0, ("nvidia-l4", 1)),
    MachineType("g2-standard-8", "g2", 8.0, 32.0, ("nvidia-l4", 1)),
    MachineType("g2-standard-12", "g2", 12.0, 48.0, ("nvidia-l4", 1)),
    MachineType("g2-standard-16", "g2", 16.0, 64.0, ("nvidia-l4", 1)),
]
MACHINE_TYPES: dict[str, MachineType] = {m.name: m for m in _MACHINES}

_T4_REGIONS = frozenset(REGIONS)  # offered in every region listed above
_L4_REGIONS = frozenset(
    {
        "us-central1", "us-east1", "us-east4", "us-west1", "us-west4", "europe-west1",
        "europe-west2", "europe-west3", "europe-west4", "asia-east1", "asia-northeast1",
        "asia-southeast1",
    }
)
_V100_REGIONS = frozenset({"us-central1", "us-east1", "us-west1", "europe-west4", "asia-east1"})

GPU_TYPES: dict[str, GpuType] = {
    g.name: g
    for g in (
        GpuType("nvidia-tesla-t4", ("n1",), (1, 2, 4), _T4_REGIONS),
        GpuType("nvidia-tesla-v100", ("n1",), (1, 2, 4, 8), _V100_REGIONS),
        GpuType("nvidia-l4", ("g2",), (1,), _L4_REGIONS),
    )
}


def machine_family(machine_type: str) -> str:
    """``"n1-standard-4"`` → ``"n1"`` (also for machine types not in the table)."""
    return machine_type.split("-", 1)[0]


def region_of(location: str) -> str | None:
    """The region of a known region or zone name, or None if the location is not in the table."""
    if location in REGIONS:
        return location
    region, _, zone = location.rpartition("-")
    if region in REGIONS and zone in REGIONS[region]:
        return region
    return None
