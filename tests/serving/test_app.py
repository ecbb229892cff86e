"""The application in-process (aiohttp's test client on a loopback port) with the real digits model."""

import asyncio
import json

import anyio
import numpy as np
import pytest

from mltoolkit.serving import STATE, PredictCall
from mltoolkit.serving.testing import PickyModel

from .conftest import make_config

pytestmark = pytest.mark.anyio
SAFETY_S = 60


async def post_json(client, path, payload):
    response = await client.post(path, data=json.dumps(payload))
    return response.status, await response.json(), response.headers


def encode(payload) -> bytes:
    return json.dumps(payload).encode()


def infer_payload(rows, datatype="FP64", **extra):
    rows = np.asarray(rows)
    return {
        "inputs": [{"name": "x", "shape": list(rows.shape), "datatype": datatype, "data": rows.tolist()}],
        **extra,
    }


async def test_both_protocols_predict_like_the_model(serve, digits_path, digits_model):
    clf, X, _ = digits_model
    client = await serve(make_config(digits_path))
    expected = clf.predict(X[:25]).tolist()

    status, answer, headers = await post_json(client, "/predict", {"instances": X[:25].tolist()})
    assert status == 200
    assert answer == {"predictions": expected}
    assert headers["X-Replica"] == "replica-a"
    assert headers["X-In-Flight"] == "0"

    status, answer, _ = await post_json(
        client, "/v2/models/digits/infer", infer_payload(X[:25], "FP32", id="req-1")
    )
    assert status == 200
    version = client.app[STATE].model.version
    assert answer == {
        "model_name": "digits",
        "model_version": version,
        "id": "req-1",
        "outputs": [{"name": "predict", "shape": [25], "datatype": "INT64", "data": expected}],
    }
    flat = infer_payload(X[:3])
    flat["inputs"][0]["data"] = X[:3].reshape(-1).tolist()
    status, answer, _ = await post_json(client, f"/v2/models/digits/versions/{version}/infer", flat)
    assert status == 200 and answer["outputs"][0]["data"] == expected[:3]


async def test_v2_metadata_and_health(serve, digits_path):
    client = await serve(make_config(digits_path))
    for path, expected in [
        ("/v2/health/live", {"live": True}),
        ("/v2/health/ready", {"ready": True}),
        ("/v2/models/digits/ready", {"name": "digits", "ready": True}),
    ]:
        response = await client.get(path)
        assert (response.status, await response.json()) == (200, expected)
        assert response.headers["X-Replica"] == "replica-a"
    server = await (await client.get("/v2")).json()
    assert server["name"] == "mltoolkit" and server["extensions"] == []
    metadata = await (await client.get("/v2/models/digits")).json()
    assert metadata["name"] == "digits"
    assert metadata["inputs"][0]["shape"] == [-1, 64]
    assert metadata["outputs"][0]["datatype"] == "INT64"


@pytest.mark.parametrize(
    "method, path, raw, status, fragment",
    [
        ("POST", "/predict", b"{oops", 400, "not valid JSON"),
        ("POST", "/predict", b'{"instances": [[1, 2], [3]]}', 400, "ragged"),
        (
            "POST", "/predict", encode({"instances": [[0] * 63]}),
            400, "rows have 63 features; this model expects 64",
        ),
        ("POST", "/predict", encode({"instances": [["0"] * 64]}), 400, "found a string"),
        (
            "POST", "/v2/models/digits/infer", encode(infer_payload([[0] * 64], "FP99")),
            400, "'FP99' is not supported",
        ),
        (
            "POST", "/v2/models/cats/infer", encode(infer_payload([[0] * 64])),
            404, "unknown model 'cats'; this server serves 'digits'",
        ),
        ("GET", "/v2/models/cats", None, 404, "unknown model 'cats'"),
        ("GET", "/v2/models/digits/versions/0/ready", None, 404, "unknown version '0'"),
        ("GET", "/nowhere", None, 404, "Not Found: GET /nowhere"),
        ("GET", "/predict", None, 405, "Method Not Allowed: GET /predict"),
        (
            "POST", "/predict", b"x" * 5000,
            413, "larger than the limit of 4096 bytes (--max-request-bytes)",
        ),
    ],  # fmt: skip
)
async def test_bad_requests_get_their_4xx_and_the_server_keeps_serving(
    serve, digits_path, digits_model, method, path, raw, status, fragment
):
    clf, X, _ = digits_model
    client = await serve(make_config(digits_path, max_request_bytes=4096))
    response = await client.request(method, path, data=raw)
    assert response.status == status
    assert fragment in (await response.json())["error"]
    assert response.headers["X-Replica"] == "replica-a"
    assert response.headers["X-In-Flight"] == "0"

    good, answer, _ = await post_json(client, "/predict", {"instances": X[:2].tolist()})
    assert (good, answer) == (200, {"predictions": clf.predict(X[:2]).tolist()})


