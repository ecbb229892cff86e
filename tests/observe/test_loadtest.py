"""load_test against a real aiohttp server on a loopback port (tests/observe/conftest.py)."""

from __future__ import annotations

import asyncio
import io
import re
import threading
import time

import numpy as np
import pandas as pd
import pytest

from mltoolkit.endpoint import Endpoint, EndpointError
from mltoolkit.errors import SpecError
from mltoolkit.observe.loadtest import COLUMNS, load_test
from mltoolkit.observe.payload import Payloads
from mltoolkit.observe.progress import TextProgress
from mltoolkit.observe.summary import summarize


def all_match(errors: pd.Series, pattern: str) -> bool:
    """Every value is a string matching ``pattern`` (None or NaN do not match)."""
    return len(errors) > 0 and all(isinstance(e, str) and re.search(pattern, e) for e in errors)


def max_overlap(df: pd.DataFrame) -> int:
    """Most requests in flight at once, from the rows' [scheduled, scheduled + latency] spans."""
    events = [(s, 1) for s in df["scheduled_s"]] + [
        (s + lat, -1) for s, lat in zip(df["scheduled_s"], df["latency_s"], strict=True)
    ]
    in_flight = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # ends before starts at ties
        in_flight += step
        peak = max(peak, in_flight)
    return peak


def test_open_loop_sends_rate_times_duration_on_schedule(fake_server):
    server = fake_server(delay_s=0.1)
    df = load_test(server.endpoint(), rate=20, duration=1.0, timeout_s=10)

    assert list(df.columns) == list(COLUMNS)
    assert 19 <= len(df) <= 21  # rate × duration ± 1
    assert server.inferences == len(df)
    # a request leaves every 50 ms and is held 100 ms: sending without waiting for answers
    # means the server holds more than one at a time
    assert server.max_in_flight >= 2
    assert df["scheduled_s"].iloc[0] == 0.0
    np.testing.assert_allclose(np.diff(df["scheduled_s"]), 1 / 20)
    assert (df["status"] == 200).all()
    assert df["error"].isna().all()
    assert (df["latency_s"] > 0).all()
    assert set(df["replica"]) == {"r0", "r1"}
    assert df["status"].dtype == np.int64 and df["latency_s"].dtype == np.float64
    assert df.attrs["mode"] == "open"
    assert not [t for t in threading.enumerate() if t.name == "mltoolkit-load-test"]


def test_open_loop_latency_includes_queueing_at_a_slow_server(fake_server):
    # The server handles one request at a time, 50 ms each (20/s), and we send 40/s for 1 s.
    # It cannot start before the test does, so its k-th answer leaves >= 0.05·k s after the
    # start, while every request was scheduled by 0.975 s: the last answer's latency is
    # >= 40·0.05 - 0.975 = 1.025 s, and the 10 latest >= 31·0.05 - 0.975 = 0.575 s.
    server = fake_server(delay_s=0.05, one_at_a_time=True)
    df = load_test(server.endpoint(), rate=40, duration=1.0, timeout_s=20)

    assert len(df) == 40 and (df["status"] == 200).all()
    assert df["latency_s"].max() >= 1.0
    assert (df["latency_s"].nlargest(10) >= 0.5).all()
    # later requests wait longer: latency grows with the scheduled time
    assert np.corrcoef(df["scheduled_s"], df["latency_s"])[0, 1] > 0.5


def test_latency_is_measured_from_the_scheduled_time_not_the_send(fake_server):
    # One client connection: requests wait in the client's pool before they are sent. The
    # server answers concurrently in 50 ms, so measured from the send every latency would be
    # ~0.05 s; from the schedule, the k-th answer (>= 0.05·k s after the start) of requests
    # scheduled by 0.475 s has latency >= 20·0.05 - 0.475 = 0.525 s for the last one.
    server = fake_server(delay_s=0.05)
    df = load_test(server.endpoint(), rate=40, duration=0.5, timeout_s=20, connections=1)

    assert len(df) == 20 and (df["status"] == 200).all()
    assert server.max_in_flight == 1
    assert df["latency_s"].max() >= 0.5
    assert (df["latency_s"].nlargest(5) >= 0.3).all()  # 16·0.05 - 0.475 = 0.325


