"""Load tests against an endpoint: one DataFrame row per request.

Open loop (``rate=``): requests leave on a fixed schedule whether or not earlier ones have
returned, and latency is measured from each request's *scheduled* send time, so a slow server
(or a client that falls behind) shows up as latency instead of silently lowering the load
(no coordinated omission). Closed loop (``concurrency=``): N workers, each sending its next
request when the previous one returns; latency is measured from the actual send.

The asyncio event loop runs in a thread of its own, so ``load_test`` blocks the same way in a
plain script and in Jupyter (where the notebook's loop is already running).

Accuracy (benchmarks/loadgen.py compares it with a reference generator): sends wake on a
high-resolution timer (``observe.timer``), not on ``asyncio.sleep``'s millisecond epoll
timeout; the objects alive before the test are frozen out of the garbage collector for its
duration (a full collection of a notebook's heap paused the generator for 0.2-0.4 s); the
generator's own *send lag* (from each request's scheduled time to the moment its send
starts) is reported in the frame's ``attrs`` (``send_lag_p50_ms``, ``send_lag_p99_ms``,
``send_lag_max_ms``), and ``summarize`` warns when it is large.
"""

from __future__ import annotations

import asyncio
import gc
import math
import threading
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import pandas as pd

from mltoolkit.endpoint import REPLICA_HEADER
from mltoolkit.errors import SpecError
from mltoolkit.observe.arrivals import ARRIVALS, arrival_offsets
from mltoolkit.observe.payload import (
    PROTOCOLS,
    Payloads,
    feature_rows,
    request_path,
    v2_input,
    zeros_from_metadata,
)
from mltoolkit.observe.progress import LoadTestProgress, ProgressCallback, progress_callback
from mltoolkit.observe.timer import PreciseTimer

