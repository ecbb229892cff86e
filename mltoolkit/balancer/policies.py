"""Load-balancing policies: pure choices over replica states, registered by name.

A policy never performs I/O; the proxy asks ``policy.choose(replicas)`` for each request and
updates the replica states itself: ``begin_attempt`` / ``end_attempt`` around each attempt (they
keep ``in_flight``), counts ``served`` and ``failed``, and calls ``record_answer`` with each
answer's latency and the replica's own ``X-In-Flight`` header, so load-aware policies can read
what was learned here.

A policy may also return ``None`` while healthy candidates exist (``late_binding`` holding a
request until a replica has a free slot): the proxy then waits for the next change of any
replica's state (an attempt finishing, a health change) and asks again, until the request's
deadline. All other policies below pick a candidate whenever one exists, so they never make the
proxy wait.

Policies that use randomness take a ``seed`` so tests are deterministic; ``Policy.make(name)``
builds them unseeded.
"""

from __future__ import annotations

import itertools
import time
import random
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Sequence

# Weight of a new sample in a replica's latency average once it has 1/EWMA_WEIGHT samples (before
# that: the plain mean of those seen, so the first, possibly huge, request does not dominate).
# Request costs are heavy-tailed (the benchmark's Pareto costs vary by 1.5x their mean): 0.1
# averages over about 20 answers, so a 3x slower replica stands out from that noise, while a
# replica that becomes 10x slower shows an average 2.7x higher after two answers.
EWMA_WEIGHT = 0.1
# ewma treats replicas whose expected latency is within this fraction of the best as equal (a
# tie, see FAIR_SHARE_HALF_LIFE_S): averages of equally fast replicas differ by noise, and without
# it the one that happens to look fastest takes all light load while the others idle. One more
# request in flight changes a replica's cost by 1.33x or more (up to 3 in flight), a 3x slower
# replica's by 3x: both still decide.
EWMA_TIE_TOLERANCE = 0.25
# ewma counts latency estimates below this as this: at that scale they measure how soon the
# replica's process was scheduled (a replica woken from idle answers a few ms later than a busy
# one, measured 1 ms against 3-8 ms on a loaded 2-core machine), not how fast it serves, and
# preferring the busy one would keep it busy: light load would stay on one replica.
LATENCY_FLOOR_S = 0.010
# ewma breaks ties by recent share: picks per unit of weight, each pick's count halving every
# FAIR_SHARE_HALF_LIFE_S (so a replica briefly left out catches up within about that time)
FAIR_SHARE_HALF_LIFE_S = 1.0
# A latency average no answer has refreshed decays towards the best one, with a half-life of
# STALE_LATENCIES x the best average (when answers take 100 ms, a replica silent for 250 ms may
# just be busy elsewhere), at least STALE_HALF_LIFE_S. With 4 balancers each hears from each
# replica only every ~0.3 s, and a fixed 0.25 s half-life made slow replicas look fast between
# answers. Fleet simulation, 90 % load, uneven fleet, medians of 12 runs, p99 / ideal with 4
# balancers: fixed 1.33x; 4x the best 1.19x, 8x 1.11x, 16x 1.10x (one balancer: 1.03-1.08x).
# 8x: a replica that was slow takes ~5 half-lives (~4 s when the best answers in 100 ms) to be
# tried again at full share. Paced by the best, not by the replica's own average: one that looks
# slow after a pause would stay out the longer, the longer the pause.
STALE_HALF_LIFE_S = 0.25
STALE_LATENCIES = 8.0
# weight of each answer in a replica's averages of reported and own load (``load_sharing``)
LOAD_SHARE_WEIGHT = 0.1
# An answer proves that the replica served it in parallel with an earlier, still unanswered,
# attempt only if that attempt was sent at least this long before: requests sent closer together
# may reach the replica in the other order (one waits for a new connection, the other reuses one).
OVERTAKE_MARGIN_S = 0.01