def test_latency_includes_the_time_the_generator_itself_fell_behind(fake_server, monkeypatch):
    # The generator stalls: building the first body blocks its event loop for 0.3 s, so every
    # request scheduled during the stall leaves only after it. A fast server answers in ms, so
    # latency from the actual send would be tiny; from the schedule, request i (scheduled at
    # i/rate) cannot be answered before the stall ends, >= 0.3 s after the start:
    # latency_i >= 0.3 - i/rate, exactly, however fast or slow the machine.
    stall_s, rate = 0.3, 100
    build = Payloads.body
    stalled = []

    def slow_first_build(self, index):
        if not stalled:
            stalled.append(index)
            time.sleep(stall_s)  # blocks the load generator's event loop, as a stalled client would
        return build(self, index)

    monkeypatch.setattr(Payloads, "body", slow_first_build)
    server = fake_server()
    df = load_test(server.endpoint(), rate=rate, duration=0.6, timeout_s=20)

    assert stalled == [0]
    # nothing dropped: what was due during the stall was sent after it, at its scheduled time
    assert len(df) == 60 and (df["status"] == 200).all()
    schedule = np.arange(60) / rate
    np.testing.assert_allclose(df["scheduled_s"], schedule, atol=1e-9)
    during = schedule < stall_s - 1e-9  # the 30 requests due while the generator was stalled
    assert during.sum() == 30
    assert (df["latency_s"][during] >= stall_s - schedule[during] - 1e-6).all()
    # the first request waited the whole stall
    assert df["latency_s"].iloc[0] >= stall_s


def test_closed_loop_never_has_more_than_concurrency_in_flight(fake_server):
    server = fake_server(delay_s=0.1)
    df = load_test(server.endpoint(), concurrency=3, duration=30, max_requests=24, timeout_s=10)

    assert len(df) == 24 and server.inferences == 24
    assert (df["status"] == 200).all()
    assert server.max_in_flight == 3  # the three workers did overlap, and never more
    assert max_overlap(df) <= 3
    assert df.attrs["mode"] == "closed"


def test_closed_loop_stops_sending_at_the_duration(fake_server):
    server = fake_server(delay_s=0.05)
    df = load_test(server.endpoint(), concurrency=2, duration=0.5, timeout_s=10)

    assert (df["scheduled_s"] < 0.5).all()
    # each worker's requests take >= 0.05 s and start before 0.5 s: at most 11 per worker
    assert 2 <= len(df) <= 22
    assert server.inferences == len(df)


def test_http_errors_become_rows_with_status_and_text(fake_server):
    server = fake_server(fail_every=3)
    df = load_test(server.endpoint(), concurrency=1, duration=30, max_requests=9, X=[[1.0, 2.0]])

    assert df["status"].tolist() == [200, 200, 400] * 3
    failed = df[df["status"] == 400]
    assert all_match(failed["error"], r"^HTTP 400: bad input in request \d+$")
    assert failed["replica"].notna().all() and failed["latency_s"].notna().all()
    assert df.loc[df["status"] == 200, "error"].isna().all()
    assert summarize(df).loc["overall", "errors"] == 3


def test_a_server_that_is_down_gives_status_zero_rows(unused_port):
    endpoint = Endpoint(f"http://127.0.0.1:{unused_port}", "digits")
    df = load_test(endpoint, rate=10, duration=0.5, X=[[1.0, 2.0]], timeout_s=5)

    assert len(df) == 5
    assert (df["status"] == 0).all()
    assert df["latency_s"].isna().all()
    assert df["replica"].isna().all()
    assert all_match(df["error"], r"(?i)connect")