async def test_a_chunked_body_over_the_limit_is_refused_too(serve, digits_path):
    client = await serve(make_config(digits_path, max_request_bytes=4096))

    async def chunks():
        for _ in range(10):
            yield b" " * 1000

    response = await client.post("/predict", data=chunks())
    assert response.status == 413
    assert "--max-request-bytes" in (await response.json())["error"]


async def test_a_model_error_is_a_500_with_its_message(serve, save_model):
    client = await serve(make_config(save_model(PickyModel(4)), "picky", max_wait_ms=0))
    status, answer, headers = await post_json(client, "/predict", {"instances": [[1, -1, 0, 0]]})
    assert status == 500
    assert answer == {"error": "model predict failed: ValueError: negative values are not allowed"}
    assert headers["X-Replica"] == "replica-a"
    status, answer, _ = await post_json(client, "/predict", {"instances": [[1, 2, 3, 4]]})
    assert (status, answer) == (200, {"predictions": [10.0]})


async def test_bad_requests_never_join_a_batch(serve, digits_path, digits_model):
    clf, X, _ = digits_model
    client = await serve(make_config(digits_path, max_batch_size=64, max_wait_ms=200))
    bodies = [{"instances": X[i : i + 1].tolist()} for i in range(5)]
    bodies.insert(2, {"instances": [[0] * 10]})
    bodies.insert(4, {"instances": [["a"] * 64]})
    with anyio.fail_after(SAFETY_S):
        answers = await asyncio.gather(*(post_json(client, "/predict", b) for b in bodies))
    statuses = [status for status, _, _ in answers]
    assert statuses == [200, 200, 400, 200, 400, 200, 200]
    good = [answer["predictions"] for status, answer, _ in answers if status == 200]
    assert good == [[p] for p in clf.predict(X[:5]).tolist()]
    assert "expects 64" in answers[2][1]["error"] and "found a string" in answers[4][1]["error"]
    # the five good rows went out together, once, when the 200 ms window closed
    assert list(client.app[STATE].batcher.calls) == [PredictCall(5, 5, "max_wait")]


async def test_a_model_failure_in_a_batch_fails_only_its_culprit(serve, save_model):
    client = await serve(make_config(save_model(PickyModel(4)), "picky", max_wait_ms=200))
    rows = [[1, 1, 1, 1], [2, 2, 2, 2], [-3, 3, 3, 3], [4, 4, 4, 4]]
    with anyio.fail_after(SAFETY_S):
        answers = await asyncio.gather(
            *(post_json(client, "/predict", {"instances": [row]}) for row in rows)
        )
    assert [(status, answer) for status, answer, _ in answers] == [
        (200, {"predictions": [4.0]}),
        (200, {"predictions": [8.0]}),
        (500, {"error": "model predict failed: ValueError: negative values are not allowed"}),
        (200, {"predictions": [16.0]}),
    ]
    reasons = [call.reason for call in client.app[STATE].batcher.calls]
    assert reasons == ["max_wait"] + ["retry_alone"] * 4


