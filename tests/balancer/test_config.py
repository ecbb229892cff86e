import pytest

from mltoolkit import BalancerSpec, SpecError
from mltoolkit.balancer.config import BalancerConfig, ReplicaTarget, parse_replica

A = ReplicaTarget("a", "http://127.0.0.1:9001")


def test_parse_replica_with_and_without_node():
    assert parse_replica("digits-0=http://127.0.0.1:8001@node-0") == ReplicaTarget(
        "digits-0", "http://127.0.0.1:8001", "node-0"
    )
    assert parse_replica("b=http://127.0.0.1:8002/") == ReplicaTarget("b", "http://127.0.0.1:8002")
    # An "@" inside the URL (user info before a path) is not a node separator.
    assert parse_replica("c=http://u@127.0.0.1:8003/x").url == "http://u@127.0.0.1:8003/x"


@pytest.mark.parametrize(
    "text, field",
    [
        ("http://127.0.0.1:8001", "--replica"),  # no NAME=
        ("a=", "--replica"),
        ("a=http://127.0.0.1:8001@", "--replica"),  # empty node
        ("a=ftp://127.0.0.1:8001", "ReplicaTarget.url"),
        ("a=http://127.0.0.1:99999", "ReplicaTarget.url"),
        ("a=127.0.0.1:8001", "ReplicaTarget.url"),
        ("a b=http://127.0.0.1:8001", "ReplicaTarget.name"),
        ("a=http://127.0.0.1:8001@node 1", "ReplicaTarget.node"),
    ],
)
def test_parse_replica_rejects(text, field):
    with pytest.raises(SpecError) as info:
        parse_replica(text)
    assert info.value.field == field


@pytest.mark.parametrize(
    "kwargs, field, fragment",
    [
        ({"replicas": ()}, "BalancerConfig.replicas", "one or more"),
        ({"replicas": (A, A)}, "BalancerConfig.replicas", "unique"),
        ({"policy": "fastest"}, "BalancerConfig.policy", "round_robin"),
        ({"port": 70000}, "BalancerConfig.port", "0 to 65535"),
        ({"port": 80.5}, "BalancerConfig.port", "whole number"),
        ({"health_interval_s": 0}, "BalancerConfig.health_interval_s", "0.05 to 60"),
        ({"retries": 4}, "BalancerConfig.retries", "0 to 3"),
        ({"request_timeout_s": True}, "BalancerConfig.request_timeout_s", "a number"),
        ({"host": "local host"}, "BalancerConfig.host", "host name"),
    ],
)
def test_config_errors_name_the_field(kwargs, field, fragment):
    kwargs.setdefault("replicas", (A,))
    with pytest.raises(SpecError, match=fragment) as info:
        BalancerConfig(**kwargs)
    assert info.value.field == field


def test_weight_must_be_positive():
    with pytest.raises(SpecError) as info:
        ReplicaTarget("a", "http://127.0.0.1:9001", weight=0)
    assert info.value.field == "ReplicaTarget.weight"


def test_from_spec_carries_the_spec_settings():
    spec = BalancerSpec(policy="round_robin", health_interval_s=0.5, retries=2, request_timeout_s=9)
    config = BalancerConfig.from_spec(spec, [A], port=8000)
    assert (config.policy, config.health_interval_s, config.retries, config.request_timeout_s) == (
        "round_robin", 0.5, 2, 9,
    )  # fmt: skip
    assert config.port == 8000 and config.replicas == (A,)