@dataclass
class ReplicaState:
    """What the balancer knows about one replica.

    ``served`` counts attempts the replica answered with a status below 500; ``failed`` counts
    attempts without an answer (connection failure, timeout) or answered with a 5xx.
    ``reported_in_flight`` is the replica's own count from its last ``X-In-Flight`` header (None
    until one arrives); ``last_latency_s`` the time of the last answered attempt, send to last byte,
    and ``latency_ewma_s`` an average of them weighted to recent ones (see ``EWMA_WEIGHT``), over
    ``latency_samples`` answers.
    ``foreign_in_flight`` is how many more requests the replica reported than this balancer had
    sent it, at its last answer: load from other clients, which ``in_flight`` cannot see.
    ``reported_load_ewma`` and ``own_load_ewma`` average, over the answers that carried a report
    (weight ``LOAD_SHARE_WEIGHT``), the requests the replica held (its report + the one answered)
    and how many of them were this balancer's (``in_flight`` + 1): see ``load_sharing``.
    ``parallel_seen`` is the most attempts the replica was seen serving at once: an answer that
    overtakes earlier attempts still unanswered was served while they were (replicas serve FIFO).
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
    latency_ewma_s: float | None = None
    latency_samples: int = 0
    last_answer_at: float | None = None
    foreign_in_flight: int = 0
    reported_load_ewma: float | None = None
    own_load_ewma: float | None = None
    parallel_seen: int = 1
    consecutive_failures: int = 0
    answered_since_probe: int = 0
    # (ticket, send time) of each attempt in flight, in the order they were sent
    _attempts: list[tuple[int, float]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )
    _tickets: itertools.count = field(
        default_factory=itertools.count, init=False, repr=False, compare=False
    )

    def begin_attempt(self, now: float) -> int:
        """An attempt is sent to this replica at ``now`` (a monotonic clock); returns its ticket."""
        ticket = next(self._tickets)
        self._attempts.append((ticket, now))
        self.in_flight += 1
        return ticket

    def end_attempt(self, ticket: int, worked: bool) -> None:
        """The attempt ``ticket`` is over; ``worked`` if the replica did its work and answered
        (the proxy passes True for successful POSTs only: health and metadata GETs, rejected
        requests and failures say nothing about how many requests it serves at once)."""
        index = next(i for i, (t, _) in enumerate(self._attempts) if t == ticket)
        sent_at = self._attempts.pop(index)[1]
        self.in_flight -= 1
        if worked:
            # Earlier attempts still unanswered: with FIFO service they started no later than this
            # one and have not finished, so all of them and this one were in service at once.
            earlier = self._attempts[:index]
            overtaken = sum(1 for _, t in earlier if t <= sent_at - OVERTAKE_MARGIN_S)
            self.parallel_seen = max(self.parallel_seen, overtaken + 1)

    def record_answer(
        self,
        latency_s: float,
        reported_in_flight: int | None,
        failed: bool = False,
        now: float | None = None,
    ) -> None:
        """Note what one answered attempt taught us about this replica's load.

        Called after ``end_attempt``, so ``in_flight`` counts this balancer's *other* attempts,
        as ``X-In-Flight`` counts the replica's other requests. A ``failed`` answer (5xx) may
        raise the latency average but never lower it: a replica that fails fast must not look
        fast, or latency-aware policies would send it everything. ``now`` is the monotonic
        time of the answer (default: ``time.monotonic()``; a simulation passes its own clock).

        An average is stale after a silence and its estimate decays towards the best one (see
        ``latency_estimates``), so an answer faster than the average after a silence weighs as
        much as the silence has made the old average obsolete (at least ``EWMA_WEIGHT``): it is
        the evidence the decay anticipated (the decay's pace taken from this answer's latency,
        as if it were the best). Otherwise one slow answer (a pause of 1 s in a
        replica answering in 50 ms) would keep the average high for about 20 more answers, and
        at light load, where the balancer tries such a replica again only once its estimate
        has decayed, the others would carry its share for tens of seconds. A slower answer
        weighs ``EWMA_WEIGHT`` as usual (the decay never raised the estimate).
        """
        now = time.monotonic() if now is None else now
        silence = None if self.last_answer_at is None else max(0.0, now - self.last_answer_at)
        self.last_latency_s = latency_s
        self.last_answer_at = now
        previous = self.latency_ewma_s if self.latency_ewma_s is not None else latency_s
        if not failed or latency_s > previous:
            self.latency_samples += 1
            obsolete = 0.0
            if silence is not None and latency_s < previous:
                obsolete = 1.0 - staleness_decay(silence, latency_s)
            weight = max(EWMA_WEIGHT, 1.0 / self.latency_samples, obsolete)
            self.latency_ewma_s = previous + weight * (latency_s - previous)
        if reported_in_flight is not None:
            self.reported_in_flight = reported_in_flight
            self.foreign_in_flight = max(0, reported_in_flight - self.in_flight)
            held, ours = reported_in_flight + 1.0, self.in_flight + 1.0
            if self.reported_load_ewma is None or self.own_load_ewma is None:
                self.reported_load_ewma, self.own_load_ewma = held, ours
            else:
                self.reported_load_ewma += LOAD_SHARE_WEIGHT * (held - self.reported_load_ewma)
                self.own_load_ewma += LOAD_SHARE_WEIGHT * (ours - self.own_load_ewma)


class Policy:
    """Base class: subclasses set ``name`` and implement ``choose``."""

    name: ClassVar[str]
    registry: ClassVar[dict[str, type[Policy]]] = {}
    # the monotonic clock the policy reads staleness against; a simulation sets its own on the
    # instance (``policy.clock = lambda: sim_now``), as it passes ``now`` to ``record_answer``
    clock: Callable[[], float] = staticmethod(time.monotonic)

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


def latency_estimates(
    replicas: Sequence[ReplicaState], now: float | None = None
) -> dict[str, float]:
    """Each replica's expected latency: its average, or, before its first answer, the best
    average of the others (optimistic, so that a new replica is tried soon), or 1.0 when no
    replica has answered yet (all equal).

    An average that no answer has refreshed for a while is stale: it decays towards the best
    one (``staleness_decay``: the gap halves every ``STALE_LATENCIES`` x the best average of
    silence, at least every ``STALE_HALF_LIFE_S``). Otherwise a replica that was
    slow once (a cold start, a burst of expensive requests) would never be chosen again, so its
    average would never learn that it recovered, and the others would carry all the load.
    """
    known = [r.latency_ewma_s for r in replicas if r.latency_ewma_s is not None]
    best = min(known) if known else 1.0
    now = time.monotonic() if now is None else now
    estimates = {}
    for r in replicas:
        if r.latency_ewma_s is None:
            estimates[r.name] = best
        elif r.last_answer_at is None:
            estimates[r.name] = r.latency_ewma_s
        else:
            decay = staleness_decay(max(0.0, now - r.last_answer_at), best)
            estimates[r.name] = best + (r.latency_ewma_s - best) * decay
    return estimates


def load_sharing(replicas: Sequence[ReplicaState]) -> float:
    """How many requests a replica holds, on average, for each one this balancer has there:
    the replicas' reported load over our own, summed over the replicas that reported (at least
    1.0; 1.0 before any report).

    With one balancer and no other clients it is 1. With K balancers behind a random front it
    grows with K, staying below it (the answered request is always ours): in the fleet simulation
    at 90 % load about 1.8 for 2 balancers and 2.5-2.8 for 4. Each balancer sees only its own
    requests, so a replica where it has one request in flight holds about ``load_sharing`` of
    them: the other balancers, balancing the same way, put theirs in the same places.
    """
    held = sum(r.reported_load_ewma for r in replicas if r.reported_load_ewma is not None)
    ours = sum(r.own_load_ewma for r in replicas if r.own_load_ewma is not None)
    return max(1.0, held / ours) if ours > 0 else 1.0


def staleness_decay(silence_s: float, best_s: float) -> float:
    """How much of a latency average still holds after ``silence_s`` without an answer, when the
    best replica answers in ``best_s``: 1 at once, halving every ``STALE_LATENCIES`` x
    ``best_s``, at least every ``STALE_HALF_LIFE_S``."""
    half_life = max(STALE_HALF_LIFE_S, STALE_LATENCIES * best_s)
    return 0.5 ** (silence_s / half_life)


class _Rotation:
    """Breaks ties in turn, so equal replicas share the load instead of the first taking it all."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def lowest(
        self,
        replicas: list[ReplicaState],
        key: Callable[[ReplicaState], float],
        tolerance: float = 0.0,
    ) -> ReplicaState:
        """The replica with the lowest key; those within ``tolerance`` (relative) of it tie."""
        keys = [key(r) for r in replicas]
        limit = min(keys) * (1.0 + tolerance)
        tied = [r for r, k in zip(replicas, keys) if k <= limit]
        return tied[next(self._counter) % len(tied)]


