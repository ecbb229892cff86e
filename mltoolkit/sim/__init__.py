"""A simulated fleet for balancer benchmarks and tests, and the ideal it is measured against.

- ``FleetSpec`` / ``ReplicaSpec`` / ``CostDistribution``: typed fleet descriptions; ``uneven_fleet``.
- ``Fleet``: many HTTP replicas emulating service time in one asyncio loop
  (``python -m mltoolkit.sim fleet`` from a shell); ``FleetProcess`` runs one as a child process.
- ``ArrivalTrace``, ``poisson_trace``, ``trace_at_utilization``: open-loop arrival traces.
- ``simulate_central_queue`` / ``ideal_for``: discrete-event simulation of one central FIFO queue.
- ``simulate_balancers``: discrete-event simulation of K independent balancers (the real policy
  objects, on a simulated clock) behind a random front, over one shared fleet.
- ``replay`` / ``replay_async``: send a trace to a URL open-loop, one row per request.
"""

from mltoolkit.sim.balancers import BalancedResult, simulate_balancers
from mltoolkit.sim.costs import CostDistribution
from mltoolkit.sim.fleet import Fleet
from mltoolkit.sim.fleet_spec import FleetSpec, ReplicaSpec, uneven_fleet
from mltoolkit.sim.ideal import IdealResult, ideal_for, simulate_central_queue
from mltoolkit.sim.metrics import RunMetrics, ideal_metrics, measured_metrics
from mltoolkit.sim.process import FleetProcess
from mltoolkit.sim.replay import replay, replay_async
from mltoolkit.sim.trace import ArrivalTrace, poisson_trace, trace_at_utilization

__all__ = [
    "ArrivalTrace",
    "BalancedResult",
    "CostDistribution",
    "Fleet",
    "FleetProcess",
    "FleetSpec",
    "IdealResult",
    "ReplicaSpec",
    "RunMetrics",
    "ideal_for",
    "ideal_metrics",
    "measured_metrics",
    "poisson_trace",
    "replay",
    "replay_async",
    "simulate_balancers",
    "simulate_central_queue",
    "trace_at_utilization",
    "uneven_fleet",
]
