"""Load-balancing policies: pure choices over replica states, registered by name.

A policy never performs I/O; the proxy asks ``policy.choose(replicas)`` for each request and
updates the replica states itself.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar, Sequence


@dataclass
class ReplicaState:
    """What the balancer knows about one replica."""

    name: str
    url: str
    node: str = ""
    weight: float = 1.0
    healthy: bool = True
    in_flight: int = 0
    served: int = 0
    failed: int = 0


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


def _candidates(
    replicas: Sequence[ReplicaState], exclude: frozenset[str]
) -> list[ReplicaState]:
    return [r for r in replicas if r.healthy and r.name not in exclude]


class RoundRobin(Policy):
    """Each healthy replica in turn, whatever its load."""

    name = "round_robin"

    def __init__(self) -> None:
        self._counter = itertools.count()

    def choose(
        self, replicas: Sequence[ReplicaState], exclude: frozenset[str] = frozenset()
    ) -> ReplicaState | None:
        candidates = _candidates(replicas, exclude)
        if not candidates:
            return None
        return candidates[next(self._counter) % len(candidates)]


class LeastRequest(Policy):
    """The replica with the fewest requests in flight relative to its weight; ties go in turn."""

    name = "least_request"

    def __init__(self) -> None:
        self._counter = itertools.count()

    def choose(
        self, replicas: Sequence[ReplicaState], exclude: frozenset[str] = frozenset()
    ) -> ReplicaState | None:
        candidates = _candidates(replicas, exclude)
        if not candidates:
            return None
        best = min(r.in_flight / r.weight for r in candidates)
        tied = [r for r in candidates if r.in_flight / r.weight == best]
        return tied[next(self._counter) % len(tied)]


def policy_names() -> list[str]:
    """Names a BalancerSpec may use, sorted."""
    return sorted(Policy.registry)
