"""predict_batch end to end against a scripted V2 server: order and index, checks before any
request, retries, interrupt and resume."""

import numpy as np
import pandas as pd
import pytest

from mltoolkit.batch import BatchError, BatchInputError, BatchInterrupted
from mltoolkit.errors import SpecError


def frame(n, seed=0):
    rng = np.random.default_rng(seed)
    index = rng.permutation(n) * 10 + 3  # shuffled, not a range: alignment must use it
    return pd.DataFrame(rng.normal(size=(n, 3)), index=index, columns=["a", "b", "c"])


def test_predictions_follow_the_input_index(scripted_endpoint, scripted):
    data = frame(1000)
    run = scripted_endpoint.run_batch(data, chunk_rows=37, progress=False)
    predictions = run.predictions
    assert isinstance(predictions, pd.Series)
    assert predictions.index.equals(data.index)
    np.testing.assert_allclose(predictions.to_numpy(), data.sum(axis=1).to_numpy())
    # ceil(1000 / 37) = 28 chunks, each sent once
    assert run.chunk_rows == 37 and len(run.attempts) == 28 == scripted.posts
    assert sorted(run.attempts["start"]) == list(range(0, 1000, 37))
    assert run.retries == 0 and run.rows_scored == 1000


def test_numpy_input_and_json_encoding(scripted_endpoint):
    values = np.arange(30.0).reshape(10, 3)
    predictions = scripted_endpoint.predict_batch(values, chunk_rows=4, encoding="json", progress=False)
    assert predictions.index.equals(pd.RangeIndex(10))
    assert predictions.tolist() == values.sum(axis=1).tolist()


def test_rows_per_request_are_measured_when_not_given(scripted_endpoint, scripted):
    run = scripted_endpoint.run_batch(frame(5000), progress=False, in_flight=2)
    assert run.cost is not None and run.cost.per_row_s >= 0
    # a warm-up, the probes (2 sizes, twice), then the chunks; none larger than 5000 / (2 x 4)
    assert scripted.posts == 1 + 4 + len(run.attempts)
    assert 1 <= run.chunk_rows <= 625
    np.testing.assert_allclose(run.predictions.to_numpy(), frame(5000).sum(axis=1).to_numpy())


@pytest.mark.parametrize(
    "data, message",
    [
        (pd.DataFrame(np.ones((5, 4))), "the input has 4 columns (0, 1, 2, 3); the model expects 3 features"),
        (pd.DataFrame({"a": [1.0], "b": [2.0], "c": ["x"]}), "columns 'c' (str) are not numeric"),
        (pd.DataFrame({"a": [], "b": [], "c": []}), "the DataFrame is empty: it has 0 rows"),
    ],
)
def test_bad_input_is_refused_before_any_prediction_request(scripted_endpoint, scripted, data, message):
    with pytest.raises(BatchInputError) as caught:
        scripted_endpoint.predict_batch(data, progress=False)
    assert message in str(caught.value).replace('"', "'")
    assert scripted.posts == 0  # at most the model's metadata was read


@pytest.mark.parametrize(
    "option, value",
    [("in_flight", 0), ("chunk_rows", -5), ("encoding", "xml"), ("timeout_s", float("nan")), ("max_retries", 1.5)],
)
def test_bad_options_are_refused_before_any_request(scripted_endpoint, scripted, option, value):
    with pytest.raises(SpecError, match=f"predict_batch.{option}"):
        scripted_endpoint.predict_batch(frame(10), progress=False, **{option: value})
    assert scripted.requests == []


def test_transient_failures_are_retried_and_counted(scripted_endpoint, scripted):
    scripted.fail_next = 3
    data = frame(200)
    run = scripted_endpoint.run_batch(data, chunk_rows=50, progress=False, backoff_base_s=0.0)
    np.testing.assert_allclose(run.predictions.to_numpy(), data.sum(axis=1).to_numpy())
    assert run.retries == 3
    failed = run.attempts[~run.attempts["ok"]]
    assert set(failed["status"]) == {503}
    # every chunk scored exactly once
    assert sorted(run.attempts.loc[run.attempts["ok"], "start"]) == [0, 50, 100, 150]
    assert run.summary().loc["overall", "retries"] == 3


def test_a_chunk_that_keeps_failing_stops_the_run_with_the_last_error(scripted_endpoint, scripted):
    scripted.fail_next = 100
    with pytest.raises(BatchError, match="failed 3 times; the last error: 503"):
        scripted_endpoint.predict_batch(frame(20), chunk_rows=10, max_retries=2, progress=False, backoff_base_s=0.0)


def test_an_interrupted_run_resumes_where_it_stopped(scripted_endpoint, scripted, tmp_path):
    data = frame(3000, seed=4)
    output = tmp_path / "predictions"
    scripted.delay_s = 0.005  # 300 chunks of 10 rows take more than one progress tick

    def interrupt(progress):
        if progress.rows_done > 0 and not progress.finished:
            raise KeyboardInterrupt

    with pytest.raises(BatchInterrupted) as caught:
        scripted_endpoint.run_batch(data, output=output, chunk_rows=10, progress=interrupt)
    done = caught.value.rows_done
    assert 0 < done < 3000
    assert f"interrupted: {done:,} of 3,000 rows done" in str(caught.value)
    assert "run again with the same output= to resume" in str(caught.value)
    first = {int(p.name[5:17]) for p in output.glob("part-*.parquet")}
    assert len(first) * 10 == done  # what it said is what is in the output

    scripted.delay_s = 0.0
    posts_before = scripted.posts
    run = scripted_endpoint.run_batch(data, output=output, chunk_rows=999, progress=False)
    again = set(run.attempts["start"])
    assert again.isdisjoint(first)  # no chunk scored twice
    assert again | first == set(range(0, 3000, 10))  # none skipped (the chunks of the first run)
    assert run.rows_resumed == done and run.chunk_rows == 10
    assert scripted.posts - posts_before == len(again)
    assert run.predictions.index.equals(data.index)
    np.testing.assert_allclose(run.predictions.to_numpy(), data.sum(axis=1).to_numpy())


def test_the_same_output_for_another_table_of_the_same_shape_is_refused(scripted_endpoint, scripted, tmp_path):
    scripted_endpoint.predict_batch(frame(100, seed=1), output=tmp_path / "out", chunk_rows=10, progress=False)
    posts = scripted.posts
    with pytest.raises(BatchInputError, match="holds a run over other input"):
        scripted_endpoint.predict_batch(frame(100, seed=2), output=tmp_path / "out", chunk_rows=10, progress=False)
    assert scripted.posts == posts
