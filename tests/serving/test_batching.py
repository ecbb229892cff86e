"""The batcher on its own: a recording predict function, real asyncio concurrency.

The predict function answers ``10 * first column`` so each answer names the row it came from.
"""

import asyncio
import threading

import anyio
import numpy as np
import pytest

from mltoolkit.serving import batching
from mltoolkit.serving.batching import Batcher, PredictCall
from mltoolkit.spec import BatchingSpec

pytestmark = pytest.mark.anyio
SAFETY_S = 30  # a request never answered fails the test instead of hanging it


def tagged_rows(*tags: int) -> np.ndarray:
    return np.array([[tag, 0.0] for tag in tags])


def tens(rows: np.ndarray) -> np.ndarray:
    if (rows < 0).any():
        raise ValueError("negative row")
    return rows[:, 0] * 10


async def gather(batcher: Batcher, *requests: np.ndarray) -> list:
    with anyio.fail_after(SAFETY_S):
        return await asyncio.gather(
            *(batcher.predict(rows) for rows in requests), return_exceptions=True
        )


async def test_concurrent_requests_share_one_call_and_get_their_own_rows_back():
    batcher = Batcher(tens, BatchingSpec(max_batch_size=64, max_wait_ms=50))
    requests = [tagged_rows(i) if i % 3 else tagged_rows(i, i + 100, i + 200) for i in range(12)]
    answers = await gather(batcher, *requests)
    for rows, answer in zip(requests, answers):
        assert answer.tolist() == (rows[:, 0] * 10).tolist()
    assert list(batcher.calls) == [PredictCall(rows=20, requests=12, reason="max_wait")]


async def test_a_lone_request_is_flushed_by_max_wait():
    batcher = Batcher(tens, BatchingSpec(max_batch_size=64, max_wait_ms=20))
    [answer] = await gather(batcher, tagged_rows(7))
    assert answer.tolist() == [70.0]
    assert list(batcher.calls) == [PredictCall(rows=1, requests=1, reason="max_wait")]


async def test_zero_wait_flushes_what_arrived_in_the_same_loop_tick():
    batcher = Batcher(tens, BatchingSpec(max_batch_size=64, max_wait_ms=0))
    answers = await gather(batcher, *(tagged_rows(i) for i in range(5)))
    assert [a.tolist() for a in answers] == [[0.0], [10.0], [20.0], [30.0], [40.0]]
    assert list(batcher.calls) == [PredictCall(rows=5, requests=5, reason="tick")]


async def test_batches_never_exceed_max_batch_size():
    batcher = Batcher(tens, BatchingSpec(max_batch_size=4, max_wait_ms=1000))
    answers = await gather(batcher, *(tagged_rows(i) for i in range(8)))
    assert [a.tolist() for a in answers] == [[i * 10.0] for i in range(8)]
    # 8 one-row requests, 4 per batch: two full batches, neither waited for the 1 s timer
    assert list(batcher.calls) == [PredictCall(4, 4, "full"), PredictCall(4, 4, "full")]


async def test_a_request_that_would_overflow_the_batch_starts_the_next_one():
    batcher = Batcher(tens, BatchingSpec(max_batch_size=4, max_wait_ms=20))
    answers = await gather(batcher, tagged_rows(1, 2, 3), tagged_rows(4, 5))
    assert [a.tolist() for a in answers] == [[10.0, 20.0, 30.0], [40.0, 50.0]]
    # 3 rows + 2 rows > 4: the first batch goes out full, the second waits for its timer
    assert list(batcher.calls) == [PredictCall(3, 1, "full"), PredictCall(2, 1, "max_wait")]


async def test_a_request_as_big_as_a_batch_is_predicted_alone_and_whole():
    batcher = Batcher(tens, BatchingSpec(max_batch_size=4, max_wait_ms=20))
    answers = await gather(batcher, tagged_rows(*range(6)), tagged_rows(9))
    assert [a.tolist() for a in answers] == [[0.0, 10.0, 20.0, 30.0, 40.0, 50.0], [90.0]]
    assert list(batcher.calls) == [PredictCall(6, 1, "alone"), PredictCall(1, 1, "max_wait")]


