"""Request routing across replicas: an HTTP reverse proxy with pluggable policies.

In-process: ``server = await start_server(BalancerConfig(...))`` (``server.url``,
``server.balancer``, ``await server.close()``); as a process: ``python -m mltoolkit.balancer``.
"""

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
from mltoolkit.balancer.server import BalancerServer, start_server

__all__ = [
    "Balancer",
    "BalancerConfig",
    "BalancerServer",
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
    "parse_replica",
    "policy_names",
    "start_server",
]