class _FairShare:
    """Breaks ties by recent share: the tied replica picked least over the last seconds (picks
    per unit of weight, each pick's count halving every ``FAIR_SHARE_HALF_LIFE_S``) wins, so a
    replica left out for a moment (its estimate briefly above the others' by noise) catches up
    on the next ties instead of ending the run with fewer requests. Exact ties: the first."""

    def __init__(self) -> None:
        self._picks: dict[str, tuple[float, float]] = {}  # name -> (count, at)

    def recent(self, name: str, now: float) -> float:
        count, at = self._picks.get(name, (0.0, now))
        return count * 0.5 ** (max(0.0, now - at) / FAIR_SHARE_HALF_LIFE_S)

    def lowest(
        self,
        replicas: list[ReplicaState],
        key: Callable[[ReplicaState], float],
        tolerance: float,
        now: float,
    ) -> ReplicaState:
        keys = [key(r) for r in replicas]
        limit = min(keys) * (1.0 + tolerance)
        tied = [r for r, k in zip(replicas, keys) if k <= limit]
        chosen = min(tied, key=lambda r: self.recent(r.name, now) / r.weight)
        self._picks[chosen.name] = (self.recent(chosen.name, now) + 1.0, now)
        return chosen


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


class RandomChoice(Policy):
    """A random healthy replica, with probability proportional to its weight; load is ignored."""

    name = "random"

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def choose(
        self, replicas: Sequence[ReplicaState], exclude: frozenset[str] = frozenset()
    ) -> ReplicaState | None:
        chosen_from = candidates(replicas, exclude)
        if not chosen_from:
            return None
        return self._rng.choices(chosen_from, weights=[r.weight for r in chosen_from])[0]


