"""Measuring a deployment: load tests and utilization as pandas DataFrames, summaries, plots."""

from mltoolkit.observe.loadtest import load_test
from mltoolkit.observe.plots import (
    plot_cpu_by_node,
    plot_latency,
    plot_latency_distribution,
    plot_latency_over_time,
    plot_served_by_replica,
    plot_utilization,
)
from mltoolkit.observe.policy_comparison import (
    PolicyComparison,
    compare_policies,
    fleet_capacity_rps,
)
from mltoolkit.observe.progress import LoadTestProgress
from mltoolkit.observe.summary import (
    balance,
    coefficient_of_variation,
    served_per_replica,
    summarize,
    utilization_balance,
)
from mltoolkit.observe.traffic import TrafficSnapshot, latency_frame, traffic_snapshot, traffic_window
from mltoolkit.observe.utilization import ProcessRef, ProcessSampler, by_node

# kube_metrics needs the `kubernetes` client (the `gcp` extra): imported on first use.
_KUBE_METRICS_NAMES = ("KubeMetricsError", "MetricsServerUnavailableError", "node_utilization")
_KUBE_TRAFFIC_NAMES = ("balancer_traffic",)


def __getattr__(name: str) -> object:
    if name in _KUBE_METRICS_NAMES:
        from mltoolkit.observe import kube_metrics

        return getattr(kube_metrics, name)
    if name in _KUBE_TRAFFIC_NAMES:
        from mltoolkit.observe import kube_traffic

        return getattr(kube_traffic, name)
    raise AttributeError(f"module 'mltoolkit.observe' has no attribute {name!r}")


__all__ = [
    "KubeMetricsError",
    "LoadTestProgress",
    "MetricsServerUnavailableError",
    "PolicyComparison",
    "ProcessRef",
    "ProcessSampler",
    "TrafficSnapshot",
    "balance",
    "balancer_traffic",
    "by_node",
    "coefficient_of_variation",
    "compare_policies",
    "fleet_capacity_rps",
    "latency_frame",
    "load_test",
    "node_utilization",
    "plot_cpu_by_node",
    "plot_latency",
    "plot_latency_distribution",
    "plot_latency_over_time",
    "plot_served_by_replica",
    "plot_utilization",
    "served_per_replica",
    "summarize",
    "traffic_snapshot",
    "traffic_window",
    "utilization_balance",
]
