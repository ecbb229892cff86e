import io

import pytest

from mltoolkit.errors import SpecError
from mltoolkit.observe.progress import LoadTestProgress, TextProgress, progress_callback


def test_text_progress_rewrites_one_line_and_ends_it_when_finished():
    stream = io.StringIO()
    show = TextProgress(stream)
    show(LoadTestProgress(elapsed_s=1.25, duration_s=10, sent=12, answered=10, errors=1))
    show(
        LoadTestProgress(
            elapsed_s=10.5, duration_s=10, sent=100, answered=99, errors=1, finished=True
        )
    )
    assert stream.getvalue() == (
        "\rload test   1.2/10.0 s: 12 sent, 10 answered, 1 errors"
        "\rload test done: 100 sent, 99 answered, 1 errors\n"
    )


def test_progress_callback_choices():
    assert progress_callback(False) is None
    assert isinstance(progress_callback(True), TextProgress)
    seen = []
    assert progress_callback(seen.append) == seen.append
    with pytest.raises(SpecError, match="load_test.progress"):
        progress_callback("yes")
