"""Fake targets for the panel tests: they record every call and answer in the real shapes.

``FakeLocalTarget`` reports progress as ``LocalTarget`` does (``progress(line)``; ``down()``
without progress); ``FakeGKETarget`` as ``GKETarget`` does (``progress(None, text)`` then
``progress(snapshot, line)`` with real ``ProgressSnapshot`` objects; ``down(progress=...)``).
Any method can be held (``hold("up")``) to look at the panel while the work runs, or made to
fail (``fail("up", error)``).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd

from mltoolkit.planning import Plan

from mltoolkit.endpoint import Endpoint

SAFETY_TIMEOUT_S = 30.0


class FakeTarget:
    def __init__(self, request: Any = None) -> None:
        self.request = request
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.is_up = False
        self.entered: dict[str, threading.Event] = {}
        self._release: dict[str, threading.Event] = {}
        self._failures: dict[str, BaseException] = {}
        #: replica name → (node, latency in seconds) of the requests load_test answers
        self.replicas = {"digits-0": ("node-0", 0.010), "digits-1": ("node-1", 0.030)}
        #: the replicas answering requests 0, 1, 2, ... in turn (cycled)
        self.pattern = list(self.replicas)
        #: node → cpu_percent of utilization() readings
        self.cpu_percent = {"node-0": 40.0, "node-1": 60.0}
        #: replica → requests the balancers served in each latency() window (none: no traffic)
        self.traffic: dict[str, int] = {}

    # ---------------------------------------------------------------- test controls

    def hold(self, method: str) -> threading.Event:
        """Make ``method`` wait (once entered) until the returned event is set."""
        self._release[method] = threading.Event()
        return self._release[method]

    def fail(self, method: str, error: BaseException) -> None:
        self._failures[method] = error

    def called(self, method: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(args, kwargs) for name, args, kwargs in self.calls if name == method]

    def _enter(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((method, args, kwargs))
        self.entered.setdefault(method, threading.Event()).set()

    def _wait_and_maybe_fail(self, method: str) -> None:
        release = self._release.get(method)
        if release is not None:
            assert release.wait(SAFETY_TIMEOUT_S), f"test never released {method}"
        if method in self._failures:
            raise self._failures[method]

    # ---------------------------------------------------------------- measure

    def load_test(self, **kwargs: Any) -> pd.DataFrame:
        """``rate × duration`` requests answered by the replicas in ``pattern`` order, each
        replica with its own fixed latency: a frame in the ``load_test`` contract's shape."""
        self._enter("load_test", **kwargs)
        self._wait_and_maybe_fail("load_test")
        n = int(kwargs["rate"] * kwargs["duration"])
        replica = [self.pattern[i % len(self.pattern)] for i in range(n)]
        return pd.DataFrame(
            {
                "scheduled_s": np.arange(n, dtype=float) / kwargs["rate"],
                "latency_s": np.array([self.replicas[r][1] for r in replica], dtype=float),
                "status": np.full(n, 200, dtype=np.int64),
                "replica": pd.Series(replica, dtype=object),
                "error": pd.Series([None] * n, dtype=object),
            }
        )

    def latency(self, window_s: float | None = None, by: str = "replica") -> pd.DataFrame:
        """``latency()`` in its contract's shape: each replica served ``traffic[replica]``
        requests at its fixed latency."""
        from mltoolkit.balancer.metrics import ReplicaTraffic, metrics_document
        from mltoolkit.observe.traffic import latency_frame, traffic_snapshot

        self._enter("latency", window_s=window_s, by=by)
        self._wait_and_maybe_fail("latency")
        served = []
        for name, (node, latency_s) in self.replicas.items():
            replica = ReplicaTraffic(name, node)
            for _ in range(self.traffic.get(name, 0)):
                replica.observe(latency_s, 200)
            served.append(replica)
        return latency_frame(traffic_snapshot([metrics_document(served)], at=0.0), window_s, by)

    def utilization(self) -> pd.DataFrame:
        """One by-node reading in the utilization contract's shape."""
        self._enter("utilization")
        self._wait_and_maybe_fail("utilization")
        now = pd.Timestamp.now(tz="UTC")
        rows = [
            {
                "time": now, "node": node, "cpu_cores": percent / 100 * 0.5, "cpu_percent": percent,
                "memory_bytes": 100 * 2**20, "memory_percent": 20.0, "replicas": 1,
                "in_flight": 0, "served": 10,
            }
            for node, percent in self.cpu_percent.items()
        ]
        frame = pd.DataFrame(rows)
        return frame.astype({"time": "datetime64[ns, UTC]", "in_flight": "Int64", "served": "Int64"})


