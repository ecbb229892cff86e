import re

import joblib
import numpy as np
import pytest

from mltoolkit.serving.model import ModelLoadError, PredictError, ServedModel, load_model
from mltoolkit.serving.testing import PickyModel

from .models import CountsCalls, RefusesZeros, RowCount, TooFew


def test_loads_the_digits_model_and_describes_it(digits_path, digits_model):
    clf, X, _ = digits_model
    served = load_model(digits_path, "digits")
    assert served.n_features == 64
    assert (served.predict(X[:20]) == clf.predict(X[:20])).all()
    metadata = served.metadata()
    assert metadata["name"] == "digits"
    assert re.fullmatch(r"[0-9a-f]{12}", metadata["versions"][0])
    assert metadata["platform"] == "sklearn"
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 64]}]
    assert metadata["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]


def test_version_follows_the_file_contents(save_model):
    first = load_model(save_model(PickyModel(4), "a"), "m").version
    second = load_model(save_model(PickyModel(5), "b"), "m").version
    assert first != second
    assert load_model(save_model(PickyModel(4), "c"), "m").version == first


def test_a_model_without_feature_count_accepts_any_width(save_model):
    served = load_model(save_model(RowCount(), "rows"), "m")
    assert served.n_features is None
    assert served.platform == "python"
    assert served.metadata()["inputs"][0]["shape"] == [-1, -1]


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "is not an existing file"),
        (b"this is not a pickle", "could not be loaded with joblib"),
        ({"weights": [1, 2]}, "holds a dict, which has no predict method"),
    ],
)
def test_unusable_model_files_are_refused(tmp_path, content, fragment):
    path = tmp_path / "model.joblib"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        joblib.dump(content, path)
    with pytest.raises(ModelLoadError, match=fragment):
        load_model(str(path), "m")


def test_a_failing_predict_is_reported_with_its_message():
    served = ServedModel(name="m", model=PickyModel(2), version="v")
    assert served.predict(np.array([[1.0, 2.0]])).tolist() == [3.0]
    with pytest.raises(PredictError, match="ValueError: negative values are not allowed"):
        served.predict(np.array([[1.0, -2.0]]))


def test_a_wrong_number_of_predictions_is_an_error():
    served = ServedModel(name="m", model=TooFew(), version="v")
    with pytest.raises(PredictError, match="returned 2 predictions for 3 rows"):
        served.predict(np.zeros((3, 2)))


def test_the_model_is_warmed_up_with_one_zero_row_before_serving(save_model):
    # the first predict of a fresh scikit-learn model is ~40x slower than the next ones; the
    # loader pays it before the replica reports ready
    served = load_model(save_model(CountsCalls(), "counts"), "m")
    assert served.model.calls == [(1, 3)]


def test_a_model_that_refuses_the_warm_up_row_still_loads_and_serves(save_model):
    served = load_model(save_model(RefusesZeros(), "picky"), "m")
    assert served.predict(np.array([[1.0, 2.0]])).tolist() == [1.0]
