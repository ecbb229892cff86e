"""Request routing across replicas: an HTTP reverse proxy with pluggable policies.

In-process: ``create_app(BalancerConfig(...))``; as a process: ``python -m mltoolkit.balancer``.
"""

from mltoolkit.balancer.app import BALANCER_KEY, create_app
from mltoolkit.balancer.config import BalancerConfig, ReplicaTarget, parse_replica
from mltoolkit.balancer.policies import (
    DEFAULT_POLICY,
    Ewma,
    LateBinding,
    LeastRequest,
    Policy,
    PowerOfTwo,
    RandomChoice,
    ReplicaState,
    RoundRobin,
    policy_names,
)
from mltoolkit.balancer.proxy import Balancer

__all__ = [
    "BALANCER_KEY",
    "Balancer",
    "BalancerConfig",
    "DEFAULT_POLICY",
    "Ewma",
    "LateBinding",
    "LeastRequest",
    "Policy",
    "PowerOfTwo",
    "RandomChoice",
    "ReplicaState",
    "ReplicaTarget",
    "RoundRobin",
    "create_app",
    "parse_replica",
    "policy_names",
]