class LeastRequest(Policy):
    """The replica with the fewest requests in flight relative to its weight; ties go in turn."""

    name = "least_request"

    def __init__(self) -> None:
        self._rotation = _Rotation()

    def choose(
        self, replicas: Sequence[ReplicaState], exclude: frozenset[str] = frozenset()
    ) -> ReplicaState | None:
        chosen_from = candidates(replicas, exclude)
        if not chosen_from:
            return None
        return self._rotation.lowest(chosen_from, key=lambda r: r.in_flight / r.weight)


class PowerOfTwo(Policy):
    """Power of two choices: two different random candidates (drawn in proportion to weight), the
    one with fewer requests in flight per unit of weight; a tie goes to the first drawn.

    With one balancer, least_request (which compares all) does better; the random pair matters
    when several balancers that see the same counts share replicas: they do not all pile onto
    the same least-loaded one.
    """

    name = "power_of_two"

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def choose(
        self, replicas: Sequence[ReplicaState], exclude: frozenset[str] = frozenset()
    ) -> ReplicaState | None:
        chosen_from = candidates(replicas, exclude)
        if len(chosen_from) <= 1:
            return chosen_from[0] if chosen_from else None
        first = self._rng.choices(chosen_from, weights=[r.weight for r in chosen_from])[0]
        rest = [r for r in chosen_from if r is not first]
        second = self._rng.choices(rest, weights=[r.weight for r in rest])[0]
        def load(r: ReplicaState) -> float:
            return r.in_flight / r.weight

        return second if load(second) < load(first) else first


