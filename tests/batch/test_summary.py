"""The per-replica / per-node summary of a run's attempts."""

import pandas as pd
import pytest

from mltoolkit.batch.summary import ATTEMPT_COLUMNS, summarize_batch
from mltoolkit.errors import SpecError


def attempts():
    rows = [
        # start, rows, attempt, replica, status, ok, error, sent_s, latency_s
        (0, 100, 1, "r-0", 200, True, None, 0.0, 0.5),
        (100, 100, 1, "r-1", 200, True, None, 0.0, 1.0),
        (200, 50, 1, "r-0", 502, False, "502", 0.5, 0.1),
        (200, 50, 2, None, 0, False, "reset", 0.7, 0.1),
        (200, 50, 3, "r-1", 200, True, None, 1.0, 1.0),
    ]
    return pd.DataFrame([(*r, 0, 0, 0) for r in rows], columns=list(ATTEMPT_COLUMNS))


def test_rows_chunks_retries_and_time_per_replica():
    summary = summarize_batch(attempts(), nodes={"r-0": "node-0", "r-1": "node-1"}, elapsed_s=2.0)
    assert list(summary.index) == ["overall", "r-0", "r-1"]
    assert summary.index.name == "replica"
    assert summary["rows"].tolist() == [250, 100, 150]
    assert summary["chunks"].tolist() == [3, 1, 2]
    # the attempt with no answer has no replica: overall only
    assert summary["retries"].tolist() == [2, 1, 0]
    assert summary["busy_s"].tolist() == pytest.approx([2.5, 0.5, 2.0])
    assert summary["rows_per_s"].tolist() == pytest.approx([125, 50, 75])
    assert summary["share"].tolist() == pytest.approx([1.0, 0.4, 0.6])
    assert summary.loc["r-1", "node"] == "node-1"


def test_by_node_and_the_span_as_default_time():
    summary = summarize_batch(attempts(), nodes={"r-0": "node-0", "r-1": "node-0"}, by="node")
    assert list(summary.index) == ["overall", "node-0"]
    assert summary.loc["node-0", "rows"] == 250
    # span: first send 0.0 to last answer 1.0 + 1.0 = 2.0 s
    assert summary.loc["overall", "rows_per_s"] == pytest.approx(125)
    with pytest.raises(SpecError, match="summary.by"):
        summarize_batch(attempts(), by="zone")
