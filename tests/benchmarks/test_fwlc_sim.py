"""benchmarks/fwlc_sim.py: the model of HAProxy's leastconn that explains several balancers."""

from .conftest import load_script

from mltoolkit.balancer.policies import Policy, ReplicaState

fwlc_sim = load_script("fwlc_sim")


def test_an_idle_server_keys_zero_whatever_its_weight_as_in_haproxy():
    assert fwlc_sim.fwlc_key(0, 1) == fwlc_sim.fwlc_key(0, 256) == 0
    # busy: (in flight + 1) x 256 / weight, in whole numbers as HAProxy's eb32 keys
    assert fwlc_sim.fwlc_key(1, 100) == 5 and fwlc_sim.fwlc_key(1, 33) == 15


def test_the_model_takes_idle_servers_in_turn_and_an_anchor_makes_weights_count():
    replicas = [ReplicaState(name=n, url=f"sim://{n}") for n in ("fast", "slow")]
    model = fwlc_sim.FwlcModel("answers")
    model.weights, model._last = {"fast": 100, "slow": 10}, 0.0  # slow: a tenth of the weight
    assert [model.choose(replicas).name for _ in range(4)] == ["fast", "slow", "fast", "slow"]
    anchored = fwlc_sim.FwlcModel("answers", anchor=1)
    anchored.weights, anchored._last = {"fast": 100, "slow": 10}, 0.0
    assert [anchored.choose(replicas).name for _ in range(4)] == ["fast"] * 4


def test_a_model_is_a_policy_only_inside_its_block():
    with fwlc_sim.registered("x", lambda: fwlc_sim.FwlcModel("answers")) as name:
        assert isinstance(Policy.make(name), fwlc_sim.FwlcModel)
    assert name not in Policy.registry
