"""Typed descriptions of a simulated fleet: its replicas, their slots and speeds, their faults."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from mltoolkit.errors import SpecError
from mltoolkit.sim.costs import CostDistribution

DEATH_MODES = ("close", "hang")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _check_number(field_name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > high or value < low or (low_open and value == low):
        interval = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise SpecError(field_name, value, f"a number in {interval}")


def _check_int(field_name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(field_name, value, f"a whole number from {low} to {high}")


@dataclass(frozen=True)
class ReplicaSpec:
    """One simulated replica.

    A request of cost ``c`` (seconds on a speed-1.0 replica) holds one of the ``slots`` for
    ``c / speed`` seconds; requests beyond ``slots`` wait in the replica's FIFO queue. From
    ``slow_at_s`` (seconds after the fleet started) service takes ``slow_factor`` times longer;
    at ``die_at_s`` the replica dies: ``close`` refuses connections and drops the ones it has,
    ``hang`` keeps connections open and never answers again.
    """

    name: str
    slots: int = 1
    speed: float = 1.0
    slow_at_s: float | None = None
    slow_factor: float = 10.0
    die_at_s: float | None = None
    death_mode: str = "close"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise SpecError(
                "ReplicaSpec.name", self.name,
                "1-63 letters, digits, '_', '.' or '-', starting with a letter or digit",
            )
        _check_int(f"ReplicaSpec({self.name}).slots", self.slots, 1, 1024)
        _check_number(f"ReplicaSpec({self.name}).speed", self.speed, 0, 1000, low_open=True)
        if self.slow_at_s is not None:
            _check_number(f"ReplicaSpec({self.name}).slow_at_s", self.slow_at_s, 0, 1e6)
        _check_number(f"ReplicaSpec({self.name}).slow_factor", self.slow_factor, 1, 1e6)
        if self.die_at_s is not None:
            _check_number(f"ReplicaSpec({self.name}).die_at_s", self.die_at_s, 0, 1e6)
        if self.death_mode not in DEATH_MODES:
            raise SpecError(
                f"ReplicaSpec({self.name}).death_mode", self.death_mode, f"one of {list(DEATH_MODES)}"
            )

    @property
    def capacity(self) -> float:
        """Work-seconds this replica completes per second when every slot is busy."""
        return self.slots * self.speed

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplicaSpec:
        if not isinstance(data, Mapping):
            raise SpecError("ReplicaSpec", data, "a mapping with at least a name")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"ReplicaSpec.{unknown[0]}", data[unknown[0]], f"one of {sorted(known)}")
        if "name" not in data:
            raise SpecError("ReplicaSpec.name", None, "a replica name")
        return cls(**data)


@dataclass(frozen=True)
class FleetSpec:
    """Many simulated replicas served from one process (one asyncio loop, one port each).

    ``costs`` is used for requests that do not carry their own cost. ``base_port`` 0 lets the OS
    pick free ports; otherwise replica i listens on ``base_port + i``.
    """

    replicas: tuple[ReplicaSpec, ...]
    costs: CostDistribution = field(default_factory=CostDistribution)
    host: str = "127.0.0.1"
    base_port: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        replicas = self.replicas
        if isinstance(replicas, (list, tuple)):
            replicas = tuple(
                ReplicaSpec.from_dict(r) if isinstance(r, Mapping) else r for r in replicas
            )
            object.__setattr__(self, "replicas", replicas)
        if (
            not isinstance(replicas, tuple)
            or not replicas
            or not all(isinstance(r, ReplicaSpec) for r in replicas)
        ):
            raise SpecError("FleetSpec.replicas", self.replicas, "a non-empty sequence of ReplicaSpec")
        if len(replicas) > 1024:
            raise SpecError("FleetSpec.replicas", f"{len(replicas)} replicas", "at most 1024 replicas")
        names = [r.name for r in replicas]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpecError("FleetSpec.replicas", duplicates, "distinct replica names")
        if isinstance(self.costs, Mapping):
            object.__setattr__(self, "costs", CostDistribution.from_dict(self.costs))
        if not isinstance(self.costs, CostDistribution):
            raise SpecError("FleetSpec.costs", self.costs, "a CostDistribution")
        if self.host not in LOOPBACK_HOSTS:
            raise SpecError("FleetSpec.host", self.host, f"a loopback address, one of {list(LOOPBACK_HOSTS)}")
        if self.base_port != 0:
            _check_int("FleetSpec.base_port", self.base_port, 1024, 65535 - len(replicas))
        _check_int("FleetSpec.seed", self.seed, 0, 2**32 - 1)

    @property
    def capacity(self) -> float:
        """Work-seconds per second the whole fleet completes at full load: sum of slots x speed."""
        return sum(r.capacity for r in self.replicas)

    def capacity_rps(self, mean_cost_s: float | None = None) -> float:
        """Requests per second the fleet can sustain at the given (default: ``costs``) mean cost."""
        mean = self.costs.mean_s if mean_cost_s is None else mean_cost_s
        return self.capacity / mean

    def replica(self, name: str) -> ReplicaSpec:
        for r in self.replicas:
            if r.name == name:
                return r
        raise SpecError("replica", name, f"one of {[r.name for r in self.replicas]}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "replicas": [asdict(r) for r in self.replicas],
            "costs": self.costs.to_dict(),
            "host": self.host,
            "base_port": self.base_port,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FleetSpec:
        if not isinstance(data, Mapping):
            raise SpecError("FleetSpec", data, "a mapping with replicas, costs, host, base_port, seed")
        known = {"replicas", "costs", "host", "base_port", "seed"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"FleetSpec.{unknown[0]}", data[unknown[0]], f"one of {sorted(known)}")
        if "replicas" not in data:
            raise SpecError("FleetSpec.replicas", None, "a non-empty list of replicas")
        return cls(**data)


def slow_indices(n: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(n)`` (16, 4 -> 3, 7, 11, 15)."""
    return [math.floor((j + 1) * n / count) - 1 for j in range(count)]


def uneven_fleet(
    replicas: int = 16,
    *,
    slots: int = 1,
    slow_fraction: float = 0.25,
    slow_factor: float = 3.0,
    costs: CostDistribution | None = None,
    seed: int = 0,
    prefix: str = "r",
) -> FleetSpec:
    """``replicas`` replicas named r00, r01, ...; ``slow_fraction`` of them (spread evenly over the
    list) run ``slow_factor`` times slower (speed ``1/slow_factor``), the rest at speed 1.0."""
    _check_int("uneven_fleet.replicas", replicas, 1, 1024)
    _check_number("uneven_fleet.slow_fraction", slow_fraction, 0, 1)
    _check_number("uneven_fleet.slow_factor", slow_factor, 1, 1e6)
    count = round(replicas * slow_fraction)
    slow = set(slow_indices(replicas, count)) if count else set()
    width = max(2, len(str(replicas - 1)))
    specs = tuple(
        ReplicaSpec(
            name=f"{prefix}{i:0{width}d}",
            slots=slots,
            speed=(1.0 / slow_factor) if i in slow else 1.0,
        )
        for i in range(replicas)
    )
    return FleetSpec(replicas=specs, costs=costs or CostDistribution(), seed=seed)
