"""benchmarks/serving.py: its options and its check of the servers' answers (nothing started)."""

import numpy as np
import pytest

from peers.processes import ServerFailed

from .conftest import load_script

serving = load_script("serving")


def test_defaults_follow_the_issue_and_quick_is_a_short_smoke_test():
    full = serving.parse_args([])
    assert (full.repetitions, full.duration_s) == (3, 20)
    assert full.connections == (8, 32) and full.batch_rows == (1, 64)
    assert (full.server_cpu, full.load_cpu) == (1, 0)
    quick = serving.parse_args(["--quick", "--only", "mltoolkit"])
    assert (quick.repetitions, quick.duration_s, quick.only) == (1, 2, ("mltoolkit",))
    assert serving.parse_args(["--repetitions", "5", "--duration", "10"]).repetitions == 5


@pytest.mark.parametrize("argv, message", [
    (["--duration", "0"], "--duration must be at least 1; got 0"),
    (["--repetitions", "0"], "--repetitions must be at least 1"),
    (["--only", "triton"], "matches no server"),
])  # fmt: skip
def test_bad_options_stop_before_anything_starts(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        serving.parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_answers_must_equal_the_in_process_predictions():
    serving._compare(np.array([1, 2]), np.array([1, 2]), "rows 0-1")
    serving._compare(np.array([1.0, 2.0]), np.array([1, 2]), "rows 0-1")  # JSON may float them
    with pytest.raises(ServerFailed, match="wrong answers for rows 0-1: got \\[1, 3\\]"):
        serving._compare(np.array([1, 3]), np.array([1, 2]), "rows 0-1")
    with pytest.raises(ServerFailed, match="wrong answers"):
        serving._compare(np.array([1]), np.array([1, 2]), "rows 0-1")
    with pytest.raises(ServerFailed, match="wrong answers"):  # not truncated into a match
        serving._compare(np.array([1.0, 2.5]), np.array([1, 2]), "rows 0-1")
