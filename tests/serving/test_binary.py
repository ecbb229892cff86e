"""The binary tensor data extension: the wire format, and tritonclient as a real client against
the real server process and through the real balancer."""

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from mltoolkit.serving import binary
from mltoolkit.serving.protocol import RequestError

tritonclient_http = pytest.importorskip("tritonclient.http")  # in the dev extra


def test_request_round_trip_keeps_every_value_and_the_shape():
    rows = np.random.default_rng(0).normal(size=(7, 5))
    body, length = binary.encode_request(rows)
    parsed = binary.parse_request(body, length, n_features=5)
    np.testing.assert_array_equal(parsed.request.rows, rows)
    assert parsed.binary_output is True
    header = json.loads(body[:length])
    assert header["inputs"][0]["parameters"]["binary_data_size"] == rows.nbytes == len(body) - length


def test_float32_input_is_read_as_float32_bytes():
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    body, length = binary.encode_request(rows)
    assert json.loads(body[:length])["inputs"][0]["datatype"] == "FP32"
    np.testing.assert_array_equal(binary.parse_request(body, length, 4).request.rows, rows)


@pytest.mark.parametrize(
    "predictions", [np.array([1, 0, 7]), np.array([0.5, -1.25]), np.array(["cat", "dog"])]
)
def test_response_round_trip(predictions):
    from mltoolkit.serving.protocol import InferRequest

    body, length = binary.encode_response("m", "v1", InferRequest(rows=np.zeros((1, 1))), predictions)
    decoded = binary.decode_response(body, length)
    assert decoded.tolist() == predictions.tolist()


def test_json_answer_decodes_too():
    body = json.dumps({"outputs": [{"name": "predict", "shape": [2], "datatype": "INT64", "data": [3, 4]}]})
    assert binary.decode_response(body.encode(), None).tolist() == [3, 4]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda h, raw: (h, raw[:-8]), "binary_data_size is 48 but 40 bytes follow"),
        (lambda h, raw: ({**h, "inputs": [{**h["inputs"][0], "shape": [2, 2]}]}, raw), "shape [2, 2]"),
        (lambda h, raw: ({**h, "inputs": [{**h["inputs"][0], "datatype": "BYTES"}]}, raw), "datatype 'BYTES'"),
        (lambda h, raw: (h, np.array([[np.nan, 1.0, 2.0]] * 2).tobytes()), "finite"),
        (lambda h, raw: ({**h, "outputs": [{"name": "proba"}]}, raw), "unknown output 'proba'"),
    ],
)
def test_bad_binary_requests_are_refused_with_what_is_wrong(mutate, message):
    rows = np.ones((2, 3))
    body, length = binary.encode_request(rows)
    header, raw = json.loads(body[:length]), body[length:]
    header, raw = mutate(header, raw)
    header_bytes = json.dumps(header).encode()
    with pytest.raises(RequestError) as caught:
        binary.parse_request(header_bytes + raw, len(header_bytes), n_features=3)
    assert caught.value.status == 400 and message in caught.value.message


def test_wrong_feature_count_and_bad_header_length_are_refused():
    body, length = binary.encode_request(np.ones((2, 3)))
    with pytest.raises(RequestError, match="rows have 3 features; this model expects 64"):
        binary.parse_request(body, length, n_features=64)
    for value in ("abc", "0", str(len(body) + 1)):
        with pytest.raises(RequestError, match="Inference-Header-Content-Length must be"):
            binary.header_length(value, len(body))


def _triton_infer(url: str, rows: np.ndarray, binary_input: bool, binary_output: bool):
    host = url.removeprefix("http://")
    client = tritonclient_http.InferenceServerClient(host, network_timeout=60)
    try:
        datatype = "FP32" if rows.dtype == np.float32 else "FP64"
        tensor = tritonclient_http.InferInput("input-0", list(rows.shape), datatype)
        tensor.set_data_from_numpy(rows, binary_data=binary_input)
        output = tritonclient_http.InferRequestedOutput("predict", binary_data=binary_output)
        result = client.infer("digits", [tensor], outputs=[output], request_id="42")
        return result.as_numpy("predict"), result.get_response()
    finally:
        client.close()


@pytest.mark.parametrize("binary_input, binary_output", [(True, True), (True, False), (False, True)])
def test_tritonclient_against_the_real_server(servers, digits_path, digits_model, binary_input, binary_output):
    clf, X, _ = digits_model
    server = servers(
        "--model-path", digits_path, "--model-name", "digits", "--port", "0", "--replica-id", "digits-0",
    )  # fmt: skip
    rows = X[:57].astype(np.float64)
    predictions, response = _triton_infer(server.url, rows, binary_input, binary_output)
    np.testing.assert_array_equal(predictions, clf.predict(rows))
    assert response["id"] == "42" and response["model_name"] == "digits"
    # float32 rows too (what tritonclient users usually send)
    predictions32, _ = _triton_infer(server.url, rows.astype(np.float32), binary_input, binary_output)
    np.testing.assert_array_equal(predictions32, clf.predict(rows.astype(np.float32)))


def test_a_bad_binary_request_gets_a_400_and_the_server_stays_up(servers, digits_path, digits_model):
    clf, X, _ = digits_model
    server = servers(
        "--model-path", digits_path, "--model-name", "digits", "--port", "0", "--replica-id", "digits-0",
    )  # fmt: skip
    body, length = binary.encode_request(X[:4])
    request = urllib.request.Request(
        f"{server.url}/v2/models/digits/infer",
        data=body[:-8],  # 8 bytes short of binary_data_size
        headers={binary.HEADER_LENGTH: str(length)},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 400
    assert "bytes follow the JSON header" in json.loads(caught.value.read())["error"]
    predictions, _ = _triton_infer(server.url, X[:3], True, True)
    np.testing.assert_array_equal(predictions, clf.predict(X[:3]))


@pytest.mark.slow
def test_tritonclient_through_the_balancer(digits_model):
    """The balancer passes the extension through (its header and raw bytes, both ways)."""
    from mltoolkit.local import LocalTarget
    from mltoolkit.spec import DeploymentSpec, ModelSpec

    clf, X, _ = digits_model
    target = LocalTarget(nodes=1, progress=False)
    try:
        target.up(DeploymentSpec(model=ModelSpec.from_object(clf, name="digits"), replicas=2))
        for binary_input, binary_output in [(True, True), (False, True), (True, False)]:
            predictions, _ = _triton_infer(target.endpoint.url, X[:300], binary_input, binary_output)
            np.testing.assert_array_equal(predictions, clf.predict(X[:300]))
    finally:
        target.down()
