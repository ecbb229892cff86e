import os
import subprocess
import sys

import pytest

from mltoolkit.quickstart import digits_spec, parse_args
from tests.local.conftest import processes_of


@pytest.mark.slow
def test_quickstart_runs_end_to_end_and_leaves_nothing_running(_isolated_home):
    """The headless quickstart, shortened; MLTOOLKIT_HOME (this test's) reaches the child."""
    assert os.environ["MLTOOLKIT_HOME"] == str(_isolated_home)
    result = subprocess.run(
        [sys.executable, "-m", "mltoolkit.quickstart",
         "--replicas", "2", "--nodes", "2", "--rate", "20", "--duration", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "predictions match" in out
    for expected in ("== latency summary", "p99_ms", "== utilization by node", "node-1",
                     "== balancer counters", "digits-1", "down: every process stopped"):
        assert expected in out
    assert processes_of(_isolated_home) == []
    assert list((_isolated_home / "local").glob("*.json")) == []  # no record left


@pytest.mark.parametrize(
    "argv, message",
    [(["--replicas", "0"], "--replicas"), (["--rate", "-5"], "--rate"), (["--nodes", "x"], "--nodes"),
     (["--data-plane", "nginx"], "--data-plane")],
)
def test_bad_arguments_are_named(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_data_plane_option_reaches_the_balancer_spec():
    import numpy as np
    from sklearn.dummy import DummyClassifier

    from mltoolkit.spec.deployment import DEFAULT_DATA_PLANE

    assert parse_args([]).data_plane == DEFAULT_DATA_PLANE  # BalancerSpec's
    args = parse_args(["--data-plane", "haproxy"])
    model = DummyClassifier().fit(np.zeros((2, 3)), [0, 1])
    spec = digits_spec(model, replicas=2, policy=args.policy, data_plane=args.data_plane)
    assert spec.balancer.data_plane == "haproxy"
