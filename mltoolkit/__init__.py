"""mltoolkit: load-balanced ML serving, locally or on Google Kubernetes Engine, from a notebook.

describe (``DeploymentSpec``, ``ClusterSpec``) → ``target.plan`` → ``target.up`` → use
(``target.endpoint.predict``) → measure (``load_test``, ``target.utilization``) → ``target.down``,
with the same calls on ``LocalTarget`` and ``GKETarget``.
"""

from mltoolkit.endpoint import Endpoint, EndpointError
from mltoolkit.errors import MltoolkitError, SpecError
from mltoolkit.gcp.target import GKETarget
from mltoolkit.local import LocalTarget, LocalTargetError
from mltoolkit.observe import (
    balance,
    load_test,
    plot_latency,
    plot_utilization,
    summarize,
)
from mltoolkit.spec import (
    BalancerSpec,
    BatchingSpec,
    ClusterSpec,
    DeploymentSpec,
    ModelSpec,
    NodePoolSpec,
    original_sketch_deployment,
)
from mltoolkit.stack.errors import StackError
from mltoolkit.widgets import MonitorPanel, ProvisionPanel

__all__ = [
    "BalancerSpec",
    "BatchingSpec",
    "ClusterSpec",
    "DeploymentSpec",
    "Endpoint",
    "EndpointError",
    "GKETarget",
    "LocalTarget",
    "LocalTargetError",
    "MltoolkitError",
    "ModelSpec",
    "MonitorPanel",
    "NodePoolSpec",
    "ProvisionPanel",
    "SpecError",
    "StackError",
    "balance",
    "load_test",
    "original_sketch_deployment",
    "plot_latency",
    "plot_utilization",
    "summarize",
]
