import json

import numpy as np
import pandas as pd
import pytest

from mltoolkit.errors import MltoolkitError, SpecError
from mltoolkit.observe.payload import (
    Payloads,
    feature_rows,
    request_path,
    v2_input,
    zeros_from_metadata,
)


def test_request_paths():
    assert request_path("predict", "digits") == "/predict"
    assert request_path("v2", "digits") == "/v2/models/digits/infer"
    with pytest.raises(SpecError, match="load_test.protocol"):
        request_path("grpc", "digits")


def test_feature_rows_accepts_lists_arrays_and_dataframes():
    frame = pd.DataFrame({"a": [1, 2], "b": [3, 4]})
    np.testing.assert_array_equal(feature_rows(frame), [[1, 3], [2, 4]])
    np.testing.assert_array_equal(feature_rows([[1.5]]), [[1.5]])


@pytest.mark.parametrize("bad", [[1.0, 2.0], [], [[]], np.zeros((2, 2, 2)), 5])
def test_feature_rows_refuses_what_is_not_rows(bad):
    with pytest.raises(SpecError, match=r"load_test.X: .* expected a 2-D array-like"):
        feature_rows(bad)


def test_zeros_from_metadata_take_the_feature_count():
    zeros = zeros_from_metadata({"inputs": [{"name": "x", "shape": [-1, 64], "datatype": "FP64"}]})
    assert zeros.shape == (1, 64) and not zeros.any()


@pytest.mark.parametrize(
    "metadata",
    [{}, {"inputs": []}, {"inputs": [{"shape": [-1]}]}, {"inputs": [{"shape": [-1, -1]}]}],
)
def test_metadata_without_a_feature_count_asks_for_x(metadata):
    with pytest.raises(MltoolkitError, match="pass rows with X="):
        zeros_from_metadata(metadata)


def test_v2_input_name_and_datatype():
    assert v2_input(None) == ("input-0", "FP64")
    assert v2_input({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 3]}]}) == (
        "pixels",
        "FP32",
    )


def test_predict_bodies_cycle_through_the_rows():
    payloads = Payloads(np.array([[1], [2], [3]]), rows_per_request=2, protocol="predict")
    bodies = [json.loads(payloads.body(i)) for i in range(4)]
    # request i carries rows 2i, 2i+1 modulo 3
    assert bodies == [
        {"instances": [[1], [2]]},
        {"instances": [[3], [1]]},
        {"instances": [[2], [3]]},
        {"instances": [[1], [2]]},
    ]
    assert payloads.body(0) is payloads.body(3)  # encoded once per starting row


def test_v2_bodies_are_flat_tensors_with_shape():
    payloads = Payloads(np.array([[1.0, 2.0], [3.0, 4.0]]), 2, "v2", "pixels", "FP32")
    assert json.loads(payloads.body(0)) == {
        "inputs": [
            {"name": "pixels", "shape": [2, 2], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}
        ]
    }
