import pytest

from mltoolkit.errors import SpecError
from mltoolkit.sim.costs import CostDistribution
from mltoolkit.sim.fleet_spec import FleetSpec, ReplicaSpec, slow_indices, uneven_fleet


def test_uneven_fleet_spreads_the_slow_quarter_and_sums_capacity():
    fleet = uneven_fleet(16, slots=2, slow_fraction=0.25, slow_factor=3.0,
                         costs=CostDistribution("pareto", 0.1))
    speeds = {r.name: r.speed for r in fleet.replicas}
    assert [n for n, s in speeds.items() if s < 1] == ["r03", "r07", "r11", "r15"]
    assert speeds["r03"] == pytest.approx(1 / 3)
    # capacity = sum(slots x speed) = 2 x (12 x 1 + 4 x 1/3) = 26.67 work-seconds per second;
    # at a mean cost of 0.1 s that is 266.7 requests per second.
    assert fleet.capacity == pytest.approx(2 * (12 + 4 / 3))
    assert fleet.capacity_rps() == pytest.approx(2 * (12 + 4 / 3) / 0.1)


def test_slow_indices_are_evenly_spread():
    assert slow_indices(16, 4) == [3, 7, 11, 15]
    assert slow_indices(10, 3) == [2, 5, 9]


def test_round_trips_through_a_dict():
    fleet = FleetSpec(
        replicas=(ReplicaSpec("a", slots=3, speed=0.5, slow_at_s=2.0, die_at_s=4.0, death_mode="hang"),
                  ReplicaSpec("b")),
        costs=CostDistribution("lognormal", 0.02, 0.5),
        seed=9,
    )
    assert FleetSpec.from_dict(fleet.to_dict()) == fleet


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: ReplicaSpec("a", slots=0), "ReplicaSpec(a).slots"),
        (lambda: ReplicaSpec("a", speed=0), "ReplicaSpec(a).speed"),
        (lambda: ReplicaSpec("a", slow_factor=0.5), "ReplicaSpec(a).slow_factor"),
        (lambda: ReplicaSpec("a", die_at_s=-1), "ReplicaSpec(a).die_at_s"),
        (lambda: ReplicaSpec("a", death_mode="explode"), "ReplicaSpec(a).death_mode"),
        (lambda: ReplicaSpec("no spaces"), "ReplicaSpec.name"),
        (lambda: FleetSpec(replicas=()), "FleetSpec.replicas"),
        (lambda: FleetSpec(replicas=(ReplicaSpec("a"), ReplicaSpec("a"))), "FleetSpec.replicas"),
        (lambda: FleetSpec(replicas=(ReplicaSpec("a"),), host="0.0.0.0"), "FleetSpec.host"),
        (lambda: FleetSpec(replicas=(ReplicaSpec("a"),), base_port=80), "FleetSpec.base_port"),
        (lambda: FleetSpec.from_dict({"replicas": [{"name": "a", "slot": 2}]}), "ReplicaSpec.slot"),
        (lambda: FleetSpec.from_dict({"replicas": [], "ports": 1}), "FleetSpec.ports"),
        (lambda: uneven_fleet(16, slow_fraction=2), "uneven_fleet.slow_fraction"),
    ],
)
def test_bad_values_name_the_field_and_what_is_allowed(make, field):
    with pytest.raises(SpecError) as info:
        make()
    assert info.value.field == field
    assert info.value.allowed


def test_lookup_by_name_names_the_choices():
    fleet = uneven_fleet(4)
    assert fleet.replica("r02").name == "r02"
    with pytest.raises(SpecError, match="r00"):
        fleet.replica("r9")
