"""K independent balancers over one fleet, simulated: a discrete-event simulation that drives the
real policy objects (``mltoolkit.balancer.policies``) on a simulated clock.

An L4 front (what a cloud load balancer or kube-proxy does) sends each request to one of
``balancers`` balancers at random. Each balancer has its own policy instance and its own
``ReplicaState`` per replica, and sees only its own requests: its ``in_flight`` counts what it sent
and has not had answered. The replicas are shared: each serves its requests FIFO on its slots (as
``SimReplica`` does; service time = cost / speed) and reports, with every answer, how many other
requests it holds (``X-In-Flight``), which the balancer records (``record_answer``) as the proxy
does. A policy that holds a request (``late_binding`` returning None) gets it offered again
whenever one of its own attempts ends.

Pure Python, no I/O; deterministic for a given trace and seed. Latencies are from the client's
send to the answer, including any time held in a balancer; the network takes no time.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

import numpy as np

from mltoolkit.balancer.policies import Policy, ReplicaState, load_sharing
from mltoolkit.errors import SpecError
from mltoolkit.sim.fleet_spec import FleetSpec
from mltoolkit.sim.ideal import IdealResult
from mltoolkit.sim.trace import ArrivalTrace

MAX_BALANCERS = 64


@dataclass(frozen=True)
class BalancedResult(IdealResult):
    """``IdealResult``'s fields, plus ``balancer``: which balancer (0 .. K-1) took each request,
    and ``load_sharing``: what each balancer learned from the replicas' reports at the end
    (requests a replica holds per request of its own; see ``policies.load_sharing``)."""

    balancer: np.ndarray
    load_sharing: np.ndarray


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Replica:
    """A shared replica: ``slots`` served FIFO; ``held`` = requests waiting or in service."""

    def __init__(self, speed: float, slots: int) -> None:
        self.speed = speed
        self.free = slots
        self.waiting: deque[int] = deque()
        self.held = 0


def simulate_balancers(
    fleet: FleetSpec,
    trace: ArrivalTrace,
    policy: str,
    balancers: int = 1,
    *,
    seed: int = 0,
) -> BalancedResult:
    """Replay ``trace`` through ``balancers`` independent balancers running ``policy`` (a name
    from ``policy_names()``) in front of ``fleet``; the front picks a balancer at random per
    request (stream ``seed``)."""
    whole = isinstance(balancers, int) and not isinstance(balancers, bool)
    if not whole or not 1 <= balancers <= MAX_BALANCERS:
        raise SpecError("balancers", balancers, f"a whole number from 1 to {MAX_BALANCERS}")
    if not isinstance(trace, ArrivalTrace):
        raise SpecError("trace", type(trace).__name__, "an ArrivalTrace")
    clock = _Clock()
    policies = []
    for _ in range(balancers):
        instance = Policy.make(policy)  # ValueError names the allowed policies
        instance.clock = clock  # type: ignore[method-assign]
        policies.append(instance)
    states = [
        [ReplicaState(name=r.name, url=f"sim://{r.name}") for r in fleet.replicas]
        for _ in range(balancers)
    ]
    replicas = [_Replica(r.speed, r.slots) for r in fleet.replicas]
    times, costs = trace.times_s, trace.costs_s
    n = len(trace)
    front = np.random.default_rng(seed).integers(0, balancers, size=n)

    latency = np.full(n, np.nan)
    wait = np.full(n, np.nan)
    taken_by = np.full(n, -1, dtype=int)
    busy = np.zeros(len(replicas))
    served = np.zeros(len(replicas), dtype=int)
    sent_at = np.zeros(n)
    ticket = np.zeros(n, dtype=int)
    held: list[deque[int]] = [deque() for _ in range(balancers)]
    finishing: list[tuple[float, int]] = []  # (finish time, job), a heap
    last_finish = 0.0

    def start(job: int, index: int, now: float) -> None:
        replica = replicas[index]
        replica.free -= 1
        service = costs[job] / replica.speed
        wait[job] = now - times[job]
        busy[index] += service
        heapq.heappush(finishing, (now + service, job))

    def dispatch(b: int, job: int, now: float) -> bool:
        chosen = policies[b].choose(states[b])
        if chosen is None:
            return False
        index = next(i for i, s in enumerate(states[b]) if s is chosen)
        taken_by[job] = index
        sent_at[job] = now
        ticket[job] = chosen.begin_attempt(now)
        replica = replicas[index]
        replica.held += 1
        if replica.free > 0:
            start(job, index, now)
        else:
            replica.waiting.append(job)
        return True

    next_job = 0
    while next_job < n or finishing:
        arrival = times[next_job] if next_job < n else np.inf
        if finishing and finishing[0][0] <= arrival:
            now, job = heapq.heappop(finishing)
            clock.now = now
            index = taken_by[job]
            replica = replicas[index]
            replica.free += 1
            replica.held -= 1
            if replica.waiting:
                start(replica.waiting.popleft(), index, now)
            latency[job] = now - times[job]
            served[index] += 1
            last_finish = max(last_finish, now)
            b = int(front[job])
            state = states[b][index]
            state.end_attempt(int(ticket[job]), worked=True)
            state.record_answer(now - sent_at[job], replica.held, now=now)
            state.served += 1
            while held[b] and dispatch(b, held[b][0], now):
                held[b].popleft()
        else:
            job, next_job = next_job, next_job + 1
            clock.now = arrival
            b = int(front[job])
            if held[b] or not dispatch(b, job, arrival):
                held[b].append(job)
    unanswered = np.isnan(latency)
    if unanswered.any():  # a policy that holds requests with every replica idle: a bug there
        raise RuntimeError(f"{int(unanswered.sum())} request(s) never dispatched by {policy!r}")
    return BalancedResult(
        latency_s=latency, wait_s=wait, replica=taken_by, busy_s=busy, served=served,
        finish_s=last_finish, balancer=front,
        load_sharing=np.array([load_sharing(s) for s in states]),
    )