async def test_batching_off_predicts_each_request_alone(serve, digits_path, digits_model):
    clf, X, _ = digits_model
    client = await serve(make_config(digits_path, enabled=False))
    with anyio.fail_after(SAFETY_S):
        answers = await asyncio.gather(
            *(post_json(client, "/predict", {"instances": X[i : i + 1].tolist()}) for i in range(6))
        )
    assert [answer["predictions"][0] for _, answer, _ in answers] == clf.predict(X[:6]).tolist()
    assert list(client.app[STATE].batcher.calls) == [PredictCall(1, 1, "alone")] * 6


async def test_in_flight_header_counts_the_other_requests_in_progress(serve, digits_path, digits_model):
    _, X, _ = digits_model
    client = await serve(make_config(digits_path, max_wait_ms=1000))
    state = client.app[STATE]
    with anyio.fail_after(SAFETY_S):
        waiting = [
            asyncio.ensure_future(post_json(client, "/predict", {"instances": X[i : i + 1].tolist()}))
            for i in range(3)
        ]
        while state.batcher.pending_requests < 3:
            await asyncio.sleep(0.005)
        live = await client.get("/v2/health/live")
        assert live.headers["X-In-Flight"] == "3"
        state.batcher.flush("test")
        answers = await asyncio.gather(*waiting)
    assert all(status == 200 for status, _, _ in answers)
    assert {headers["X-In-Flight"] for _, _, headers in answers} <= {"0", "1", "2"}


async def test_shutdown_answers_waiting_requests_and_reports_not_ready(serve, digits_path, digits_model):
    clf, X, _ = digits_model
    client = await serve(make_config(digits_path, max_wait_ms=1000))
    state = client.app[STATE]
    with anyio.fail_after(SAFETY_S):
        waiting = asyncio.ensure_future(post_json(client, "/predict", {"instances": X[:1].tolist()}))
        while state.batcher.pending_requests < 1:
            await asyncio.sleep(0.005)
        await client.app.shutdown()
        status, answer, _ = await waiting
    assert (status, answer) == (200, {"predictions": clf.predict(X[:1]).tolist()})
    assert list(state.batcher.calls) == [PredictCall(1, 1, "shutdown")]
    response = await client.get("/v2/health/ready")
    assert (response.status, await response.json()) == (503, {"ready": False})


async def test_predictions_json_cannot_encode_are_a_500_and_the_server_stays_up(serve, save_model):
    from .models import ObjectAnswers  # a model whose answers are not JSON values

    client = await serve(make_config(save_model(ObjectAnswers(), "objects"), "objects", max_wait_ms=0))
    status, answer, headers = await post_json(client, "/predict", {"instances": [[1, 2]]})
    assert status == 500
    assert answer["error"].startswith("internal error: TypeError")
    assert headers["X-Replica"] == "replica-a"
    live = await client.get("/v2/health/live")
    assert live.status == 200


@pytest.mark.parametrize("path", ["/predict", "/v2/models/digits/infer"])
@pytest.mark.parametrize("opening, closing", [(b"[", b"]"), (b'{"a":', b"}")], ids=["lists", "objects"])
async def test_deeply_nested_json_is_a_400_and_the_server_keeps_serving(
    serve, digits_path, digits_model, path, opening, closing
):
    clf, X, _ = digits_model
    client = await serve(make_config(digits_path))
    nested = opening * 5000 + b"1" + closing * 5000
    if path == "/predict":
        raw = b'{"instances":' + nested + b"}"
    else:
        raw = b'{"inputs":[{"name":"x","shape":[1,64],"datatype":"FP64","data":' + nested + b"}]}"
    response = await client.post(path, data=raw)
    assert response.status == 400
    assert "nested" in (await response.json())["error"]
    good, answer, _ = await post_json(client, "/predict", {"instances": X[:2].tolist()})
    assert (good, answer) == (200, {"predictions": clf.predict(X[:2]).tolist()})
