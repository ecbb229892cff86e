"""Load-balancing policies: pure choices over replica states, registered by name.

A policy never performs I/O; the proxy asks ``policy.choose(replicas)`` for each request and
updates the replica states itself: it increments and decrements ``in_flight`` around each
attempt, counts ``served`` and ``failed``, and calls ``record_answer`` with each answer's latency
and the replica's own ``X-In-Flight`` header, so load-aware policies can read them here.

A policy may also return ``None`` while healthy candidates exist (a late-binding policy holding a
request until a replica frees up): the proxy then waits for the next change of any replica's state
(an attempt finishing, a health change) and asks again, until the request's deadline. Policies
that always pick a candidate when one exists (all of those below) never make the proxy wait.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar, Sequence


@dataclass
class ReplicaState:
    """What the balancer knows about one replica.

    ``served`` counts attempts the replica answered with a status below 500; ``failed`` counts
    attempts without an answer (connection failure, timeout) or answered with a 5xx.
    ``reported_in_flight`` is the replica's own count from its last ``X-In-Flight`` header (None
    until one arrives); ``last_latency_s`` the time of the last answered attempt, send to last byte.
    ``consecutive_failures`` counts failed health probes in a row (reset by a passing probe);
    ``answered_since_probe`` the attempts answered (status below 500) since the last probe.
    """

    name: str
    url: str
    node: str = ""
    weight: float = 1.0
    healthy: bool = True
    in_flight: int = 0
    served: int = 0
    failed: int = 0
    reported_in_flight: int | None = None
    last_latency_s: float | None = None
    consecutive_failures: int = 0
    answered_since_probe: int = 0

    def record_answer(self, latency_s: float, reported_in_flight: int | None) -> None:
        """Note what one answered attempt taught us about this replica's load."""
        self.last_latency_s = latency_s
        if reported_in_flight is not None:
            self.reported_in_flight = reported_in_flight


class Policy:
    """Base class: subclasses set ``name`` and implement ``choose``."""

    name: ClassVar[str]
    registry: ClassVar[dict[str, type[Policy]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        Policy.registry[cls.name] = cls

    @classmethod
    def make(cls, name: str) -> Policy:
        try:
            return cls.registry[name]()
        except KeyError:
            raise ValueError(
                f"unknown balancer policy {name!r}; choose one of {policy_names()}"
            ) from None

    def choose(
        self, replicas: Sequence[ReplicaState], exclude: frozenset[str] = frozenset()
    ) -> ReplicaState | None:
        """The replica for the next request, among healthy ones not in ``exclude``; None if none."""
        raise NotImplementedError


def candidates(
    replicas: Sequence[ReplicaState], exclude: frozenset[str] = frozenset()
) -> list[ReplicaState]:
    """The replicas a request may go to: healthy, positive weight, not excluded."""
    return [r for r in replicas if r.healthy and r.weight > 0 and r.name not in exclude]


class RoundRobin(Policy):
    """Each healthy replica in turn, whatever its load; weights give proportional turns.

    Smooth weighted round robin (as in nginx): each pick adds every candidate's weight to its
    running credit, takes the candidate with the most credit and charges it the total weight.
    Equal weights give a plain rotation; weights 3:1 give ``a a b a`` per cycle of four.
    """

    name = "round_robin"

    def __init__(self) -> None:
        self._credit: dict[str, float] = {}

    def choose(
        self, replicas: Sequence[ReplicaState], exclude: frozenset[str] = frozenset()
    ) -> ReplicaState | None:
        chosen_from = candidates(replicas, exclude)
        if not chosen_from:
            return None
        for replica in chosen_from:
            self._credit[replica.name] = self._credit.get(replica.name, 0.0) + replica.weight
        best = max(chosen_from, key=lambda r: self._credit[r.name])
        self._credit[best.name] -= sum(r.weight for r in chosen_from)
        return best


class LeastRequest(Policy):
    """The replica with the fewest requests in flight relative to its weight; ties go in turn."""

    name = "least_request"

    def __init__(self) -> None:
        self._counter = itertools.count()

    def choose(
        self, replicas: Sequence[ReplicaState], exclude: frozenset[str] = frozenset()
    ) -> ReplicaState | None:
        chosen_from = candidates(replicas, exclude)
        if not chosen_from:
            return None
        best = min(r.in_flight / r.weight for r in chosen_from)
        tied = [r for r in chosen_from if r.in_flight / r.weight == best]
        return tied[next(self._counter) % len(tied)]


def policy_names() -> list[str]:
    """Names a BalancerSpec may use, sorted."""
    return sorted(Policy.registry)
