"""benchmarks/hung_replica.py: bad options are refused before anything starts."""

import pytest

from .conftest import load_script

hung_replica = load_script("hung_replica")


def test_no_rounds_is_refused_before_anything_starts(capsys):
    with pytest.raises(SystemExit) as exit_:
        hung_replica.main(["--repetitions", "0"])
    assert exit_.value.code == 2 and "--repetitions: at least 1" in capsys.readouterr().err
