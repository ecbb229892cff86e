"""mltoolkit: load-balanced ML serving, locally or on Google Kubernetes Engine, from a notebook.

describe (``DeploymentSpec``, ``ClusterSpec``) → ``target.plan`` → ``target.up`` → use
(``target.endpoint.predict``) → measure (``load_test``, ``target.utilization``, ``target.latency``
of real traffic) → ``target.down``,
with the same calls on ``LocalTarget`` and ``GKETarget``.

Public names are imported on first use: the replica and balancer processes start with
``python -m mltoolkit.serving`` / ``mltoolkit.balancer``, which import this package, and must not
pay for pandas, matplotlib and ipywidgets they never use.
"""

from importlib import import_module
from typing import Any

from mltoolkit.errors import MltoolkitError, SpecError

_LAZY = {
    "BalancerSpec": "mltoolkit.spec",
    "BatchError": "mltoolkit.batch",
    "BatchInputError": "mltoolkit.batch",
    "BatchInterrupted": "mltoolkit.batch",
    "BatchingSpec": "mltoolkit.spec",
    "ClusterSpec": "mltoolkit.spec",
    "DeploymentSpec": "mltoolkit.spec",
    "Endpoint": "mltoolkit.endpoint",
    "EndpointError": "mltoolkit.endpoint",
    "GKETarget": "mltoolkit.gcp.target",
    "LibraryVersionError": "mltoolkit.spec.libraries",
    "LocalTarget": "mltoolkit.local",
    "LocalTargetError": "mltoolkit.local",
    "ModelSpec": "mltoolkit.spec",
    "MonitorPanel": "mltoolkit.widgets",
    "NodePoolSpec": "mltoolkit.spec",
    "Plan": "mltoolkit.planning",
    "ProvisionPanel": "mltoolkit.widgets",
    "StackError": "mltoolkit.stack.errors",
    "TrafficSnapshot": "mltoolkit.observe",
    "balance": "mltoolkit.observe",
    "compare_policies": "mltoolkit.observe",
    "latency_frame": "mltoolkit.observe",
    "load_test": "mltoolkit.observe",
    "original_sketch_deployment": "mltoolkit.spec",
    "plot_latency": "mltoolkit.observe",
    "plot_utilization": "mltoolkit.observe",
    "run_batch": "mltoolkit.batch",
    "summarize": "mltoolkit.observe",
    "traffic_snapshot": "mltoolkit.observe",
    "traffic_window": "mltoolkit.observe",
}

__all__ = sorted([*_LAZY, "MltoolkitError", "SpecError"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mltoolkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