async def test_batching_off_means_one_call_per_request():
    batcher = Batcher(tens, BatchingSpec(enabled=False))
    answers = await gather(batcher, *(tagged_rows(i) for i in range(5)))
    assert [a.tolist() for a in answers] == [[i * 10.0] for i in range(5)]
    assert list(batcher.calls) == [PredictCall(1, 1, "alone")] * 5


async def test_a_failing_merged_call_is_retried_alone_so_only_the_culprit_fails():
    batcher = Batcher(tens, BatchingSpec(max_batch_size=64, max_wait_ms=50))
    answers = await gather(batcher, tagged_rows(1), tagged_rows(-1), tagged_rows(2, 3))
    assert answers[0].tolist() == [10.0]
    assert isinstance(answers[1], ValueError) and "negative row" in str(answers[1])
    assert answers[2].tolist() == [20.0, 30.0]
    assert list(batcher.calls) == [
        PredictCall(4, 3, "max_wait"),
        PredictCall(1, 1, "retry_alone"),
        PredictCall(1, 1, "retry_alone"),
        PredictCall(2, 1, "retry_alone"),
    ]


async def test_a_lone_failing_request_gets_its_error():
    batcher = Batcher(tens, BatchingSpec(max_batch_size=64, max_wait_ms=5))
    [answer] = await gather(batcher, tagged_rows(-5))
    assert isinstance(answer, ValueError)
    assert list(batcher.calls) == [PredictCall(1, 1, "max_wait")]


async def test_shutdown_flushes_the_open_batch_at_once():
    batcher = Batcher(tens, BatchingSpec(max_batch_size=64, max_wait_ms=1000))
    with anyio.fail_after(SAFETY_S):
        waiting = asyncio.ensure_future(batcher.predict(tagged_rows(4)))
        while batcher.pending_requests == 0:
            await asyncio.sleep(0)
        batcher.flush("shutdown")
        assert (await waiting).tolist() == [40.0]
    assert list(batcher.calls) == [PredictCall(1, 1, "shutdown")]


async def test_a_cancelled_request_does_not_disturb_the_others():
    batcher = Batcher(tens, BatchingSpec(max_batch_size=64, max_wait_ms=20))
    with anyio.fail_after(SAFETY_S):
        gone = asyncio.ensure_future(batcher.predict(tagged_rows(1)))
        kept = asyncio.ensure_future(batcher.predict(tagged_rows(2)))
        while batcher.pending_requests < 2:
            await asyncio.sleep(0)
        gone.cancel()
        assert (await kept).tolist() == [20.0]
    assert list(batcher.calls) == [PredictCall(1, 1, "max_wait")]


