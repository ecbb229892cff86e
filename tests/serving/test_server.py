"""The real ``python -m mltoolkit.serving`` process on a free loopback port."""

import json
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest

from mltoolkit.serving.testing import SleepyModel


SAFETY_S = 60




def call(url: str, payload=None, method: str | None = None, raw: bytes | None = None):
    """(status, JSON body, headers) of one request; HTTP errors are answers too."""
    data = raw if raw is not None else (None if payload is None else json.dumps(payload).encode())
    request = urllib.request.Request(url, data=data, method=method or ("GET" if data is None else "POST"))
    try:
        with urllib.request.urlopen(request, timeout=SAFETY_S) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def test_real_server_predicts_refuses_bad_requests_and_keeps_serving(servers, digits_path, digits_model):
    clf, X, _ = digits_model
    server = servers(
        "--model-path", digits_path, "--model-name", "digits", "--port", "0",
        "--replica-id", "digits-0", "--max-request-bytes", "65536",
    )  # fmt: skip
    expected = clf.predict(X[:40]).tolist()

    status, answer, headers = call(f"{server.url}/predict", {"instances": X[:40].tolist()})
    assert (status, answer["predictions"]) == (200, expected)
    assert headers["X-Replica"] == "digits-0" and headers["X-In-Flight"] == "0"

    tensor = {"name": "x", "shape": [40, 64], "datatype": "FP64", "data": X[:40].tolist()}
    infer = {"id": "7", "inputs": [tensor]}
    status, answer, headers = call(f"{server.url}/v2/models/digits/infer", infer)
    assert status == 200 and answer["id"] == "7"
    assert answer["outputs"][0]["data"] == expected
    assert answer["outputs"][0]["shape"] == [40]
    assert headers["X-Replica"] == "digits-0"

    row = X[0].tolist()
    v2 = "/v2/models/digits/infer"
    bad_requests = [
        ("/predict", None, b"{not json", 400, "not valid JSON"),
        ("/predict", {"instances": [row[:10]]}, None, 400, "rows have 10 features; this model expects 64"),
        ("/predict", {"instances": [row, row[:3]]}, None, 400, "ragged"),
        ("/predict", {"instances": [["x"] * 64]}, None, 400, "found a string"),
        (v2, {"inputs": [{**tensor, "datatype": "STRING"}]}, None, 400, "'STRING' is not supported"),
        (v2, {"inputs": [{**tensor, "shape": [41, 64]}]}, None, 400, "needs 2624"),
        ("/v2/models/nine/infer", infer, None, 404, "unknown model 'nine'"),
        ("/predict", None, b" " * 70000, 413, "limit of 65536 bytes"),
    ]  # fmt: skip
    for path, payload, raw, want_status, fragment in bad_requests:
        status, answer, headers = call(f"{server.url}{path}", payload, raw=raw)
        assert status == want_status, (path, answer)
        assert fragment in answer["error"]
        assert headers["X-Replica"] == "digits-0"

    status, answer, _ = call(f"{server.url}/predict", {"instances": X[100:103].tolist()})
    assert (status, answer["predictions"]) == (200, clf.predict(X[100:103]).tolist())
    assert server.process.poll() is None
    assert server.stop() == 0


def test_sigterm_finishes_the_request_in_flight_then_exits_0(servers, save_model, tmp_path):
    started = tmp_path / "predict-started"
    model = SleepyModel(delay_s=1.0, n_features=3, started_path=str(started))
    server = servers(
        "--model-path", save_model(model, "sleepy"), "--model-name", "sleepy", "--port", "0",
        "--replica-id", "sleepy-0", "--max-wait-ms", "20",
    )  # fmt: skip
    # the first call shows the model is slow, so later calls run in the worker thread
    assert call(f"{server.url}/predict", {"instances": [[0, 0, 1]]})[1] == {"predictions": [1.0]}
    result: dict = {}
    request = threading.Thread(
        target=lambda: result.update(answer=call(f"{server.url}/predict", {"instances": [[1, 2, 3]]}))
    )
    request.start()
    try:
        deadline = time.monotonic() + SAFETY_S
        # three calls of one row: the warm-up at load, the first request, this one
        while started.read_text().count("\n") < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert started.read_text() == "1\n1\n1\n", "the request never reached the model"
        # while the model works, the server still answers, counting the request in flight
        status, _, headers = call(f"{server.url}/v2/health/live")
        assert (status, headers["X-In-Flight"]) == (200, "1")
        server.process.send_signal(signal.SIGTERM)
        exit_code = server.process.wait(timeout=SAFETY_S)
    finally:
        request.join(timeout=SAFETY_S)
    status, answer, headers = result["answer"]
    assert (status, answer) == (200, {"predictions": [6.0]})
    assert headers["X-Replica"] == "sleepy-0"
    assert exit_code == 0
    assert "stopping; finishing requests in flight" in server.process.stdout.read()
    assert started.read_text() == "1\n1\n1\n"  # no call after the signal
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server.url}/v2/health/live", timeout=5)


BLAS_THREADS = """
import json, sys
import numpy, sklearn.linear_model, threadpoolctl
from mltoolkit.serving.server import limit_blas_threads
changed = limit_blas_threads(json.loads(sys.argv[1]))
print(json.dumps([changed, max(i["num_threads"] for i in threadpoolctl.threadpool_info())]))
"""


@pytest.mark.parametrize("environ, changed", [({}, True), ({"OPENBLAS_NUM_THREADS": "2"}, False)])
def test_blas_runs_single_threaded_unless_the_environment_says_otherwise(environ, changed):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", BLAS_THREADS, json.dumps(environ)],
        capture_output=True, text=True, timeout=120, check=True,
        env={"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"},
    )  # fmt: skip
    did_change, threads = json.loads(result.stdout)
    assert did_change is changed
    assert threads == (1 if changed else 2)


def test_start_up_objects_are_frozen_out_of_garbage_collection(servers, digits_path):
    """The first full collection after start used to scan every object the imports made
    (100-300 ms on a loaded machine), a stall inside the first load test. The server freezes
    them before it serves, and says how many in its start line."""
    import re

    server = servers("--model-path", digits_path, "--model-name", "digits", "--port", "0")
    assert server.started_line
    frozen = int(re.search(r"\((\d+) start-up objects frozen", server.started_line).group(1))
    assert frozen > 10_000  # numpy, scikit-learn and aiohttp alone make far more


def test_freezing_moves_every_live_object_out_of_reach():
    import gc

    from mltoolkit.serving.server import freeze_startup_objects

    try:
        assert freeze_startup_objects() == gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