def test_without_rows_a_server_that_is_down_is_a_clear_error(unused_port):
    endpoint = Endpoint(f"http://127.0.0.1:{unused_port}", "digits", timeout_s=5)
    with pytest.raises(EndpointError, match="cannot reach"):
        load_test(endpoint, rate=10, duration=0.5)


def test_requests_without_an_answer_in_time_get_timeout_rows(fake_server):
    server = fake_server(delay_s=5.0)
    df = load_test(server.endpoint(), rate=4, duration=0.5, timeout_s=0.3)

    assert len(df) == 2
    assert (df["status"] == 0).all() and df["latency_s"].isna().all()
    assert all_match(df["error"], r"timeout_s=0.3 s")
    # the first request (sent at 0) runs out of its own time before the test's end + 0.3 s
    assert df["error"].iloc[0] == "timeout: no answer within timeout_s=0.3 s"


def test_payload_is_zeros_shaped_by_the_metadata(fake_server):
    server = fake_server()
    load_test(server.endpoint(), concurrency=1, duration=30, max_requests=2)

    assert ("GET", "/v2/models/digits") in server.requests
    assert server.bodies == [("/predict", {"instances": [[0.0, 0.0, 0.0, 0.0]]})] * 2


def test_v2_protocol_cycles_rows_of_x_and_names_the_input_from_metadata(fake_server):
    server = fake_server(metadata_input={"name": "features", "datatype": "FP32", "shape": [-1, 2]})
    X = pd.DataFrame({"a": [1.0, 3.0, 5.0], "b": [2.0, 4.0, 6.0]})
    load_test(
        server.endpoint(),
        concurrency=1,
        duration=30,
        max_requests=3,
        X=X,
        rows_per_request=2,
        protocol="v2",
    )

    def tensor(data):
        return {"inputs": [{"name": "features", "shape": [2, 2], "datatype": "FP32", "data": data}]}

    path = "/v2/models/digits/infer"
    assert server.bodies == [
        (path, tensor([1.0, 2.0, 3.0, 4.0])),  # rows 0, 1
        (path, tensor([5.0, 6.0, 1.0, 2.0])),  # rows 2, 0
        (path, tensor([3.0, 4.0, 5.0, 6.0])),  # rows 1, 2
    ]


def test_poisson_arrivals_send_what_the_schedule_says(fake_server):
    server = fake_server()
    df = load_test(server.endpoint(), rate=30, duration=0.5, arrivals="poisson", seed=7)

    assert len(df) == server.inferences > 0
    assert (np.diff(df["scheduled_s"]) > 0).all()
    assert not np.allclose(np.diff(df["scheduled_s"]), 1 / 30)


def test_runs_inside_a_running_event_loop_as_in_jupyter(fake_server):
    server = fake_server()

    async def cell():
        return load_test(server.endpoint(), rate=10, duration=0.3)

    df = asyncio.run(cell())
    assert len(df) == 3 and (df["status"] == 200).all()


def test_progress_reports_on_the_callers_thread(fake_server):
    server = fake_server(delay_s=0.02)
    seen = []

    def record(progress):
        seen.append((threading.current_thread() is threading.main_thread(), progress))

    df = load_test(server.endpoint(), rate=10, duration=1.2, progress=record)

    assert all(on_main for on_main, _ in seen)
    assert seen[-1][1].finished and seen[-1][1].sent == len(df) == seen[-1][1].answered
    assert len(seen) >= 2  # at least one update while running, then the final one

    stream = io.StringIO()
    TextProgress(stream)(seen[-1][1])
    assert stream.getvalue() == f"\rload test done: {len(df)} sent, {len(df)} answered, 0 errors\n"


