"""Input checks and reading: DataFrame, NumPy array, Parquet files read in exact chunks."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mltoolkit.batch.source import BatchInputError, check_features, make_source


def test_a_frame_keeps_its_index_and_values():
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5], "c": [True, False, True]}, index=[30, 10, 20])
    source = make_source(frame)
    assert list(source.index) == [30, 10, 20]
    np.testing.assert_array_equal(source.values, frame.to_numpy(dtype=float))
    assert [start for start, _ in source.read(2, set())] == [0, 2]
    assert [start for start, _ in source.read(2, {0})] == [2]


@pytest.mark.parametrize(
    "data, message",
    [
        (pd.DataFrame({"a": []}), "empty: it has 0 rows"),
        (pd.DataFrame(index=[1, 2]), "no columns"),
        (pd.DataFrame({"a": [1.0], "city": ["Oslo"], "when": pd.to_datetime(["2024-01-01"])}), "'city'"),
        (pd.DataFrame({"a": [1.0, np.nan]}, index=["x", "y"]), "column 'a' has 1 missing or infinite values (the first at index 'y')"),
        (np.zeros(5), "1 dimension(s)"),
        (np.zeros((0, 3)), "empty: it has 0 rows"),
        (np.array([["a", "b"]]), "not numeric"),
        (np.array([[1.0, np.inf]]), "column '1' has 1 missing or infinite"),
        ({"a": [1]}, "cannot score a dict"),
    ],
)
def test_bad_input_is_refused_with_what_is_wrong(data, message):
    with pytest.raises(BatchInputError) as caught:
        make_source(data)
    assert message in str(caught.value)


def test_non_numeric_names_every_bad_column_with_its_type():
    frame = pd.DataFrame({"a": [1.0], "city": ["Oslo"], "when": pd.to_datetime(["2024-01-01"])})
    with pytest.raises(BatchInputError) as caught:
        make_source(frame)
    assert "'city' (" in str(caught.value) and "'when' (datetime64" in str(caught.value)
    assert "'a'" not in str(caught.value)


def test_wrong_column_count_names_both_counts():
    source = make_source(np.ones((4, 3)))
    check_features(source, 3)
    check_features(source, None)
    with pytest.raises(BatchInputError, match="the input has 3 columns .* the model expects 64 features"):
        check_features(source, 64)


def write_parquet(path, frame, row_group_size):
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group_size)
    return path


def test_parquet_files_are_read_in_exact_chunks_across_files_and_row_groups(tmp_path):
    rng = np.random.default_rng(1)
    frames = [pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd")) for n in (37, 5, 61)]
    paths = [write_parquet(tmp_path / f"{i}.parquet", f, row_group_size=7) for i, f in enumerate(frames)]
    whole = pd.concat(frames, ignore_index=True).to_numpy()
    source = make_source([str(p) for p in paths])
    assert (source.total_rows, source.n_features) == (103, 4)
    chunks = list(source.read(10, set()))
    assert [start for start, _ in chunks] == list(range(0, 103, 10))
    assert [len(rows) for _, rows in chunks] == [10] * 10 + [3]
    np.testing.assert_array_equal(np.concatenate([rows for _, rows in chunks]), whole)
    skipped = dict(source.read(10, {0, 50, 100}))
    assert sorted(skipped) == [10, 20, 30, 40, 60, 70, 80, 90]
    np.testing.assert_array_equal(skipped[60], whole[60:70])
    # a directory stands for its *.parquet files in name order
    assert make_source(tmp_path).total_rows == 103


def test_parquet_checks_before_reading(tmp_path):
    with pytest.raises(BatchInputError, match="not found"):
        make_source(tmp_path / "missing.parquet")
    write_parquet(tmp_path / "s.parquet", pd.DataFrame({"a": [1.0], "name": ["x"]}), 10)
    with pytest.raises(BatchInputError, match=r"'name' \(\w*string\) are not numeric"):
        make_source(tmp_path / "s.parquet")
    write_parquet(tmp_path / "e.parquet", pd.DataFrame({"a": pd.Series([], dtype=float)}), 10)
    with pytest.raises(BatchInputError, match="empty: it has 0 rows"):
        make_source(tmp_path / "e.parquet")


def test_a_missing_value_in_parquet_is_found_when_its_chunk_is_read(tmp_path):
    values = np.ones((30, 2))
    values[23, 1] = np.nan
    write_parquet(tmp_path / "n.parquet", pd.DataFrame(values, columns=["a", "b"]), 10)
    source = make_source(tmp_path / "n.parquet")
    with pytest.raises(BatchInputError, match="column 'b' has 1 missing or infinite values .* row 23"):
        list(source.read(10, set()))
