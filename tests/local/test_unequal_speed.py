"""Replicas of unequal speed on the local target: ``LocalTarget(node_slowdown={...})``.

Replicas placed on a listed node run the model server with ``--slowdown FACTOR`` (an emulated
slower machine); load-aware policies should then send them fewer requests than round robin does.
"""

import numpy as np
import pandas as pd
import psutil
import pytest

from mltoolkit.errors import SpecError
from mltoolkit.local import LocalTarget
from mltoolkit.local.commands import plan_processes
from mltoolkit.serving.testing import SleepyModel
from mltoolkit.spec import BalancerSpec, DeploymentSpec, ModelSpec
from tests.local.conftest import processes_of


@pytest.fixture
def digits_spec(digits_model):
    model, _, _ = digits_model
    return DeploymentSpec(model=ModelSpec.from_object(model, name="digits"), replicas=4)


@pytest.fixture
def make_target(home):
    """LocalTargets that are all downed at the end; nothing started under this test's home
    may remain."""
    targets = []

    def make(**kwargs):
        kwargs.setdefault("progress", False)
        target = LocalTarget(**kwargs)
        targets.append(target)
        return target

    yield make
    for target in targets:
        target.down()
    LocalTarget.cleanup(force=True)  # a safety net: this test's own state dir only
    assert processes_of(home) == []


# -- planning, without starting anything ------------------------------------------------------


def test_plan_shows_which_replicas_are_slowed_and_passes_them_the_option(digits_spec):
    target = LocalTarget(nodes=3, node_slowdown={"node-1": 2.5}, progress=False)
    plan = target.plan(digits_spec).resources.set_index("name")
    # four replicas round-robin over three nodes: digits-1 is the only one on node-1
    assert list(plan["node"][:4]) == ["node-0", "node-1", "node-2", "node-0"]
    assert list(plan["slowdown"][:4]) == [1.0, 2.5, 1.0, 1.0]
    assert pd.isna(plan.loc["digits-balancer", "slowdown"])  # not a replica
    assert "--slowdown 2.5" in plan.loc["digits-1", "command"]
    for name in ("digits-0", "digits-2", "digits-3", "digits-balancer"):
        assert "--slowdown" not in plan.loc[name, "command"]
    assert "node_slowdown={'node-1': 2.5}" in repr(target)


def test_two_replicas_on_a_slow_node_are_both_slowed(digits_spec):
    processes = plan_processes(digits_spec, nodes=2, node_slowdown={"node-0": 3})
    slowed = {p.name: p.slowdown for p in processes}
    assert slowed == {
        "digits-0": 3.0, "digits-1": 1.0, "digits-2": 3.0, "digits-3": 1.0, "digits-balancer": None,
    }  # fmt: skip
    argv = processes[0].argv
    assert argv[argv.index("--slowdown") + 1] == "3.0"
    assert processes[0].label == "replica digits-0 on node-0 (3x slower)"


def test_without_node_slowdown_every_replica_runs_at_full_speed(digits_spec):
    plan = LocalTarget(nodes=2, progress=False).plan(digits_spec).resources
    assert list(plan["slowdown"][:4]) == [1.0] * 4
    assert not plan["command"].str.contains("--slowdown").any()


@pytest.mark.parametrize(
    "node_slowdown, field, fragment",
    [
        ({"node-3": 2.0}, "LocalTarget.node_slowdown", "one of node-0 .. node-2"),
        ({"gpu-node": 2.0}, "LocalTarget.node_slowdown", "'gpu-node'"),
        ({"node-1": 0.5}, "LocalTarget.node_slowdown['node-1']", "from 1 (full speed)"),
        ({"node-1": True}, "LocalTarget.node_slowdown['node-1']", "from 1 (full speed)"),
        ({"node-1": "3"}, "LocalTarget.node_slowdown['node-1']", "from 1 (full speed)"),
        ({"node-1": float("nan")}, "LocalTarget.node_slowdown['node-1']", "nan"),
        (["node-1"], "LocalTarget.node_slowdown", "a dict of node name to factor"),
    ],
)
def test_bad_node_slowdown_names_the_field_before_anything_starts(
    home, node_slowdown, field, fragment
):
    with pytest.raises(SpecError) as info:
        LocalTarget(nodes=3, node_slowdown=node_slowdown, progress=False)
    assert info.value.field == field
    assert fragment in str(info.value)
    assert not (home / "local").exists()  # no record was ever written, nothing started


def test_a_single_node_target_names_its_only_node(home):
    with pytest.raises(SpecError, match=r"\(node-0\)"):
        LocalTarget(nodes=1, node_slowdown={"node-1": 2})


# -- real processes ---------------------------------------------------------------------------


def slow_share(frame) -> float:
    """The fraction of answered requests that the slow replica (sleepy-1) served."""
    answered = frame[frame["status"] == 200]
    return float((answered["replica"] == "sleepy-1").mean())


@pytest.mark.slow
def test_load_aware_policies_send_the_slow_replica_fewer_requests_than_round_robin(
    make_target, home
):
    # The model sleeps 10 ms per predict call (no CPU, so a loaded machine hardly matters);
    # sleepy-1 on node-1 is 4x slower (40 ms per call). The same closed loop of 6 workers goes
    # through each policy for 2 s. Round robin sends each replica half, whatever their speed;
    # least_request (fewest in flight) and ewma (lowest recent latency) see the slow replica
    # holding its requests longer and send it less.
    model = ModelSpec.from_object(SleepyModel(delay_s=0.01, n_features=4), name="sleepy")
    X = np.ones((16, 4))
    shares = {}
    for policy in ("round_robin", "least_request", "ewma"):
        spec = DeploymentSpec(model=model, replicas=2, balancer=BalancerSpec(policy=policy))
        target = make_target(nodes=2, node_slowdown={"node-1": 4.0})
        endpoint = target.up(spec)
        if policy == "round_robin":
            status = target.status().set_index("name")
            assert status.loc["sleepy-0", "slowdown"] == 1.0
            assert status.loc["sleepy-1", "slowdown"] == 4.0
            assert pd.isna(status.loc["sleepy-balancer", "slowdown"])
            # the option reached the right process
            slow_cmd = psutil.Process(int(status.loc["sleepy-1", "pid"])).cmdline()
            fast_cmd = psutil.Process(int(status.loc["sleepy-0", "pid"])).cmdline()
            assert slow_cmd[slow_cmd.index("--slowdown") + 1] == "4.0"
            assert "--slowdown" not in fast_cmd
        frame = target.load_test(concurrency=6, duration=2, X=X)
        assert (frame["status"] == 200).all(), frame[frame["status"] != 200].head()
        assert endpoint.url == target.endpoint.url
        counters = target.replica_stats().set_index("name")["served"]
        assert counters.sum() >= len(frame)  # the balancer counted what the load test saw
        shares[policy] = slow_share(frame)
        target.down()
        assert processes_of(home) == []

    assert shares["round_robin"] == pytest.approx(0.5, abs=0.02), shares  # turns, not speed
    assert shares["least_request"] < 0.8 * shares["round_robin"], shares
    assert shares["ewma"] < 0.8 * shares["round_robin"], shares
