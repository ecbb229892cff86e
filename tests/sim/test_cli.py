"""``python -m mltoolkit.sim fleet`` as a real child process, and ``FleetProcess``."""

import json
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from mltoolkit.errors import MltoolkitError
from mltoolkit.sim.cli import main
from mltoolkit.sim.costs import CostDistribution
from mltoolkit.sim.fleet_spec import uneven_fleet
from mltoolkit.sim.process import FleetProcess


@pytest.fixture
def spawn():
    """Start CLI processes; every one is killed at the end of the test whatever happened."""
    started = []

    def _spawn(*args):
        process = subprocess.Popen(
            [sys.executable, "-m", "mltoolkit.sim", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        started.append(process)
        return process

    yield _spawn
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, dict(response.headers), json.loads(response.read())


def test_cli_prints_every_replica_serves_and_exits_0_on_sigterm(spawn):
    process = spawn("fleet", "--replicas", "4", "--slots", "2", "--costs", "pareto", "--mean-ms", "20")
    lines = []
    while not lines or not lines[-1].startswith("ready:"):
        line = process.stdout.readline()
        assert line, f"exited early: {process.stderr.read()}"
        lines.append(line.strip())
    replicas = [line.split() for line in lines if re.match(r"r\d\d ", line)]
    assert [r[0] for r in replicas] == ["r00", "r01", "r02", "r03"]
    assert replicas[3][2:] == ["slots=2", "speed=0.333333"]  # the one slow replica of four
    for name, url, *_ in replicas:
        status, headers, _ = get(url + "/v2/health/ready")
        assert status == 200 and headers["X-Replica"] == name
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


@pytest.mark.parametrize(
    "args, named",
    [
        (["--costs", "weibull"], "CostDistribution.kind"),
        (["--slots", "0"], "slots"),
        (["--die", "r99@1"], "--die"),
        (["--slowdown", "r01@soon"], "--slowdown"),
        (["--host", "0.0.0.0"], "FleetSpec.host"),
        (["--config", "/nonexistent/fleet.json"], "--config"),
    ],
)
def test_bad_arguments_return_2_naming_the_value_before_starting(capsys, args, named):
    assert main(["fleet", "--replicas", "4", *args]) == 2
    out, err = capsys.readouterr()
    assert named in err and "expected" in err
    assert out == ""  # nothing started, no ports printed


def test_bad_arguments_from_a_shell_exit_2(spawn):
    process = spawn("fleet", "--costs", "weibull")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2 and "'weibull'" in err and out == ""


def test_fleet_process_runs_a_config_and_drives_faults():
    spec = uneven_fleet(3, slots=1, costs=CostDistribution("constant", 0.01))
    with FleetProcess(spec) as fleet:
        assert sorted(fleet.urls) == ["r00", "r01", "r02"]
        request = urllib.request.Request(fleet.urls["r01"] + "/predict", data=b'{"cost": 0.02}', method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["service_s"] == 0.02
        fleet.slow_down("r01", 5)
        fleet.kill("r00")
        stats = {row["name"]: row for row in fleet.stats()}
        assert stats["r01"]["slowed"] and stats["r01"]["served"] == 1
        assert stats["r00"]["dead"] == "close"
        assert fleet.wait_idle(timeout_s=30)
        with pytest.raises(MltoolkitError, match="r7"):
            fleet.kill("r7")
        process = fleet.process
    assert process.returncode == 0  # stopped with SIGTERM, exited cleanly
    with pytest.raises(OSError):
        get(fleet.urls["r02"] + "/v2/health/ready")
