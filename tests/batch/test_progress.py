"""Progress snapshots (rows/s, ETA) and their text and widget views."""

import io

import pytest

from mltoolkit.batch.progress import (
    BatchProgress,
    TextBatchProgress,
    WidgetBatchProgress,
    make_progress,
)
from mltoolkit.errors import SpecError


def test_rate_and_eta_count_only_this_runs_rows():
    # 3,000 rows done, 1,000 of them resumed: 2,000 scored in 4 s = 500 rows/s; 7,000 left = 14 s
    snap = BatchProgress(rows_done=3000, rows_total=10000, elapsed_s=4.0, retries=2, rows_resumed=1000)
    assert snap.rows_per_s == 500
    assert snap.eta_s == 14
    assert snap.text() == "batch 3,000/10,000 rows (30%), 500 rows/s, ETA 14 s, 2 retries, 1,000 resumed"


def test_before_any_row_the_eta_is_unknown():
    assert BatchProgress(0, 100, 0.0).text() == "batch 0/100 rows (0%), ? rows/s, ETA ?"


def test_text_rewrites_one_line_and_ends_it_when_finished():
    stream = io.StringIO()
    draw = TextBatchProgress(stream)
    draw(BatchProgress(50, 100, 1.0))
    draw(BatchProgress(100, 100, 2.0, finished=True))
    assert stream.getvalue() == (
        "\rbatch 50/100 rows (50%), 50 rows/s, ETA 1 s"
        "\rbatch 100/100 rows (100%), 50 rows/s, done\n"
    )


def test_widget_shows_a_bar_and_the_text_once():
    shown = []
    draw = WidgetBatchProgress(display=shown.append)
    draw(BatchProgress(25, 100, 1.0))
    draw(BatchProgress(100, 100, 4.0, finished=True))
    assert shown == [draw.box]
    assert draw.bar.value == 1.0 and draw.bar.bar_style == "success"
    assert draw.label.value == "batch 100/100 rows (100%), 25 rows/s, done"


def test_progress_argument():
    assert make_progress(False) is None
    assert isinstance(make_progress(True), TextBatchProgress)  # not in a notebook here
    assert isinstance(make_progress("widget"), WidgetBatchProgress)
    with pytest.raises(SpecError, match="predict_batch.progress"):
        make_progress("loud")
