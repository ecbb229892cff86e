"""The proxy configurations benchmarks/balance.py generates for nginx and HAProxy."""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mltoolkit.sim.fleet_spec import uneven_fleet

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "balance.py"
URLS = {"r00": "http://127.0.0.1:41000", "r01": "http://127.0.0.1:41001"}


@pytest.fixture(scope="module")
def balance():
    spec = importlib.util.spec_from_file_location("balance_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["balance_benchmark"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["balance_benchmark"]


def test_nginx_config_lists_every_replica_with_the_chosen_method(balance, tmp_path):
    least = balance.nginx_config(8080, URLS, "least_conn", str(tmp_path))
    assert "least_conn;" in least and "listen 127.0.0.1:8080;" in least
    assert "server 127.0.0.1:41000 max_fails=1" in least and "server 127.0.0.1:41001 max_fails=1" in least
    assert f"pid {tmp_path}/nginx.pid;" in least
    rr = balance.nginx_config(8080, URLS, "round_robin", str(tmp_path), weights={"r00": 3, "r01": 1})
    assert "least_conn;" not in rr and "41000 weight=3" in rr


def test_haproxy_config_lists_every_replica_with_the_chosen_method(balance):
    config = balance.haproxy_config(8080, URLS, "leastconn", weights={"r00": 3, "r01": 1})
    assert "balance leastconn" in config and "bind 127.0.0.1:8080" in config
    assert "server r00 127.0.0.1:41000 weight 3" in config
    assert "option httpchk GET /v2/health/ready" in config


def test_capacity_weights_are_integers_proportional_to_slots_times_speed(balance):
    weights = balance.capacity_weights(uneven_fleet(8, slots=2, slow_fraction=0.25, slow_factor=3))
    # fast: 2 x 1 = 2, slow: 2 x 1/3 = 0.667 -> 3 : 1
    assert sorted(set(weights.values())) == [1, 3] and weights["r03"] == 1 and weights["r00"] == 3


def test_our_balancer_command_names_policy_and_replicas(balance):
    command = balance.balancer_command(8080, URLS, "round_robin")
    assert command[1:3] == ["-m", "mltoolkit.balancer"]
    assert command[command.index("--policy") + 1] == "round_robin"
    assert "r00=http://127.0.0.1:41000" in command and "r01=http://127.0.0.1:41001" in command


@pytest.mark.parametrize("binary", ["nginx", "haproxy"])
def test_generated_configs_pass_the_proxies_own_check(balance, tmp_path, binary):
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} is not installed (apt-get install -y {binary})")
    path = tmp_path / "proxy.conf"
    if binary == "nginx":
        path.write_text(balance.nginx_config(8080, URLS, "least_conn", str(tmp_path)))
        command = ["nginx", "-t", "-p", str(tmp_path), "-e", str(tmp_path / "startup.log"), "-c", str(path)]
    else:
        path.write_text(balance.haproxy_config(8080, URLS, "leastconn"))
        command = ["haproxy", "-c", "-f", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_several_balancers_options_and_goal_lines(balance):
    settings = balance.parse_args(["--several-only", "--balancers", "2,4", "--quick"])
    assert (settings.steady, settings.failure, settings.several) == (False, False, True)
    assert settings.balancers == (2, 4)
    assert (settings.several_duration_s, settings.several_repetitions) == (10.0, 1)
    assert balance.parse_args([]).several and balance.parse_args([]).balancers == (1, 2, 4)
    assert not balance.parse_args(["--no-several"]).several
    for bad in (["--balancers", "0"], ["--balancers", "two"], ["--several-only", "--no-several"]):
        with pytest.raises(SystemExit):
            balance.parse_args(bad)
    # The goal, from summarize's table over two runs: the ratio is the median of per-run ratios.
    ideal, two, four = balance.IDEAL, balance.several_name(2), balance.several_name(4)
    runs = balance.pd.DataFrame(
        [
            {"system": name, "load": 0.9, "rep": rep, "p50_ms": 1.0, "p99_ms": p99,
             "throughput_rps": 1.0, "error_rate": 0.0, "util_cv": 0.1, "served_cv": 0.1}
            for rep, values in enumerate([(100, 120, 140, 2000), (200, 240, 260, 3000)])
            for name, p99 in zip([ideal, two, four, balance.RANDOM], values)
        ]
    )
    lines = balance.several_goals(balance.summarize(runs), 0.9)
    # 2 balancers: 1.2x in both runs; 4: 1.4x and 1.3x -> median 1.35; random 20x and 15x -> 17.5
    assert lines[0].endswith("1.20x (random choice: 17.5x) -- met") and "2 balancers" in lines[0]
    assert lines[1].endswith("1.35x (random choice: 17.5x) -- NOT met") and "4 balancers" in lines[1]
