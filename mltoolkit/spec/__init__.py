"""Typed, validated descriptions of what to deploy and where."""

from mltoolkit.spec.deployment import BalancerSpec, BatchingSpec, DeploymentSpec, ModelSpec
from mltoolkit.spec.quantities import cpu_millicores, memory_bytes

__all__ = [
    "BalancerSpec",
    "BatchingSpec",
    "DeploymentSpec",
    "ModelSpec",
    "cpu_millicores",
    "memory_bytes",
]
