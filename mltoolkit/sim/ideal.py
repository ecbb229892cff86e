"""The ideal: a discrete-event simulation of ONE central FIFO queue feeding every replica's slots.

A request waits in the single queue until some slot is free. When several slots are free it takes
one on the fastest replica (ties: the replica listed first) -- what a balancer that holds requests
and hands them out only to free slots would do. Fastest-free is the natural reference, not a proven
optimum: with very unequal speeds, waiting for a fast slot can sometimes beat starting on a slow one.
Service time = cost / speed of the replica that takes the request. Pure Python, no I/O.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mltoolkit.errors import SpecError
from mltoolkit.sim.fleet_spec import FleetSpec
from mltoolkit.sim.trace import ArrivalTrace


@dataclass(frozen=True)
class IdealResult:
    """Per request (trace order): ``latency_s`` (finish - arrival), ``wait_s`` (start - arrival),
    ``replica`` (index into the fleet). Per replica: ``busy_s`` (slot-seconds of service),
    ``served`` (requests). ``finish_s`` is when the last request finished."""

    latency_s: np.ndarray
    wait_s: np.ndarray
    replica: np.ndarray
    busy_s: np.ndarray
    served: np.ndarray
    finish_s: float


def simulate_central_queue(
    times_s: Sequence[float] | np.ndarray,
    costs_s: Sequence[float] | np.ndarray,
    speeds: Sequence[float],
    slots: Sequence[int],
) -> IdealResult:
    """Run the central-queue simulation over arrivals ``times_s`` with ``costs_s``, on replicas
    with the given ``speeds`` and ``slots`` (one entry per replica)."""
    trace = ArrivalTrace(np.asarray(times_s, dtype=float), np.asarray(costs_s, dtype=float))
    if len(speeds) != len(slots) or not speeds:
        raise SpecError("slots", list(slots), f"one slot count per speed ({len(speeds)} speeds, at least 1)")
    if any(not s > 0 for s in speeds):
        raise SpecError("speeds", list(speeds), "speeds > 0")
    if any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in slots):
        raise SpecError("slots", list(slots), "whole numbers >= 1")

    times, costs = trace.times_s, trace.costs_s
    n = times.size
    latency = np.empty(n)
    wait = np.empty(n)
    taken_by = np.empty(n, dtype=int)
    busy = np.zeros(len(speeds))
    served = np.zeros(len(speeds), dtype=int)

    # Free slots, fastest first, then in fleet order: (-speed, replica index, slot number).
    free: list[tuple[float, int, int]] = [
        (-float(speed), i, j) for i, (speed, k) in enumerate(zip(speeds, slots)) for j in range(k)
    ]
    heapq.heapify(free)
    running: list[tuple[float, int, tuple[float, int, int]]] = []  # (finish time, job, slot)
    queue: deque[int] = deque()
    next_job = 0
    last_finish = 0.0

    while next_job < n or running:
        # The next instant anything happens; at that instant, free every slot that finishes and
        # enqueue every arrival before handing out slots, so ties do not depend on event order.
        now = min(
            times[next_job] if next_job < n else np.inf,
            running[0][0] if running else np.inf,
        )
        while running and running[0][0] <= now:
            _, _, slot = heapq.heappop(running)
            heapq.heappush(free, slot)
        while next_job < n and times[next_job] <= now:
            queue.append(next_job)
            next_job += 1
        while queue and free:
            job = queue.popleft()
            slot = heapq.heappop(free)
            replica = slot[1]
            service = costs[job] / speeds[replica]
            finish = now + service
            wait[job] = now - times[job]
            latency[job] = finish - times[job]
            taken_by[job] = replica
            busy[replica] += service
            served[replica] += 1
            last_finish = max(last_finish, finish)
            heapq.heappush(running, (finish, job, slot))

    return IdealResult(
        latency_s=latency, wait_s=wait, replica=taken_by, busy_s=busy, served=served,
        finish_s=last_finish,
    )


def ideal_for(fleet: FleetSpec, trace: ArrivalTrace) -> IdealResult:
    """The central-queue ideal of ``fleet`` (its speeds and slots) over ``trace``."""
    return simulate_central_queue(
        trace.times_s,
        trace.costs_s,
        [r.speed for r in fleet.replicas],
        [r.slots for r in fleet.replicas],
    )
