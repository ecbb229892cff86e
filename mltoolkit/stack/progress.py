"""A small, thread-safe model of a running stack operation, fed by engine events.

Events arrive on the SDK's worker thread (a gRPC thread or the event-log tailer), never on the
notebook's thread. :meth:`ProgressModel.handle` updates the counts under a lock and then calls
each listener with an immutable :class:`ProgressSnapshot`; listeners (the renderers) must be
safe to call from any thread. :meth:`ProgressModel.snapshot` can be read from any thread.

Counted resources are the ones a user would call resources: the stack itself, component
resources (groupings) and Pulumi's default providers are left out.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from mltoolkit.stack.events import STACK_TYPE, StackEvent, resource_label, summarize_message

_VERBS = {
    "create": "creating",
    "update": "updating",
    "delete": "deleting",
    "replace": "replacing",
    "create-replacement": "replacing",
    "delete-replaced": "deleting (replaced)",
    "same": "checking",
    "refresh": "refreshing",
    "read": "reading",
    "import": "importing",
}
# the operation a finished step counts as
_DONE = {
    "create": "created",
    "update": "updated",
    "replace": "updated",
    "create-replacement": "updated",
    "delete": "deleted",
    "same": "unchanged",
    "refresh": "unchanged",
    "read": "unchanged",
    "import": "created",
}
MAX_DIAGNOSTICS = 20


def counts_as_resource(event: StackEvent) -> bool:
    if event.resource_type == STACK_TYPE or event.custom is False:
        return False
    if event.resource_type.startswith("pulumi:providers:") and event.name.startswith("default"):
        return False
    return bool(event.urn)


@dataclass(frozen=True)
class ProgressSnapshot:
    """Where an operation stands. ``planned`` is the number of resources expected (from the
    plan, raised as more are seen); ``in_progress`` the steps started and not finished
    (``"creating gcp:container/cluster:Cluster ml"``); ``result`` is None while running, then
    "succeeded", "failed" or "interrupted"."""

    operation: str
    stack: str
    planned: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: int = 0
    in_progress: tuple[str, ...] = ()
    current_step: str = "starting"
    elapsed_s: float = 0.0
    result: str | None = None
    diagnostics: tuple[str, ...] = ()
    cost_per_hour: float | None = None

    @property
    def done(self) -> int:
        return self.created + self.updated + self.deleted + self.unchanged + self.failed

    @property
    def finished(self) -> bool:
        return self.result is not None

    def counts_text(self) -> str:
        return (
            f"{self.created} created, {self.updated} updated, {self.deleted} deleted, "
            f"{self.unchanged} unchanged, {self.failed} failed"
        )

    def line(self) -> str:
        """One status line: ``up dev: 3/7 resources — creating gcp:... (12.3 s)``."""
        total = max(self.planned, self.done)
        head = f"{self.operation} {self.stack}"
        if self.finished:
            return f"{head}: {self.result} — {self.counts_text()} in {self.elapsed_s:.1f} s"
        return f"{head}: {self.done}/{total} resources — {self.current_step} ({self.elapsed_s:.1f} s)"


Listener = Callable[[ProgressSnapshot, "str | None"], None]


@dataclass
class _State:
    planned: int = 0
    counts: dict[str, int] = field(
        default_factory=lambda: {"created": 0, "updated": 0, "deleted": 0, "unchanged": 0, "failed": 0}
    )
    seen: set[str] = field(default_factory=set)
    in_progress: dict[str, str] = field(default_factory=dict)  # urn -> step text, in start order
    finished: set[str] = field(default_factory=set)
    current_step: str = "starting"
    diagnostics: list[str] = field(default_factory=list)
    result: str | None = None
    ended_at: float | None = None


class ProgressModel:
    """Counts, current step and elapsed time of one operation (``up``, ``destroy``, ...).

    ``planned`` seeds the expected number of resources (e.g. the plan's row count).
    ``listeners`` are called with ``(snapshot, line)`` after each change that matters, where
    ``line`` is a one-line description of what just happened (or None).
    """

    def __init__(
        self,
        operation: str,
        stack: str,
        *,
        planned: int = 0,
        cost_per_hour: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.operation = operation
        self.stack = stack
        self.cost_per_hour = cost_per_hour
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._state = _State(planned=max(0, int(planned)))
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def _snapshot_locked(self) -> ProgressSnapshot:
        state = self._state
        end = state.ended_at if state.ended_at is not None else self._clock()
        return ProgressSnapshot(
            operation=self.operation,
            stack=self.stack,
            planned=max(state.planned, len(state.seen)),
            in_progress=tuple(state.in_progress.values()),
            current_step=state.current_step,
            elapsed_s=max(0.0, end - self._started),
            result=state.result,
            diagnostics=tuple(state.diagnostics),
            cost_per_hour=self.cost_per_hour,
            **state.counts,
        )

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            return self._snapshot_locked()

    def _notify(self, snapshot: ProgressSnapshot, line: str | None) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(snapshot, line)

    def handle(self, event: StackEvent) -> None:
        """Apply one engine event (called on the SDK's worker thread)."""
        with self._lock:
            line = self._apply_locked(event)
            if line is None:
                return
            snapshot = self._snapshot_locked()
        self._notify(snapshot, line)

    def _apply_locked(self, event: StackEvent) -> str | None:
        state = self._state
        if event.kind == "diagnostic":
            if event.severity not in ("error", "warning") or not event.message:
                return None
            text = f"{event.severity} ({resource_label(event.urn)}): {summarize_message(event.message)}"
            if len(state.diagnostics) < MAX_DIAGNOSTICS:
                state.diagnostics.append(text)
            return text
        if event.kind not in ("resource_pre", "resource_done", "resource_failed"):
            return None
        if not counts_as_resource(event):
            return None
        label = resource_label(event.urn)
        if event.kind == "resource_pre":
            state.seen.add(event.urn)
            step = f"{_VERBS.get(event.op, event.op)} {label}"
            state.in_progress[event.urn] = step
            state.current_step = step
            return step
        if event.urn in state.finished or (event.kind == "resource_done" and event.op == "delete-replaced"):
            state.in_progress.pop(event.urn, None)
            return None
        state.seen.add(event.urn)
        state.finished.add(event.urn)
        state.in_progress.pop(event.urn, None)
        outcome = "failed" if event.kind == "resource_failed" else _DONE.get(event.op, "updated")
        state.counts[outcome] += 1
        if event.planning:  # a preview: nothing happened yet
            outcome = f"would be {outcome}"
        if state.in_progress:
            state.current_step = next(reversed(state.in_progress.values()))
        else:
            state.current_step = "waiting for the next step"
        return f"{outcome} {label}"

    def finish(self, result: str) -> ProgressSnapshot:
        """Mark the operation finished ("succeeded", "failed", "interrupted"); notify once."""
        with self._lock:
            state = self._state
            if state.result is not None:
                return self._snapshot_locked()
            state.result = result
            state.ended_at = self._clock()
            state.in_progress.clear()
            state.current_step = result
            snapshot = self._snapshot_locked()
        self._notify(snapshot, None)
        return snapshot

    def expect(self, planned: int) -> None:
        """Raise the expected number of resources (never lowers it)."""
        with self._lock:
            self._state.planned = max(self._state.planned, int(planned))

