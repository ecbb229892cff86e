"""benchmarks/batch.py: its options, the loopback copy rate and the goal lines (nothing started)."""

import pytest

from .conftest import load_script

batch = load_script("batch")


def test_defaults_and_quick():
    full = batch.parse_args([])
    assert (full.rows, full.repetitions, full.memory_limit_mb) == (1_000_000, 2, 384)
    assert full.only == {"compute", "kill", "data", "memory"}
    quick = batch.parse_args(["--quick", "--only", "memory,kill"])
    assert (quick.rows, quick.repetitions, quick.memory_limit_mb) == (100_000, 1, 320)
    assert quick.only == {"memory", "kill"}


def test_an_unknown_section_stops_before_anything_starts(capsys):
    with pytest.raises(SystemExit) as exit_:
        batch.parse_args(["--only", "gpu"])
    assert exit_.value.code == 2 and "unknown sections ['gpu']" in capsys.readouterr().err


def test_loopback_copy_rate_is_measured():
    assert batch.loopback_copy_mb_s(total_bytes=8 * 2**20) > 0


def test_goal_lines_say_met_not_met_or_not_measured():
    report = batch.Report()
    report.rows.append(["compute: 2 replicas run_batch rows/s", "100", "1.50"])
    report.goal("fast", True)
    report.goal("faster", False)
    report.goal("peer", None)
    text = report.render()
    assert "goal: fast: met" in text and "goal: faster: NOT met" in text
    assert "goal: peer: NOT measured" in text