class FakeLocalTarget(FakeTarget):
    def plan(self, spec: Any) -> Plan:
        self._enter("plan", spec)
        self._wait_and_maybe_fail("plan")
        rows = [
            {"kind": "replica", "name": f"{spec.model.name}-{i}", "node": f"node-{i}", "port": "auto",
             "command": "python -m mltoolkit.serving", "cpu": spec.cpu, "memory": spec.memory,
             "usd_per_hour": 0.0}
            for i in range(spec.replicas)
        ]
        rows.append({"kind": "balancer", "name": "balancer", "node": "node-0", "port": "auto",
                     "command": "python -m mltoolkit.balancer", "cpu": None, "memory": None,
                     "usd_per_hour": 0.0})
        return Plan(title="processes on this machine", resources=pd.DataFrame(rows))

    def up(self, spec: Any, *, progress: Any = None) -> Endpoint:
        self._enter("up", spec, progress=progress)
        progress(f"starting {spec.replicas} replica(s) and a balancer")
        self._wait_and_maybe_fail("up")
        progress(f"endpoint http://127.0.0.1:8123 ready: model {spec.model.name}")
        self.is_up = True
        return Endpoint("http://127.0.0.1:8123", spec.model.name)

    def down(self) -> None:
        self._enter("down")
        self._wait_and_maybe_fail("down")
        self.is_up = False


class FakeGKETarget(FakeTarget):
    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.cost_per_hour = 0.2527

    def plan(self, spec: Any) -> Plan:
        self._enter("plan", spec)
        self._wait_and_maybe_fail("plan")
        resources = pd.DataFrame(
            {"type": ["gcp:container/cluster:Cluster", "gcp:container/nodePool:NodePool"],
             "name": ["ml-cluster", "ml-pool-default"], "parent": ["cluster", "cluster"],
             "settings": ["location=us-central1-a", "machine=e2-standard-4, nodes=1-3"]}
        )
        costs = pd.DataFrame(
            {"resource": ["ml-cluster", "ml-pool-default"], "item": ["GKE cluster fee", "node VM"],
             "quantity": [1.0, 1.0], "unit": ["cluster", "node"],
             "unit_price_per_hour": [0.10, 0.1527], "usd_per_hour": [0.10, 0.1527]}
        )
        return Plan(
            title="cluster ml", resources=resources, costs=costs, cost_per_hour=self.cost_per_hour,
            cost_per_month=self.cost_per_hour * 730, notes=("Prices: us-central1 list prices.",),
        )

    def up(self, spec: Any, *, progress: Any = None) -> Endpoint:
        from mltoolkit.stack.progress import ProgressSnapshot

        self._enter("up", spec, progress=progress)
        progress(None, f"up dev: 4 resources planned, estimated ${self.cost_per_hour:.2f}/hour")
        progress(ProgressSnapshot("up", "dev", planned=4, created=1, current_step="creating cluster"),
                 "created gcp:compute/network:Network ml")
        self._wait_and_maybe_fail("up")
        progress(ProgressSnapshot("up", "dev", planned=4, created=4, result="succeeded", elapsed_s=2.0), None)
        self.is_up = True
        return Endpoint("http://34.118.20.7", spec.model.name)

    def down(self, *, progress: Any = None) -> bool:
        self._enter("down", progress=progress)
        self._wait_and_maybe_fail("down")
        progress(None, "destroy dev: 4 resources to delete")
        return True


class Factory:
    """A ``make_target`` for the provision panel that builds fakes and remembers them."""

    def __init__(self) -> None:
        self.built: list[FakeTarget] = []
        self.error: BaseException | None = None

    def __call__(self, request: Any) -> FakeTarget:
        if self.error is not None:
            raise self.error
        target = FakeGKETarget(request) if request.kind == "gke" else FakeLocalTarget(request)
        self.built.append(target)
        return target

    @property
    def last(self) -> FakeTarget:
        return self.built[-1]