def test_progress_true_prints_one_updating_line(fake_server, capsys):
    server = fake_server()
    load_test(server.endpoint(), rate=10, duration=0.3, progress=True)
    out = capsys.readouterr().out
    assert out.startswith("\rload test") and out.endswith(
        "load test done: 3 sent, 3 answered, 0 errors\n"
    )


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({}, "load_test.rate/concurrency"),
        ({"rate": 10, "concurrency": 2}, "load_test.rate/concurrency"),
        ({"rate": 0}, "load_test.rate"),
        ({"rate": -5}, "load_test.rate"),
        ({"rate": float("inf")}, "load_test.rate"),
        ({"rate": "10"}, "load_test.rate"),
        ({"concurrency": 0}, "load_test.concurrency"),
        ({"concurrency": 2.5}, "load_test.concurrency"),
        ({"concurrency": True}, "load_test.concurrency"),
        ({"rate": 10, "duration": 0}, "load_test.duration"),
        ({"rate": 10, "timeout_s": -1}, "load_test.timeout_s"),
        ({"rate": 10, "rows_per_request": 0}, "load_test.rows_per_request"),
        ({"rate": 10, "protocol": "grpc"}, "load_test.protocol"),
        ({"rate": 10, "max_requests": 0}, "load_test.max_requests"),
        ({"rate": 10, "arrivals": "bursty"}, "load_test.arrivals"),
        ({"concurrency": 2, "arrivals": "poisson"}, "load_test.arrivals"),
        ({"rate": 10, "connections": 0}, "load_test.connections"),
        ({"rate": 10, "seed": 1.5}, "load_test.seed"),
        ({"rate": 10, "progress": "yes"}, "load_test.progress"),
        ({"rate": 10, "X": [1.0, 2.0]}, "load_test.X"),
        ({"rate": 10, "X": [[]]}, "load_test.X"),
    ],
)
def test_bad_arguments_fail_before_any_request(fake_server, kwargs, field):
    server = fake_server()
    with pytest.raises(SpecError) as info:
        load_test(server.endpoint(), **{"duration": 0.5, **kwargs})
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert server.requests == []


def test_an_endpoint_is_required(fake_server):
    with pytest.raises(SpecError, match="load_test.endpoint"):
        load_test("http://127.0.0.1:1", rate=10)


def test_the_generators_send_lag_is_reported(fake_server):
    server = fake_server(delay_s=0.0)
    df = load_test(server.endpoint(), rate=50, duration=0.5)
    lags = [df.attrs[k] for k in ("send_lag_p50_ms", "send_lag_p99_ms", "send_lag_max_ms")]
    assert all(lag >= 0 for lag in lags)  # never sent before its time
    assert lags == sorted(lags)
    closed = load_test(server.endpoint(), concurrency=2, duration=0.3)
    assert np.isnan(closed.attrs["send_lag_p99_ms"])  # no schedule, no lag


def test_objects_alive_before_the_test_are_frozen_out_of_gc_during_it(fake_server):
    """A full collection of the caller's heap used to pause the generator mid-test."""
    import gc

    server = fake_server(delay_s=0.0)
    before = gc.get_freeze_count()
    during = []
    load_test(server.endpoint(), rate=20, duration=1.2, progress=lambda p: during.append(gc.get_freeze_count()))
    assert during and min(during) > before
    assert gc.get_freeze_count() == before


def test_the_precise_timer_never_wakes_early():
    from mltoolkit.observe.timer import PreciseTimer

    async def sleep_a_few_times():
        loop = asyncio.get_running_loop()
        timer = PreciseTimer(loop)
        precise = timer.precise
        woke = []
        try:
            for i in range(5):
                when = loop.time() + 0.003 * (i + 1)
                await timer.sleep_until(when)
                woke.append(loop.time() - when)
            await timer.sleep_until(loop.time() - 1)  # the past: at once
        finally:
            timer.close()
        return precise, woke

    precise, woke = asyncio.run(sleep_a_few_times())
    assert precise  # Linux: a timerfd, not asyncio.sleep's millisecond epoll timeout
    assert all(lag >= 0 for lag in woke)
