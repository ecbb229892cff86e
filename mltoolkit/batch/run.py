"""Running a batch: chunks through the endpoint with a bounded number in flight, retries with
back-off, progress on the caller's thread, a clean stop on Ctrl-C, resume from the output.

Threads: one reads the input into a queue of at most ``in_flight // 2`` chunks (so a Parquet input
is never all in memory), ``in_flight`` workers each keep one request open through the endpoint
(the balancer spreads them over the replicas), and the calling thread draws progress and waits.
On ``KeyboardInterrupt`` the workers finish the request they have, nothing new is sent, and
``BatchInterrupted`` says how many rows are done (with ``output=``, a re-run resumes there).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mltoolkit.batch.output import Manifest, PartsOutput
from mltoolkit.batch.plan import CostModel, backoff_s, chunk_bounds, fit_cost, plan_chunk_rows
from mltoolkit.batch.progress import BatchProgress, make_progress
from mltoolkit.batch.source import BatchInputError, MemorySource, ParquetSource, check_features, make_source
from mltoolkit.batch.summary import attempts_frame, summarize_batch
from mltoolkit.batch.transport import ENCODINGS, Answer, FatalError, Sender, TransientError
from mltoolkit.errors import MltoolkitError, SpecError

DEFAULT_IN_FLIGHT = 4
DEFAULT_TARGET_REQUEST_S = 0.25
DEFAULT_MAX_REQUEST_BYTES = 4 * 2**20  # half the model server's default body limit
PROBE_ROWS = (16, 256)
PROBE_REPEATS = 2
PROGRESS_INTERVAL_S = 0.25


class BatchError(MltoolkitError):
    """The run stopped on an error that retrying cannot fix (or after ``max_retries``)."""

    def __init__(self, message: str, rows_done: int, rows_total: int) -> None:
        super().__init__(message)
        self.rows_done = rows_done
        self.rows_total = rows_total


class BatchInterrupted(MltoolkitError):
    """Ctrl-C / a kernel interrupt stopped the run cleanly; ``rows_done`` rows are scored."""

    def __init__(self, rows_done: int, rows_total: int, output: Path | None) -> None:
        where = (
            f"; they are in {str(output)!r}: run again with the same output= to resume"
            if output is not None
            else "; give output= (a directory) to keep them and resume next time"
        )
        super().__init__(f"interrupted: {rows_done:,} of {rows_total:,} rows done{where}")
        self.rows_done = rows_done
        self.rows_total = rows_total
        self.output = output


@dataclass(frozen=True)
class BatchSettings:
    """The validated options of one run."""

    chunk_rows: int | None = None
    target_request_s: float = DEFAULT_TARGET_REQUEST_S
    in_flight: int = DEFAULT_IN_FLIGHT
    max_retries: int = 5
    timeout_s: float = 60.0
    encoding: str = "binary"
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    backoff_base_s: float = 0.1

    def __post_init__(self) -> None:
        whole = {"in_flight": 1, "max_retries": 0, "max_request_bytes": 1024}
        for name, least in whole.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise SpecError(f"predict_batch.{name}", value, f"a whole number >= {least}")
        if self.chunk_rows is not None and (
            isinstance(self.chunk_rows, bool)
            or not isinstance(self.chunk_rows, (int, np.integer))
            or self.chunk_rows < 1
        ):
            raise SpecError("predict_batch.chunk_rows", self.chunk_rows, "None (measured) or a whole number >= 1")
        for name in ("target_request_s", "timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise SpecError(f"predict_batch.{name}", value, "a finite number of seconds > 0")
        if isinstance(self.backoff_base_s, bool) or not isinstance(self.backoff_base_s, (int, float)) or not (
            0 <= self.backoff_base_s < math.inf
        ):
            raise SpecError("predict_batch.backoff_base_s", self.backoff_base_s, "a finite number of seconds >= 0")
        if self.encoding not in ENCODINGS:
            raise SpecError("predict_batch.encoding", self.encoding, f"one of {list(ENCODINGS)}")


@dataclass
class BatchRun:
    """What a run did. ``predictions`` (aligned to the input's index) unless the input was
    Parquet and went to ``output``; ``attempts`` has one row per request tried."""

    predictions: pd.Series | pd.DataFrame | None
    output: Path | None
    attempts: pd.DataFrame
    rows_total: int
    rows_resumed: int
    chunk_rows: int
    elapsed_s: float
    cost: CostModel | None = None
    nodes: dict[str, str] | None = field(default=None, repr=False)

    @property
    def rows_scored(self) -> int:
        """Rows scored by this run (not counting those resumed from an earlier one)."""
        return int(self.attempts.loc[self.attempts["ok"], "rows"].sum())

    @property
    def rows_per_s(self) -> float:
        return self.rows_scored / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    @property
    def retries(self) -> int:
        return int((~self.attempts["ok"]).sum())

    @property
    def result(self) -> pd.Series | pd.DataFrame | Path:
        """The predictions, or the output directory when they went only there."""
        if self.predictions is not None:
            return self.predictions
        assert self.output is not None
        return self.output

    def summary(self, by: str = "replica") -> pd.DataFrame:
        """Rows, chunks, retries and time per replica (``by="replica"``) or per node."""
        return summarize_batch(self.attempts, nodes=self.nodes, by=by, elapsed_s=self.elapsed_s)


def run_batch(
    endpoint: Any,
    data: Any,
    *,
    output: str | Path | None = None,
    chunk_rows: int | None = None,
    target_request_s: float = DEFAULT_TARGET_REQUEST_S,
    in_flight: int = DEFAULT_IN_FLIGHT,
    max_retries: int = 5,
    timeout_s: float | None = None,
    encoding: str = "binary",
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    backoff_base_s: float = 0.1,
    progress: Any = True,
    nodes: dict[str, str] | None = None,
) -> BatchRun:
    """Score every row of ``data`` through ``endpoint``; see ``Endpoint.predict_batch``."""
    settings = BatchSettings(
        chunk_rows=chunk_rows,
        target_request_s=target_request_s,
        in_flight=in_flight,
        max_retries=max_retries,
        timeout_s=timeout_s if timeout_s is not None else float(getattr(endpoint, "timeout_s", 60.0)),
        encoding=encoding,
        max_request_bytes=max_request_bytes,
        backoff_base_s=backoff_base_s,
    )
    draw = make_progress(progress)
    source = make_source(data)
    check_features(source, _expected_features(endpoint))
    parts = PartsOutput(output) if output is not None else None
    manifest = parts.manifest() if parts is not None else None
    cost = None
    if manifest is not None:
        rows = manifest.chunk_rows  # a resumed run keeps its chunks, whatever was asked now
    elif settings.chunk_rows is not None:
        rows = min(int(settings.chunk_rows), source.total_rows)
    else:
        cost = _probe(endpoint, source, settings)
        rows = plan_chunk_rows(
            cost,
            target_s=settings.target_request_s,
            total_rows=source.total_rows,
            in_flight=settings.in_flight,
            bytes_per_row=_bytes_per_row(source, settings.encoding),
            max_request_bytes=settings.max_request_bytes,
        )
    if parts is not None:
        parts.start(Manifest(source.total_rows, source.n_features, rows, source.columns, source.fingerprint()))
    runner = _Runner(endpoint, source, parts, rows, settings, draw)
    runner.run()
    return BatchRun(
        predictions=runner.predictions(),
        output=parts.path if parts is not None else None,
        attempts=attempts_frame(runner.attempts),
        rows_total=source.total_rows,
        rows_resumed=runner.rows_resumed,
        chunk_rows=rows,
        elapsed_s=runner.elapsed_s,
        cost=cost,
        nodes=nodes,
    )


def _expected_features(endpoint: Any) -> int | None:
    """The model's feature count from its V2 metadata (a GET; no prediction is requested)."""
    try:
        shape = endpoint.metadata()["inputs"][0]["shape"]
        return int(shape[-1]) if int(shape[-1]) >= 0 else None
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _bytes_per_row(source: MemorySource | ParquetSource, encoding: str) -> int:
    # binary: 8 bytes a float64 value; JSON: ~20 characters a value as orjson writes a double
    return source.n_features * (8 if encoding == "binary" else 20)


def _probe(endpoint: Any, source: MemorySource | ParquetSource, settings: BatchSettings) -> CostModel:
    """Time requests of two sizes on the first rows (their answers are dropped)."""
    small, large = (min(n, source.total_rows) for n in PROBE_ROWS)
    if small == large:
        return CostModel(fixed_s=settings.target_request_s, per_row_s=0.0)  # one chunk holds it all
    rows = next(iter(source.read(large, set())))[1]
    sender = Sender(endpoint.infer_url, settings.timeout_s, settings.encoding)
    samples = []
    try:
        _send_with_retries(sender, rows[:small], settings)  # opens the connection: not timed
        for _ in range(PROBE_REPEATS):
            for n in (small, large):
                samples.append((n, _send_with_retries(sender, rows[:n], settings).latency_s))
    finally:
        sender.close()
    return fit_cost(samples)


def _send_with_retries(sender: Sender, rows: np.ndarray, settings: BatchSettings) -> Answer:
    for attempt in range(1, settings.max_retries + 2):
        try:
            return sender.send(rows)
        except TransientError:
            if attempt > settings.max_retries:
                raise
            time.sleep(backoff_s(attempt, settings.backoff_base_s))
    raise AssertionError("unreachable")


class _Runner:
    def __init__(
        self,
        endpoint: Any,
        source: MemorySource | ParquetSource,
        parts: PartsOutput | None,
        chunk_rows: int,
        settings: BatchSettings,
        draw: Any,
    ) -> None:
        self.endpoint = endpoint
        self.source = source
        self.parts = parts
        self.chunk_rows = chunk_rows
        self.settings = settings
        self.draw = draw
        self.lock = threading.Lock()
        self.stop = threading.Event()
        # read ahead by half the workers: enough to keep them busy, and memory holds at most
        # in_flight + in_flight / 2 chunks (what bounds a run over a Parquet input)
        self.queue: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue(
            maxsize=max(1, settings.in_flight // 2)
        )
        self.results: dict[int, np.ndarray] = {}
        self.attempts: list[dict[str, Any]] = []
        self.failure: BaseException | None = None
        done = parts.done_starts() if parts is not None else set()
        sizes = {c.start: c.rows for c in chunk_bounds(source.total_rows, chunk_rows)}
        unknown = done - set(sizes)
        if unknown:
            raise BatchInputError(f"output holds parts that do not match its chunks: {sorted(unknown)[:5]}")
        self.skip = done
        self.rows_resumed = sum(sizes[s] for s in done)
        self.rows_done = self.rows_resumed
        self.retries = 0
        self.started = time.perf_counter()
        self.elapsed_s = 0.0

    # ------------------------------------------------------------------ threads

    def _put(self, item: tuple[int, np.ndarray] | None) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for start, rows in self.source.read(self.chunk_rows, self.skip):
                if not self._put((start, rows)):
                    return
        except BaseException as exc:  # e.g. a non-finite value found in a Parquet chunk
            self._fail(exc)
        finally:
            for _ in range(self.settings.in_flight):
                if not self._put(None):
                    break

    def _fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.failure is None:
                self.failure = exc
        self.stop.set()

    def _work(self, worker: int) -> None:
        sender = Sender(self.endpoint.infer_url, self.settings.timeout_s, self.settings.encoding)
        try:
            while not self.stop.is_set():
                try:
                    item = self.queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is None:
                    return
                self._score(sender, worker, *item)
        except BaseException as exc:
            self._fail(exc)
        finally:
            sender.close()

    def _score(self, sender: Sender, worker: int, start: int, rows: np.ndarray) -> None:
        attempt = 0
        while not self.stop.is_set():
            attempt += 1
            sent = time.perf_counter() - self.started
            try:
                answer = sender.send(rows)
            except (TransientError, FatalError) as exc:
                latency = time.perf_counter() - self.started - sent
                self._record(start, len(rows), attempt, exc.replica, exc.status, False, str(exc), sent, latency, worker)
                with self.lock:
                    self.retries += 1
                if isinstance(exc, FatalError):
                    raise BatchError(str(exc), self.rows_done, self.source.total_rows) from None
                if attempt > self.settings.max_retries:
                    raise BatchError(
                        f"the chunk of rows {start}..{start + len(rows) - 1} failed {attempt} times; "
                        f"the last error: {exc}",
                        self.rows_done,
                        self.source.total_rows,
                    ) from None
                self.stop.wait(backoff_s(attempt, self.settings.backoff_base_s))
                continue
            if self.parts is not None:
                self.parts.write(start, answer.predictions)
            else:
                with self.lock:
                    self.results[start] = answer.predictions
            self._record(
                start, len(rows), attempt, answer.replica, 200, True, None, sent, answer.latency_s, worker,
                answer.request_bytes, answer.response_bytes,
            )  # fmt: skip
            with self.lock:
                self.rows_done += len(rows)
            return

    def _record(
        self, start: int, rows: int, attempt: int, replica: str | None, status: int, ok: bool,
        error: str | None, sent: float, latency: float, worker: int,
        request_bytes: int = 0, response_bytes: int = 0,
    ) -> None:  # fmt: skip
        with self.lock:
            self.attempts.append(
                {
                    "start": start, "rows": rows, "attempt": attempt, "replica": replica,
                    "status": status, "ok": ok, "error": error, "sent_s": sent,
                    "latency_s": latency, "worker": worker, "request_bytes": request_bytes,
                    "response_bytes": response_bytes,
                }
            )  # fmt: skip

    # ------------------------------------------------------------------ the caller's thread

    def _snapshot(self, finished: bool = False) -> BatchProgress:
        with self.lock:
            return BatchProgress(
                rows_done=self.rows_done,
                rows_total=self.source.total_rows,
                elapsed_s=time.perf_counter() - self.started,
                retries=self.retries,
                rows_resumed=self.rows_resumed,
                finished=finished,
            )

    def run(self) -> None:
        threads = [threading.Thread(target=self._read, name="batch-reader", daemon=True)]
        threads += [
            threading.Thread(target=self._work, args=(i,), name=f"batch-worker-{i}", daemon=True)
            for i in range(self.settings.in_flight)
        ]
        self.started = time.perf_counter()
        for thread in threads:
            thread.start()
        try:
            while alive := [t for t in threads if t.is_alive()]:
                alive[0].join(PROGRESS_INTERVAL_S)
                if self.draw is not None and alive[0].is_alive():
                    self.draw(self._snapshot())
        except KeyboardInterrupt:
            self.stop.set()
            for thread in threads:
                thread.join()
            self.elapsed_s = time.perf_counter() - self.started
            if self.draw is not None:
                self.draw(self._snapshot(finished=True))
            output = self.parts.path if self.parts is not None else None
            raise BatchInterrupted(self.rows_done, self.source.total_rows, output) from None
        self.elapsed_s = time.perf_counter() - self.started
        if self.failure is not None:
            if isinstance(self.failure, MltoolkitError):
                raise self.failure
            raise BatchError(
                f"{type(self.failure).__name__}: {self.failure}", self.rows_done, self.source.total_rows
            ) from self.failure
        if self.draw is not None:
            self.draw(self._snapshot(finished=True))

    def predictions(self) -> pd.Series | pd.DataFrame | None:
        source = self.source
        if self.parts is not None:
            if not source.in_memory:
                return None
            frame = self.parts.read()
            values = frame.drop(columns="row").to_numpy()
            values = values[:, 0] if values.shape[1] == 1 else values
        else:
            values = np.concatenate([self.results[s] for s in sorted(self.results)])
        if len(values) != source.total_rows:
            raise BatchError(
                f"{len(values)} predictions for {source.total_rows} rows", len(values), source.total_rows
            )
        index = source.index if isinstance(source, MemorySource) else pd.RangeIndex(source.total_rows)
        if values.ndim == 1:
            return pd.Series(values, index=index, name="prediction")
        flat = values.reshape(len(values), -1)
        return pd.DataFrame(flat, index=index, columns=[f"prediction_{i}" for i in range(flat.shape[1])])
