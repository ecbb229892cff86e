import json

import numpy as np
import pytest

from mltoolkit.serving.protocol import (
    InferRequest,
    RequestError,
    dumps,
    infer_response,
    parse_infer_request,
    parse_predict_request,
)

ROWS = [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]


def body(payload) -> bytes:
    return json.dumps(payload).encode()


def infer_body(data=None, shape=(2, 4), datatype="FP64", **extra) -> bytes:
    tensor = {"name": "x", "shape": list(shape), "datatype": datatype, "data": ROWS if data is None else data}
    return body({"inputs": [tensor], **extra})


def test_predict_rows_become_one_float64_array():
    rows = parse_predict_request(body({"instances": [[0, 1, 2, 3], [4, 5, 6, 7]]}), n_features=4)
    assert rows.dtype == np.float64
    assert rows.tolist() == ROWS


@pytest.mark.parametrize("data", [ROWS, [v for row in ROWS for v in row]], ids=["nested", "flat"])
def test_infer_accepts_nested_and_flat_data(data):
    parsed = parse_infer_request(infer_body(data), n_features=4)
    assert parsed.rows.shape == (2, 4)
    assert parsed.rows.tolist() == ROWS


@pytest.mark.parametrize(
    "datatype, dtype",
    [("FP32", np.float32), ("FP64", np.float64), ("INT32", np.int32), ("INT64", np.int64), ("UINT8", np.uint8)],
)
def test_infer_converts_to_the_declared_datatype(datatype, dtype):
    data = [[0, 1, 2, 3], [4, 5, 6, 7]]
    parsed = parse_infer_request(infer_body(data, datatype=datatype), n_features=4)
    assert parsed.rows.dtype == dtype
    assert parsed.rows.tolist() == data


def test_infer_keeps_the_request_id():
    assert parse_infer_request(infer_body(id="abc-1"), n_features=4).id == "abc-1"
    assert parse_infer_request(infer_body(), n_features=4).id is None


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (body([1, 2]), '{"instances"'),
        (body({"rows": ROWS}), '{"instances"'),
        (body({"instances": [[1, 2, 3, 4], [1, 2]]}), "ragged"),
        (body({"instances": [[1, "2", 3, 4]]}), "found a string"),
        (body({"instances": [[1, None, 3, 4]]}), "found a null"),
        (body({"instances": [[True, False, True, False]]}), "true/false"),
        (body({"instances": []}), "empty"),
        (body({"instances": [1, 2, 3, 4]}), "list of rows"),
        (body({"instances": [[1, 2, 3]]}), "rows have 3 features; this model expects 4"),
        (b'{"instances": [[1, 2, 3, NaN]]}', "finite"),
    ],
)
def test_bad_predict_bodies_say_what_is_wrong(raw, fragment):
    with pytest.raises(RequestError) as info:
        parse_predict_request(raw, n_features=4)
    assert info.value.status == 400
    assert fragment in info.value.message


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (body({"inputs": []}), "exactly one input tensor; got 0"),
        (body({"instances": ROWS}), "exactly one input tensor"),
        (body({"inputs": [{"name": "x"}, {"name": "y"}]}), "got 2 inputs"),
        (body({"inputs": ["x"]}), "must be an object"),
        (body({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64"}]}), "missing data"),
        (infer_body(datatype="FP128"), "'FP128' is not supported; expected one of ['BOOL'"),
        (infer_body(datatype="BYTES"), "'BYTES' is not supported"),
        (infer_body(shape=(2, 4, 1)), "[rows, features]"),
        (infer_body(shape=(2, -4)), "[rows, features]"),
        (infer_body(shape=(3, 4)), "holds 8 values but shape [3, 4] needs 12"),
        (infer_body(shape=(4, 2)), "rows have 2 features; this model expects 4"),
        (infer_body([[1, 2, 3, 4], [5, 6, 7]]), "ragged"),
        (infer_body([[1, 2, 3, "x"], [5, 6, 7, 8]]), "found a string"),
        (infer_body([[1.5, 2, 3, 4], [5, 6, 7, 8]], datatype="INT32"), "whole numbers (INT32)"),
        (infer_body([[300, 2, 3, 4], [5, 6, 7, 8]], datatype="INT8"), "outside the range of INT8"),
        (infer_body(datatype="BOOL"), "true/false values (BOOL)"),
        (infer_body(id=7), "id must be a string"),
        (infer_body(outputs=[{"name": "predict_proba"}]), "unknown output 'predict_proba'"),
        (infer_body(data=[], shape=(0, 4)), "empty"),
    ],
)
def test_bad_infer_bodies_say_what_is_wrong(raw, fragment):
    with pytest.raises(RequestError) as info:
        parse_infer_request(raw, n_features=4)
    assert info.value.status == 400
    assert fragment in info.value.message


def test_unknown_feature_count_accepts_any_width():
    rows = parse_predict_request(body({"instances": [[1, 2, 3]]}), n_features=None)
    assert rows.shape == (1, 3)


def test_infer_response_describes_the_output_tensor():
    request = InferRequest(rows=np.zeros((3, 4)), id="r-9")
    answer = infer_response("digits", "v1", request, np.array([3, 1, 4]))
    assert answer == {
        "model_name": "digits",
        "model_version": "v1",
        "id": "r-9",
        "outputs": [{"name": "predict", "shape": [3], "datatype": "INT64", "data": [3, 1, 4]}],
    }
    no_id = infer_response("digits", "v1", InferRequest(rows=np.zeros((1, 4))), np.array([0.5]))
    assert "id" not in no_id
    assert no_id["outputs"][0]["datatype"] == "FP64"
    strings = infer_response("m", "v1", InferRequest(rows=np.zeros((1, 4))), np.array(["cat"]))
    assert strings["outputs"][0]["datatype"] == "BYTES"


def test_dumps_is_strict_json_even_for_nan_predictions():
    assert json.loads(dumps({"predictions": [1.5, float("nan"), float("inf")]})) == {
        "predictions": [1.5, None, None]
    }


def _nested_lists(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


def _nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def _infer_with_data(data: bytes) -> bytes:
    return b'{"inputs":[{"name":"x","shape":[1,1],"datatype":"FP64","data":' + data + b"}]}"


@pytest.mark.parametrize("depth", [100, 1000, 1023, 1024, 1025, 5000, 100_000])
@pytest.mark.parametrize("nesting", [_nested_lists, _nested_objects], ids=["lists", "objects"])
def test_any_depth_of_nesting_is_a_400(depth, nesting):
    """Deep nesting used to escape as RecursionError (a 500) past orjson's depth limit."""
    for parse, raw in (
        (parse_predict_request, b'{"instances":' + nesting(depth) + b"}"),
        (parse_infer_request, _infer_with_data(nesting(depth))),
        (parse_predict_request, nesting(depth)),  # the whole body nested
    ):
        with pytest.raises(RequestError) as caught:
            parse(raw, None)
        assert caught.value.status == 400
