"""Adaptive batching: rows of concurrent requests merged into one ``predict`` call.

A request's rows wait in the open batch until one of these seals it (the reason is recorded):

* ``full``      — the batch holds ``max_batch_size`` rows, or the next request would not fit;
* ``max_wait``  — ``max_wait_ms`` passed since the batch's first request arrived;
* ``tick``      — with ``max_wait_ms == 0``: the event loop finished handling the requests that
  arrived together, so the batch holds every request read in the same loop iteration;
* ``usual``     — with ``max_wait_ms == 0`` under load: the batch reached the usual number of
  requests per call (see *Waiting for the usual crowd* below);
* ``waited``    — the same, but the usual number did not come within one predict call's time;
* ``shutdown``  — the server is stopping, so nothing waits for a timer;
* ``alone``     — batching is off, or one request alone has ``max_batch_size`` rows or more
  (it is predicted whole, never split);
* ``retry_alone`` — the merged call raised, so each request of that batch is predicted alone and
  only the request that makes the model fail gets the error.

Predictions are split back in order: each request receives exactly the rows it sent. Requests
are validated before they get here (a bad request never joins a batch).

Where predict runs: on the event loop thread while the model is fast, in one worker thread once
its calls take longer than ``OFFLOAD_AFTER_MS`` (20 ms) on a moving average. A slow model on the
loop would stall health checks and new requests for the whole call; in the worker the loop keeps
answering, and the open batch keeps filling (its timer does not seal it) until the worker is free.

Measured (digits LogisticRegression, ~0.2-0.4 ms per predict for 1 or 64 rows; server pinned to
one core with BLAS single-threaded, wrk on the other core; 32 connections, 1-row ``/predict``;
medians of 3-8 rounds in alternating order on a shared, noisy 2-core machine):

    variant                        requests/s  ratio  rows/call
    no batching                    2731        1.00   1
    batching, max_wait_ms=0        6154        2.25   12
    batching, max_wait_ms=0.5/1/2  no better: 2.0-2.6x with a wide spread
    batching 0 ms, worker thread   6818        2.50   14
    no batching, worker thread     2011        0.74   1

Paired over 8 rounds the worker thread was ahead with batching by a median 4% (in 6 of 8
rounds; within the spread) and clearly behind without it, so a fast model stays on the loop.
With one connection ``max_wait_ms=1`` costs every lone request the full timer (p50 1.84 ms vs
0.46 ms, a third of the throughput), while ``max_wait_ms=0`` batches whatever arrives together
under load at no cost when idle.

Waiting for the usual crowd (``max_wait_ms == 0``, the default). Behind a balancer, requests do
not arrive in the bursts a client's connections make: the balancer spreads them out, and a batch
sealed at the tick holds fewer requests (one-off probe, 2 replicas sharing a core, 64
connections: 11-13 requests per call from wrk directly, 7.1-7.9 through HAProxy, nginx or ours).
Each call's fixed cost is then paid more often. So while recent calls merged 2 or more requests
(``usual_requests``, a moving average with weight ``CALL_WEIGHT`` per call), a tick that finds
fewer than that many keeps the batch open until they arrive (``usual``) or until one predict
call's time has passed (``mean_predict_ms``, from ``CROWD_WAIT_MS_MIN`` to ``CROWD_WAIT_MS_MAX``;
``waited``). Waiting at most one call's time costs a request at most what an extra call would.
At idle, and at a light load where calls hold one request, nothing waits.

Measured (one-off probes, 2026-12-03): two sets of 2 replicas, one with this wait and one without,
running side by side and measured in turn, 6 rounds of 5 s. ``balancer.py``'s placement: ours on
the HAProxy data plane, 64 connections. Three probes, the set with the wait started first, first,
then second:
- Through the balancer, the set with the wait served a median 1.11x, 1.14x and 1.12x what the set
  without it served, paired round by round (0.89-1.41x by round).
- Called directly (the direct fleet), no change beyond noise: 0.96x, 1.12x and 0.94x.
- The p50 through the balancer did not move beyond noise: at 1 connection 0.60/0.59, 0.69/0.80
  and 0.63/0.66 ms (with/without); at 8 connections 1.78/1.74, 1.80/2.51 and 1.75/1.88 ms.
- One replica called directly, both start orders: 1 connection 0.89x and 1.02x the req/s, 8
  connections 0.86x and 1.01x, 32 connections 1.09x and 1.04x. An A/A probe (the same code in both
  sets) moved 1.02x, 1.16x and 1.12x there: noise.

Emulated slow replica (``slowdown`` > 1, the server's ``--slowdown``): after each predict call
that took t seconds, a blocking ``time.sleep((slowdown - 1) * t)`` on the same thread, so the
replica stays busy as if its CPU were ``slowdown`` times slower for the model, without burning
CPU. It is an emulation for demos and tests of balancing: the HTTP work itself is not slowed, and
the moving average that decides offloading sees the slowed duration, as it would on a slower CPU.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

from mltoolkit.serving.config import check_slowdown
from mltoolkit.spec import BatchingSpec

HISTORY = 10_000
OFFLOAD_AFTER_MS = 20.0
CALL_WEIGHT = 0.2  # of each call in the moving averages of its time and of the requests it merged
USUAL_MIN_REQUESTS = 2  # below this average, nothing waits for a crowd
CROWD_WAIT_MS_MIN = 0.05
CROWD_WAIT_MS_MAX = 2.0

_Pending = tuple[np.ndarray, "asyncio.Future[np.ndarray]"]
_Outcome = Union[np.ndarray, Exception]


@dataclass(frozen=True)
class PredictCall:
    """One call of the model's predict: how many rows, from how many requests, and why."""

    rows: int
    requests: int
    reason: str