class Gate:
    """A predict function that blocks (in whatever thread runs it) until the test releases it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.threads: list[str] = []

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        if not self.release.wait(SAFETY_S):
            raise TimeoutError("the test never released the model")
        return rows[:, 0] * 10


async def test_a_slow_model_runs_in_a_worker_and_the_batch_keeps_filling_meanwhile():
    gate = Gate()
    batcher = Batcher(gate, BatchingSpec(max_batch_size=64, max_wait_ms=1), offload_after_ms=0)
    with anyio.fail_after(SAFETY_S):
        assert (await batcher.predict(tagged_rows(1))).tolist() == [10.0]
        assert batcher.offloading  # its first call took longer than 0 ms
        gate.release.clear()
        gate.entered.clear()
        first = asyncio.ensure_future(batcher.predict(tagged_rows(2)))
        while not gate.entered.is_set():  # the loop runs on while the model works
            await asyncio.sleep(0.001)
        early = asyncio.ensure_future(batcher.predict(tagged_rows(3)))
        await asyncio.sleep(0.05)  # its 1 ms timer fires while the worker is busy
        late = [asyncio.ensure_future(batcher.predict(tagged_rows(t))) for t in (4, 5)]
        while batcher.pending_requests < 3:
            await asyncio.sleep(0.001)
        gate.release.set()
        answers = await asyncio.gather(first, early, *late)
    assert [a.tolist() for a in answers] == [[20.0], [30.0], [40.0], [50.0]]
    assert list(batcher.calls) == [
        PredictCall(1, 1, "max_wait"),
        PredictCall(1, 1, "max_wait"),
        PredictCall(3, 3, "max_wait"),  # the early request waited for the late ones
    ]
    assert gate.threads[0] == threading.current_thread().name
    assert all(name.startswith("predict") for name in gate.threads[1:])
    batcher.close()


async def test_a_fast_model_stays_on_the_event_loop_thread():
    gate = Gate()
    batcher = Batcher(gate, BatchingSpec(max_wait_ms=0), offload_after_ms=1000)
    with anyio.fail_after(SAFETY_S):
        for tag in range(3):
            await batcher.predict(tagged_rows(tag))
    assert not batcher.offloading
    assert gate.threads == [threading.current_thread().name] * 3


# -- waiting for the usual crowd (max_wait_ms == 0 under load; see the module doc) -------------


def crowd_wait_ms(monkeypatch, ms: float) -> None:
    """Every wait for the crowd lasts ``ms``, whatever the model's call time."""
    monkeypatch.setattr(batching, "CROWD_WAIT_MS_MIN", ms)
    monkeypatch.setattr(batching, "CROWD_WAIT_MS_MAX", ms)


async def prime(batcher: Batcher, bursts: int = 5, size: int = 8) -> None:
    """Calls that merged ``size`` requests each, as under load."""
    for burst in range(bursts):
        await gather(batcher, *(tagged_rows(burst * size + i) for i in range(size)))


async def test_at_idle_a_lone_request_is_sealed_at_the_tick(monkeypatch):
    crowd_wait_ms(monkeypatch, 3_600_000.0)  # a wait would hang the test
    batcher = Batcher(tens, BatchingSpec(max_wait_ms=0))
    for tag in range(5):
        assert (await gather(batcher, tagged_rows(tag)))[0].tolist() == [tag * 10.0]
    assert [call.reason for call in batcher.calls] == ["tick"] * 5
    assert batcher.usual_requests == 1.0


async def test_under_load_a_lone_request_waits_for_the_usual_crowd(monkeypatch):
    crowd_wait_ms(monkeypatch, 3_600_000.0)  # only the crowd seals it
    batcher = Batcher(tens, BatchingSpec(max_wait_ms=0))
    await prime(batcher)
    usual = int(batcher.usual_requests)
    assert usual >= 2
    with anyio.fail_after(SAFETY_S):
        first = asyncio.ensure_future(batcher.predict(tagged_rows(100)))
        for _ in range(20):  # many loop passes: the tick has long run, the batch stays open
            await asyncio.sleep(0)
        assert batcher.pending_requests == 1 and not first.done()
        rest = [asyncio.ensure_future(batcher.predict(tagged_rows(101 + i))) for i in range(usual - 1)]
        answers = await asyncio.gather(first, *rest)
    assert [a.tolist() for a in answers] == [[1000.0 + 10 * i] for i in range(usual)]
    assert batcher.calls[-1] == PredictCall(rows=usual, requests=usual, reason="usual")


async def test_the_wait_for_the_crowd_ends_after_one_call_s_time_and_stops_as_load_falls(monkeypatch):
    crowd_wait_ms(monkeypatch, 20.0)
    batcher = Batcher(tens, BatchingSpec(max_wait_ms=0))
    await prime(batcher)
    primed = len(batcher.calls)
    averages = []
    for tag in range(15):  # lone requests one after another: the load has fallen
        averages.append(batcher.usual_requests)
        assert (await gather(batcher, tagged_rows(tag)))[0].tolist() == [tag * 10.0]
    reasons = [call.reason for call in list(batcher.calls)[primed:]]
    assert reasons == ["waited" if average >= 2 else "tick" for average in averages]
    assert reasons[0] == "waited" and reasons[-1] == "tick"
