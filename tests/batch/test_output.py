"""The output directory: whole parts, input order, a manifest that guards a resumed run."""

import numpy as np
import pytest

from mltoolkit.batch.output import MANIFEST, Manifest, PartsOutput, part_name
from mltoolkit.batch.source import BatchInputError


def manifest(rows=10, fingerprint="abc"):
    return Manifest(total_rows=rows, n_features=3, chunk_rows=4, columns=["a", "b", "c"], fingerprint=fingerprint)


def test_parts_read_back_in_input_order_whatever_order_they_were_written(tmp_path):
    out = PartsOutput(tmp_path / "out")
    out.start(manifest())
    out.write(8, np.array([8, 9]))
    out.write(0, np.array([0, 1, 2, 3]))
    out.write(4, np.array([4, 5, 6, 7]))
    assert out.done_starts() == {0, 4, 8}
    assert out.rows_done() == 10
    frame = out.read()
    assert frame["row"].tolist() == list(range(10))
    assert frame["prediction"].tolist() == list(range(10))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MANIFEST] + [part_name(s) for s in (0, 4, 8)]


def test_several_outputs_per_row_get_one_column_each(tmp_path):
    out = PartsOutput(tmp_path)
    out.start(manifest(2))
    out.write(0, np.array([[0.1, 0.9], [0.7, 0.3]]))
    assert list(out.read().columns) == ["row", "prediction_0", "prediction_1"]


def test_the_same_output_for_other_input_is_refused(tmp_path):
    PartsOutput(tmp_path / "out").start(manifest(10))
    PartsOutput(tmp_path / "out").start(manifest(10))  # the same run: fine
    with pytest.raises(BatchInputError, match="holds a run over other input .10 rows x 3 columns; this input has 11 x 3"):
        PartsOutput(tmp_path / "out").start(manifest(11))
    with pytest.raises(BatchInputError, match="or other values"):
        PartsOutput(tmp_path / "out").start(manifest(10, fingerprint="def"))


def test_a_directory_that_is_not_an_output_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BatchInputError, match="is not a predict_batch output"):
        PartsOutput(tmp_path).start(manifest())