class Batcher:
    """Merges concurrent ``predict`` requests into calls of ``predict_rows`` (see module doc).

    ``calls`` records the last ``history`` calls; ``mean_predict_ms`` is a moving average of
    their duration (including the emulated ``slowdown``, see the module doc), and
    ``usual_requests`` one of the requests they merged.
    """

    def __init__(
        self,
        predict_rows: Callable[[np.ndarray], np.ndarray],
        spec: BatchingSpec | None = None,
        history: int = HISTORY,
        offload_after_ms: float | None = None,
        slowdown: float = 1.0,
    ) -> None:
        self.spec = spec if spec is not None else BatchingSpec()
        self.slowdown = check_slowdown("Batcher.slowdown", slowdown)
        self.calls: deque[PredictCall] = deque(maxlen=history)
        self.offload_after_ms = OFFLOAD_AFTER_MS if offload_after_ms is None else offload_after_ms
        self.mean_predict_ms = 0.0
        self.usual_requests = 1.0
        self._timed_calls = 0
        self._crowd = 0  # requests the open batch waits for (0: it does not wait)
        self._predict_rows = predict_rows
        self._open: list[_Pending] = []
        self._open_rows = 0
        self._timer: asyncio.Handle | None = None
        self._due: str | None = None  # the timer fired while the worker was busy
        self._sealed: deque[tuple[list[_Pending], str]] = deque()
        self._busy = False  # a call is running in the worker thread
        self._worker: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending_requests(self) -> int:
        """Requests waiting in the open batch."""
        return len(self._open)

    @property
    def offloading(self) -> bool:
        """True while predict calls go to the worker thread (the model is slow)."""
        return self.mean_predict_ms > self.offload_after_ms

    async def predict(self, rows: np.ndarray) -> np.ndarray:
        """Predictions for ``rows`` (shape (n, features)), possibly computed within a batch."""
        spec = self.spec
        count = len(rows)
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        if not spec.enabled or count >= spec.max_batch_size:
            self._sealed.append(([(rows, future)], "alone"))
            self._drain()
            return await future
        if self._open_rows + count > spec.max_batch_size:
            self.flush("full")
        self._open.append((rows, future))
        self._open_rows += count
        if self._open_rows >= spec.max_batch_size:
            self.flush("full")
        elif self._crowd and len(self._open) >= self._crowd:
            self.flush("usual")
        elif len(self._open) == 1:
            loop = asyncio.get_running_loop()
            if spec.max_wait_ms > 0:
                self._timer = loop.call_later(spec.max_wait_ms / 1000, self._on_timer, "max_wait")
            else:
                self._timer = loop.call_soon(self._on_timer, "tick")
        return await future

    def flush(self, reason: str) -> None:
        """Seal the open batch now (e.g. ``"shutdown"``) and send it to the model."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due = None
        self._crowd = 0
        batch = [(rows, future) for rows, future in self._open if not future.done()]
        self._open = []
        self._open_rows = 0
        if batch:
            self._sealed.append((batch, reason))
        self._drain()

    def close(self) -> None:
        """Release the worker thread (a call still running finishes on its own)."""
        if self._worker is not None:
            self._worker.shutdown(wait=False)
            self._worker = None

    def _on_timer(self, reason: str) -> None:
        self._timer = None
        if reason == "tick" and not self._busy:
            usual = int(self.usual_requests)
            if usual >= USUAL_MIN_REQUESTS and len(self._open) < usual:
                self._crowd = usual  # wait for the usual crowd (module doc), at most one call's time
                wait_ms = min(max(self.mean_predict_ms, CROWD_WAIT_MS_MIN), CROWD_WAIT_MS_MAX)
                self._timer = asyncio.get_running_loop().call_later(wait_ms / 1000, self._on_timer, "waited")
                return
        if self._busy:
            self._due = reason  # keep filling the batch while the model is busy
        else:
            self.flush(reason)

    def _drain(self) -> None:
        while self._sealed and not self._busy:
            batch, reason = self._sealed.popleft()
            if self.offloading:
                self._busy = True
                task = asyncio.get_running_loop().create_task(self._run_in_worker(batch, reason))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                _deliver(batch, self._compute([rows for rows, _ in batch], reason))

    async def _run_in_worker(self, batch: list[_Pending], reason: str) -> None:
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        try:
            outcomes = await asyncio.get_running_loop().run_in_executor(
                self._worker, self._compute, [rows for rows, _ in batch], reason
            )
        finally:
            self._busy = False
        _deliver(batch, outcomes)
        if self._due is not None and self._open:
            self.flush(self._due)
        else:
            self._due = None
            self._drain()

    def _compute(self, requests: list[np.ndarray], reason: str) -> list[_Outcome]:
        """The answer (or the exception) for each request's rows; runs on either thread."""
        if len(requests) == 1:
            return [self._call_safely(requests[0], 1, reason)]
        try:
            merged = np.concatenate(requests)
            predictions = self._call(merged, len(requests), reason)
        except Exception:  # a bad request made the merged call fail: find it by going one by one
            return [self._call_safely(rows, 1, "retry_alone") for rows in requests]
        outcomes: list[_Outcome] = []
        start = 0
        for rows in requests:
            end = start + len(rows)
            outcomes.append(predictions[start:end])
            start = end
        return outcomes

    def _call_safely(self, rows: np.ndarray, requests: int, reason: str) -> _Outcome:
        try:
            return self._call(rows, requests, reason)
        except Exception as exc:  # delivered to the one request that caused it
            return exc

    def _call(self, rows: np.ndarray, requests: int, reason: str) -> np.ndarray:
        self.calls.append(PredictCall(rows=len(rows), requests=requests, reason=reason))
        self.usual_requests += CALL_WEIGHT * (requests - self.usual_requests)
        started = time.perf_counter()
        try:
            return self._predict_rows(rows)
        finally:
            if self.slowdown > 1.0:  # the emulated slower replica (module doc)
                time.sleep((self.slowdown - 1.0) * (time.perf_counter() - started))
            elapsed_ms = (time.perf_counter() - started) * 1000
            self._timed_calls += 1
            if self._timed_calls == 1:
                self.mean_predict_ms = elapsed_ms
            else:
                self.mean_predict_ms += CALL_WEIGHT * (elapsed_ms - self.mean_predict_ms)


def _deliver(batch: list[_Pending], outcomes: list[_Outcome]) -> None:
    for (_, future), outcome in zip(batch, outcomes):
        if future.done():  # the request was cancelled (its client went away)
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
