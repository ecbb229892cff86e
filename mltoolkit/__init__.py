"""mltoolkit: load-balanced ML serving, locally or on Google Kubernetes Engine, from a notebook."""

from mltoolkit.errors import MltoolkitError, SpecError
from mltoolkit.spec import BalancerSpec, BatchingSpec, DeploymentSpec, ModelSpec

__all__ = [
    "BalancerSpec",
    "BatchingSpec",
    "DeploymentSpec",
    "MltoolkitError",
    "ModelSpec",
    "SpecError",
]