class Ewma(Policy):
    """The replica expected to answer soonest: latency average x (requests there + 1) / weight.

    As Finagle's and Linkerd's peak-EWMA, without the peak: the average latency of a replica's
    recent answers (``latency_ewma_s``) estimates how long each request there takes, and the
    requests already there must be served too. So an idle replica 3x slower is chosen only once
    the faster ones each have about two requests, and one that slows down is avoided as soon as
    its answers get slower or its requests pile up.

    Requests there = ours in flight x ``load_sharing`` (from the replicas' ``X-In-Flight``
    reports): with several balancers over one fleet, each request of ours on a replica stands
    for others that the other balancers sent there. The last report itself
    (``foreign_in_flight``) is not used: it is as old as the last answer, with 4 balancers
    ~0.3 s, several service times. In the fleet
    simulation (``mltoolkit.sim.simulate_balancers``; 90 % load, uneven fleet, medians of 8
    runs) p99 was 1.17x the ideal with 4 balancers, 1.28x when fed the last report; with a
    uniform random front, ignoring the reports altogether did as well as ``load_sharing``.
    (Peak-EWMA jumps to any slower answer; with heavy-tailed request costs that mostly reacts to
    expensive requests, not slow replicas.) A replica with no answer yet is assumed as fast as the
    fastest known one, so it gets tried.

    At light load equal replicas share equally: latency estimates below ``LATENCY_FLOOR_S`` count
    as equal (they measure scheduling, not speed), costs within ``EWMA_TIE_TOLERANCE`` tie, and a
    tie goes to the replica with the smallest recent share (``FAIR_SHARE_HALF_LIFE_S``), so one
    left out for a moment catches up.
    """

    name = "ewma"

    def __init__(self) -> None:
        self._share = _FairShare()

    def choose(
        self, replicas: Sequence[ReplicaState], exclude: frozenset[str] = frozenset()
    ) -> ReplicaState | None:
        chosen_from = candidates(replicas, exclude)
        if not chosen_from:
            return None
        now = self.clock()
        latency = latency_estimates(replicas, now)
        sharing = load_sharing(replicas)
        return self._share.lowest(
            chosen_from,
            key=lambda r: max(latency[r.name], LATENCY_FLOOR_S)
            * (r.in_flight * sharing + 1)
            / r.weight,
            tolerance=EWMA_TIE_TOLERANCE,
            now=now,
        )


class LateBinding(Policy):
    """Hold each request in the balancer until a replica has a free slot, then give it to the
    fastest replica with one: the balancer becomes the single central queue of the fleet.

    A replica has a free slot while it has fewer than ``slots`` requests in flight. Requests never
    queue behind a long one inside a replica; they wait in one line (the proxy's) for whichever
    slot frees first. Among replicas with a free slot, the lowest latency average per unit of
    weight wins (unknown replicas count as the fastest known; exact ties go in turn).

    ``slots=None`` (the default) learns them: every replica starts with one slot, and the slot
    count is the most requests any replica was seen serving at once (``parallel_seen``; replicas
    of one deployment run the same server, so they share it). To learn more than it has seen,
    when every replica is full the policy lets one request at a time go over the limit, to the
    fastest replica; if that replica answers it before an earlier request, it serves both at
    once, and the count grows. A replica with truly that many slots queues the extra request
    instead, which costs one request a short wait, and the count stays.

    Use it for servers with a fixed number of workers and no batching. A batching server (such
    as ``mltoolkit.serving``) answers a request that arrives during a predict call only after
    that call, so it is learned as one slot and fed one request at a time: no batches form.
    Measured with two such replicas (20 ms per call) and 32 clients: 102 req/s against 729 with
    ``ewma`` or ``least_request``. Not the default for that reason.
    """

    name = "late_binding"

    def __init__(self, slots: int | None = None) -> None:
        whole = isinstance(slots, int) and not isinstance(slots, bool)
        if slots is not None and (not whole or slots < 1):
            raise ValueError(
                f"late_binding slots: {slots!r}; expected a whole number >= 1 or None (learn)"
            )
        self.slots = slots
        self._rotation = _Rotation()

    def slots_per_replica(self, replicas: Sequence[ReplicaState]) -> int:
        if self.slots is not None:
            return self.slots
        return max((r.parallel_seen for r in replicas), default=1)

    def choose(
        self, replicas: Sequence[ReplicaState], exclude: frozenset[str] = frozenset()
    ) -> ReplicaState | None:
        chosen_from = candidates(replicas, exclude)
        if not chosen_from:
            return None
        slots = self.slots_per_replica(replicas)
        latency = latency_estimates(replicas, self.clock())

        def slowness(r: ReplicaState) -> float:
            return latency[r.name] / r.weight

        free = [r for r in chosen_from if r.in_flight < slots]
        if free:
            return self._rotation.lowest(free, key=slowness)
        learning = self.slots is None
        probe_out = any(r.in_flight > slots for r in chosen_from)
        if learning and not probe_out:
            return self._rotation.lowest(chosen_from, key=slowness)
        return None  # hold: the proxy asks again when a slot frees


# chosen by measurement (benchmarks/balance.py; see BalancerSpec's docstring)
DEFAULT_POLICY = "ewma"


def policy_names() -> list[str]:
    """Names a BalancerSpec may use, sorted."""
    return sorted(Policy.registry)
