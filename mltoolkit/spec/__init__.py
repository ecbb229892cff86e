"""Typed, validated descriptions of what to deploy and where."""

from mltoolkit.spec.cluster import (
    ClusterSpec,
    NodePoolSpec,
    check_labels,
    original_sketch_deployment,
)
from mltoolkit.spec.deployment import BalancerSpec, BatchingSpec, DeploymentSpec, ModelSpec
from mltoolkit.spec.quantities import cpu_millicores, memory_bytes

__all__ = [
    "BalancerSpec",
    "BatchingSpec",
    "ClusterSpec",
    "DeploymentSpec",
    "ModelSpec",
    "NodePoolSpec",
    "check_labels",
    "cpu_millicores",
    "memory_bytes",
    "original_sketch_deployment",
]
