"""Emulated service time on the local target: ``LocalTarget(service_ms=...)``.

Every replica gets the server's ``--service-ms``; a node's slowdown stretches it. Planning only:
the server side is tested in tests/serving/test_emulation.py.
"""

import pandas as pd
import pytest

from mltoolkit.errors import SpecError
from mltoolkit.local import LocalTarget
from mltoolkit.local.commands import plan_processes
from mltoolkit.observe import fleet_capacity_rps
from mltoolkit.spec import DeploymentSpec, ModelSpec


@pytest.fixture
def digits_spec(digits_model):
    model, _, _ = digits_model
    return DeploymentSpec(model=ModelSpec.from_object(model, name="digits"), replicas=4)


def test_plan_shows_each_replicas_service_time_and_passes_the_option(digits_spec):
    target = LocalTarget(nodes=4, node_slowdown={"node-3": 4.0}, service_ms=20, progress=False)
    plan = target.plan(digits_spec).resources.set_index("name")
    assert list(plan["service_ms"][:4]) == [20.0, 20.0, 20.0, 80.0]  # 20 ms x the node's slowdown
    assert pd.isna(plan.loc["digits-balancer", "service_ms"])  # not a replica
    for name in ("digits-0", "digits-3"):
        # the server gets the base time and the slowdown separately, and multiplies them
        assert "--service-ms 20.0" in plan.loc[name, "command"]
    assert "--slowdown 4.0" in plan.loc["digits-3", "command"]
    assert "--service-ms" not in plan.loc["digits-balancer", "command"]
    assert "service_ms=20" in repr(target)
    # three replicas of 50 requests/s and one of 12.5
    assert fleet_capacity_rps(plan.reset_index()) == pytest.approx(162.5)
    assert fleet_capacity_rps(target.plan(digits_spec)) == pytest.approx(162.5)  # the Plan itself


def test_without_service_ms_nothing_is_emulated(digits_spec):
    processes = plan_processes(digits_spec, nodes=2, node_slowdown={"node-0": 3})
    assert [p.service_ms for p in processes] == [None] * 5
    assert not any("--service-ms" in p.argv for p in processes)
    plan = LocalTarget(nodes=2, progress=False).plan(digits_spec).resources
    assert plan["service_ms"].isna().all()
    with pytest.raises(SpecError, match="plan.service_ms"):
        fleet_capacity_rps(plan)  # without emulation a replica's capacity is the host's business


@pytest.mark.parametrize("value", [-1, "20", True, float("nan"), 60_001])
def test_a_bad_service_ms_fails_before_anything_starts(value):
    with pytest.raises(SpecError) as info:
        LocalTarget(nodes=2, service_ms=value, progress=False)
    assert info.value.field == "LocalTarget.service_ms"
