"""What the panels need from a target, and how the provision panel builds one.

``LocalTarget`` and ``GKETarget`` both satisfy these protocols; tests use a small fake. The
two differ in one place the panels care about: ``LocalTarget`` reports progress as text lines
(``progress(line)``), ``GKETarget`` as snapshots of its progress model (``progress(snapshot,
line)``, and ``progress(None, text)`` for announcements); ``LocalTarget.down`` takes no progress
at all. :func:`call_with_progress` passes ``progress`` only where a method accepts it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import pandas as pd

from mltoolkit.widgets.forms import GKE, LOCAL, TARGET_KINDS


class ProvisionTarget(Protocol):
    """plan → up → down, as ``LocalTarget`` and ``GKETarget`` offer them."""

    def plan(self, spec: Any) -> Any: ...

    def up(self, spec: Any, *, progress: Any = None) -> Any: ...

    def down(self) -> Any: ...


class MonitoredTarget(Protocol):
    """A running target the monitor panel measures."""

    def load_test(self, **kwargs: Any) -> pd.DataFrame: ...

    def utilization(self) -> pd.DataFrame: ...


@dataclass(frozen=True)
class TargetRequest:
    """Which target to build: ``kind`` "local" (``nodes``) or "gke" (``cluster``, ``stack``,
    ``backend``; None = the local state directory)."""

    kind: str
    nodes: int = 1
    cluster: Any = None
    stack: str = "dev"
    backend: str | None = None

    def __post_init__(self) -> None:
        from mltoolkit.errors import SpecError

        if self.kind not in TARGET_KINDS:
            raise SpecError("target", self.kind, f"one of {TARGET_KINDS}")
        if self.kind == GKE and self.cluster is None:
            raise SpecError("ClusterSpec", None, "a ClusterSpec for the GKE target")


TargetFactory = Callable[[TargetRequest], ProvisionTarget]


def build_target(request: TargetRequest) -> ProvisionTarget:
    """The real target for a request (quiet: the panel passes its own progress to each call).

    Constructing validates (``LocalTarget.nodes``, ``stack``, ``backend``) and starts nothing.
    """
    if request.kind == LOCAL:
        from mltoolkit.local import LocalTarget

        return LocalTarget(nodes=request.nodes, progress=False)
    from mltoolkit.gcp.target import GKETarget

    return GKETarget(request.cluster, stack=request.stack, backend=request.backend, progress=False)


def accepts_progress(method: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "progress" or p.kind is p.VAR_KEYWORD for p in parameters)


def call_with_progress(method: Callable[..., Any], *args: Any, progress: Any) -> Any:
    """``method(*args, progress=progress)`` if it takes a progress argument, else ``method(*args)``."""
    if accepts_progress(method):
        return method(*args, progress=progress)
    return method(*args)