COLUMNS = ("scheduled_s", "latency_s", "status", "replica", "error")
ERROR_TEXT_LIMIT = 300
PROGRESS_INTERVAL_S = 0.5
_JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class LoadTestSettings:
    """The validated arguments of one load test (exactly one of ``rate`` / ``concurrency``)."""

    url: str
    rate: float | None
    concurrency: int | None
    duration: float
    timeout_s: float
    max_requests: int | None
    connections: int
    arrivals: str

    @property
    def open_loop(self) -> bool:
        return self.rate is not None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _positive_number(name: str, value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise SpecError(f"load_test.{name}", value, "a finite number > 0")
    return float(value)


def _positive_whole(name: str, value: Any) -> int:
    if not _is_whole(value) or value < 1:
        raise SpecError(f"load_test.{name}", value, "a whole number >= 1")
    return int(value)


def default_connections(rate: float | None, concurrency: int | None) -> int:
    """Pool size: one connection per worker, or a second's worth of requests at the rate.

    At ``rate`` requests/s a pool of ``rate`` connections keeps up while answers take up to
    a second (Little's law); it is capped by half the process's open-file limit.
    """
    if concurrency is not None:
        return concurrency
    return int(min(_open_file_budget(), max(8, math.ceil(rate or 0))))


def _open_file_budget() -> int:
    try:
        import resource  # POSIX only
    except ImportError:
        return 512
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 4096 if soft == resource.RLIM_INFINITY else max(8, min(4096, soft // 2))


def validate(
    endpoint: Any,
    rate: Any,
    duration: Any,
    concurrency: Any,
    rows_per_request: Any,
    timeout_s: Any,
    protocol: Any,
    max_requests: Any,
    arrivals: Any,
    connections: Any,
) -> LoadTestSettings:
    """Check every argument (raising ``SpecError`` naming it) before anything is sent."""
    url = getattr(endpoint, "url", None)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise SpecError(
            "load_test.endpoint", endpoint, "an Endpoint whose url starts with http:// or https://"
        )
    if not isinstance(getattr(endpoint, "model_name", None), str):
        raise SpecError("load_test.endpoint", endpoint, "an Endpoint with a model_name")
    if (rate is None) == (concurrency is None):
        raise SpecError(
            "load_test.rate/concurrency",
            {"rate": rate, "concurrency": concurrency},
            "exactly one of rate= (open loop, requests/s) or concurrency= (closed loop, workers)",
        )
    if rate is not None:
        rate = _positive_number("rate", rate)
    if concurrency is not None:
        concurrency = _positive_whole("concurrency", concurrency)
    duration = _positive_number("duration", duration)
    timeout_s = _positive_number("timeout_s", timeout_s)
    _positive_whole("rows_per_request", rows_per_request)
    if protocol not in PROTOCOLS:
        raise SpecError("load_test.protocol", protocol, f"one of {PROTOCOLS}")
    if max_requests is not None:
        max_requests = _positive_whole("max_requests", max_requests)
    if arrivals not in ARRIVALS:
        raise SpecError("load_test.arrivals", arrivals, f"one of {ARRIVALS}")
    if arrivals != "constant" and concurrency is not None:
        raise SpecError(
            "load_test.arrivals", arrivals, "'constant' in a closed-loop test (concurrency=)"
        )
    if connections is None:
        connections = default_connections(rate, concurrency)
    else:
        connections = _positive_whole("connections", connections)
    return LoadTestSettings(
        url=url.rstrip("/") + request_path(protocol, endpoint.model_name),
        rate=rate,
        concurrency=concurrency,
        duration=duration,
        timeout_s=timeout_s,
        max_requests=max_requests,
        connections=connections,
        arrivals=arrivals,
    )


def build_payloads(endpoint: Any, X: Any, rows_per_request: int, protocol: str) -> Payloads:
    """Bodies from ``X``, or zeros shaped by ``endpoint.metadata()``; V2 names from the metadata."""
    rows = feature_rows(X) if X is not None else None
    metadata = endpoint.metadata() if rows is None or protocol == "v2" else None
    if rows is None:
        rows = zeros_from_metadata(metadata)
    name, datatype = v2_input(metadata)
    return Payloads(rows, rows_per_request, protocol, name, datatype)


class _Run:
    """One load test inside an event loop; results in ``rows`` (index → row tuple)."""

    def __init__(
        self, settings: LoadTestSettings, payloads: Payloads, offsets: np.ndarray | None
    ) -> None:
        self.settings = settings
        self.payloads = payloads
        self.offsets = offsets
        self.rows: dict[int, tuple[float, float, int, str | None, str | None]] = {}
        self.send_lags: list[float] = []  # seconds from the scheduled time to the send
        self.precise_timer = False
        self.sent = 0
        self.answered = 0
        self.errors = 0
        self.started_at: float | None = None  # loop.time() of the test start
        self._next_index = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._cancel_reason = "cancelled"
        self._interrupted = threading.Event()

    # --- called from the caller's thread -------------------------------------------------

    def elapsed_s(self) -> float:
        loop = self._loop
        if loop is None or self.started_at is None:
            return 0.0
        return max(0.0, loop.time() - self.started_at)

    def snapshot(self, finished: bool = False) -> LoadTestProgress:
        return LoadTestProgress(
            elapsed_s=self.elapsed_s(),
            duration_s=self.settings.duration,
            sent=self.sent,
            answered=self.answered,
            errors=self.errors,
            finished=finished,
        )

    def interrupt(self) -> None:
        """Stop the test from another thread (Ctrl-C in the caller)."""
        self._interrupted.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop has already closed
                pass

    # --- inside the event loop -----------------------------------------------------------

    async def main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()  # type: ignore[assignment]
        if self._interrupted.is_set():
            return
        settings = self.settings
        connector = aiohttp.TCPConnector(limit=settings.connections, limit_per_host=0)
        timeout = aiohttp.ClientTimeout(total=settings.timeout_s)
        tasks: list[asyncio.Task[None]] = []
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        ) as session:
            try:
                self.started_at = self._loop.time()
                if settings.open_loop:
                    await self._open_loop(session, tasks)
                    deadline = self._loop.time() + settings.timeout_s
                else:
                    tasks.extend(
                        asyncio.create_task(self._worker(session))
                        for _ in range(settings.concurrency or 0)
                    )
                    deadline = self.started_at + settings.duration + settings.timeout_s
                if tasks:
                    _, pending = await asyncio.wait(
                        tasks, timeout=max(0.0, deadline - self._loop.time())
                    )
                    self._cancel_reason = (
                        f"no answer within timeout_s={settings.timeout_s:g} s after the test ended"
                    )
                    await _cancel_all(pending)
            finally:
                await _cancel_all(t for t in tasks if not t.done())

    async def _open_loop(
        self, session: aiohttp.ClientSession, tasks: list[asyncio.Task[None]]
    ) -> None:
        assert self.offsets is not None and self._loop is not None and self.started_at is not None
        offsets, start, loop = self.offsets, self.started_at, self._loop
        timer = PreciseTimer(loop)
        self.precise_timer = timer.precise
        try:
            await self._send_on_schedule(session, tasks, timer, offsets, start, loop)
        finally:
            timer.close()

    async def _send_on_schedule(
        self,
        session: aiohttp.ClientSession,
        tasks: list[asyncio.Task[None]],
        timer: PreciseTimer,
        offsets: np.ndarray,
        start: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        index = 0
        while index < len(offsets):
            await timer.sleep_until(start + offsets[index])
            now = loop.time()
            # send everything that is due, so a late wake-up catches up instead of drifting
            while index < len(offsets) and start + offsets[index] <= now:
                tasks.append(
                    asyncio.create_task(self._send(session, index, start + offsets[index]))
                )
                index += 1

    async def _worker(self, session: aiohttp.ClientSession) -> None:
        assert self._loop is not None and self.started_at is not None
        settings, loop = self.settings, self._loop
        end = self.started_at + settings.duration
        while loop.time() < end:
            if settings.max_requests is not None and self._next_index >= settings.max_requests:
                return
            index = self._next_index
            self._next_index += 1
            await self._send(session, index, loop.time())

    async def _send(self, session: aiohttp.ClientSession, index: int, scheduled_at: float) -> None:
        assert self._loop is not None
        self.send_lags.append(self._loop.time() - scheduled_at)
        body = self.payloads.body(index)
        self.sent += 1
        try:
            async with session.post(
                self.settings.url, data=body, headers=_JSON_HEADERS
            ) as response:
                content = await response.read()
                finished = self._loop.time()
                status = response.status
                replica = response.headers.get(REPLICA_HEADER)
        except asyncio.CancelledError:
            self._record(index, scheduled_at, math.nan, 0, None, self._cancel_reason)
            raise
        except TimeoutError:
            reason = f"timeout: no answer within timeout_s={self.settings.timeout_s:g} s"
            self._record(index, scheduled_at, math.nan, 0, None, reason)
        except Exception as exc:  # connection refused, reset, bad answer...: a row, never lost
            self._record(index, scheduled_at, math.nan, 0, None, f"{type(exc).__name__}: {exc}")
        else:
            error = None
            if status >= 400:
                text = content.decode(errors="replace").strip()[:ERROR_TEXT_LIMIT]
                error = f"HTTP {status}: {text}"
            self.answered += 1
            self._record(index, scheduled_at, finished - scheduled_at, status, replica, error)

    def _record(
        self,
        index: int,
        scheduled_at: float,
        latency_s: float,
        status: int,
        replica: str | None,
        error: str | None,
    ) -> None:
        assert self.started_at is not None
        if error is not None:
            self.errors += 1
        self.rows[index] = (scheduled_at - self.started_at, latency_s, status, replica, error)


async def _cancel_all(tasks: Any) -> None:
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


def _run_in_thread(run: _Run, report: ProgressCallback | None) -> None:
    """Run the test's event loop in a new thread; report progress from this one."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run.main())
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=target, name="mltoolkit-load-test", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(PROGRESS_INTERVAL_S)
            if report is not None and thread.is_alive():
                report(run.snapshot())
    except KeyboardInterrupt:
        run.interrupt()
        thread.join()
        raise
    if report is not None:
        report(run.snapshot(finished=True))
    if failure and not isinstance(failure[0], asyncio.CancelledError):
        raise failure[0]


def results_frame(
    rows: dict[int, tuple[float, float, int, str | None, str | None]],
) -> pd.DataFrame:
    """The rows as the contract's DataFrame, ordered by scheduled time."""
    ordered = sorted(rows.values(), key=lambda row: row[0])
    columns = list(zip(*ordered, strict=True)) if ordered else [()] * len(COLUMNS)
    return pd.DataFrame(
        {
            "scheduled_s": np.asarray(columns[0], dtype=float),
            "latency_s": np.asarray(columns[1], dtype=float),
            "status": np.asarray(columns[2], dtype=np.int64),
            "replica": pd.Series(list(columns[3]), dtype=object),
            "error": pd.Series(list(columns[4]), dtype=object),
        }
    )


def load_test(
    endpoint: Any,
    rate: float | None = None,
    duration: float = 10.0,
    *,
    concurrency: int | None = None,
    X: Any = None,
    rows_per_request: int = 1,
    timeout_s: float = 30.0,
    protocol: str = "predict",
    max_requests: int | None = None,
    arrivals: str = "constant",
    seed: int | None = None,
    connections: int | None = None,
    progress: bool | ProgressCallback = False,
) -> pd.DataFrame:
    """Load ``endpoint`` for ``duration`` seconds; one row per request.

    Give exactly one of ``rate`` (open loop, requests per second, ``arrivals`` "constant" or
    "poisson" with ``seed``) or ``concurrency`` (closed loop, that many workers). Each request
    carries ``rows_per_request`` rows of ``X`` (cycled), or zeros shaped by the model's
    metadata when ``X`` is None. ``protocol``: "predict" (``POST /predict``) or "v2"
    (``POST /v2/models/{name}/infer``). ``max_requests`` caps the number sent. Sending stops
    at ``duration``; requests still out ``timeout_s`` later get an error row (as does any
    request unanswered after ``timeout_s``). ``connections`` sizes the client pool (default:
    ``concurrency``, or ``ceil(rate)`` with a floor of 8). ``progress``: True prints a line
    that updates in place; a callable receives ``LoadTestProgress`` snapshots, on this thread.

    Columns: ``scheduled_s`` (from the test start), ``latency_s`` (from the scheduled send;
    NaN without an answer), ``status`` (0 = no HTTP answer), ``replica`` (the ``X-Replica``
    header or None), ``error`` (text or None).
    """
    settings = validate(
        endpoint,
        rate,
        duration,
        concurrency,
        rows_per_request,
        timeout_s,
        protocol,
        max_requests,
        arrivals,
        connections,
    )
    if seed is not None and not _is_whole(seed):
        raise SpecError("load_test.seed", seed, "a whole number or None")
    report = progress_callback(progress)
    payloads = build_payloads(endpoint, X, rows_per_request, protocol)
    offsets = None
    if settings.open_loop:
        assert settings.rate is not None
        offsets = arrival_offsets(
            settings.rate,
            settings.duration,
            settings.arrivals,
            max_requests=settings.max_requests,
            seed=seed,
        )
    run = _Run(settings, payloads, offsets)
    with _garbage_collector_frozen():
        _run_in_thread(run, report)
    frame = results_frame(run.rows)
    frame.attrs.update(
        mode="open" if settings.open_loop else "closed",
        rate=settings.rate,
        concurrency=settings.concurrency,
        duration_s=settings.duration,
        protocol=protocol,
        **send_lag_stats(run.send_lags if settings.open_loop else []),
    )
    return frame


def send_lag_stats(lags_s: list[float]) -> dict[str, float]:
    """p50, p99 and max of the generator's send lag, in ms (NaN without open-loop sends)."""
    if not lags_s:
        nan = float("nan")
        return {"send_lag_p50_ms": nan, "send_lag_p99_ms": nan, "send_lag_max_ms": nan}
    lags_ms = np.asarray(lags_s, dtype=float) * 1000.0
    p50, p99 = np.percentile(lags_ms, [50, 99])
    return {
        "send_lag_p50_ms": float(p50),
        "send_lag_p99_ms": float(p99),
        "send_lag_max_ms": float(lags_ms.max()),
    }


class _garbage_collector_frozen:
    """Collect once before the test, then keep every object alive at its start out of the
    collector's reach until it ends (``gc.freeze``/``gc.unfreeze``), so a full collection of
    the caller's heap (a notebook with pandas and scikit-learn: 0.2-0.4 s measured) cannot
    pause the generator mid-test. The test's own garbage is still collected."""

    def __enter__(self) -> None:
        gc.collect()
        gc.freeze()

    def __exit__(self, *exc: object) -> None:
        gc.unfreeze()
