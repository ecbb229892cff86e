"""benchmarks/peers/proxies.py: the balancers' configurations and commands (nothing is started)."""

import shutil
import subprocess

import pytest

from peers.proxies import (
    BALANCERS,
    DIRECT,
    Balancer,
    balancer_command,
    haproxy_config,
    nginx_config,
    select_balancers,
    upstream_config,
)

REPLICAS = {"r0": "http://127.0.0.1:41000", "r1": "http://127.0.0.1:41001"}


def test_each_balancer_is_compared_with_round_robin_and_least_connections():
    assert [b.label for b in BALANCERS] == [
        "direct (no balancer)", "mltoolkit ewma [haproxy]", "mltoolkit least_request [haproxy]",
        "mltoolkit ewma [python]", "mltoolkit round_robin [python]", "mltoolkit least_request [python]",
        "nginx round_robin", "nginx least_conn", "haproxy roundrobin", "haproxy leastconn",
    ]  # fmt: skip


def test_nginx_config_lists_the_replicas_with_the_method_and_keeps_connections_alive(tmp_path):
    least = nginx_config(8080, REPLICAS, "least_conn", str(tmp_path))
    assert "least_conn;" in least and "listen 127.0.0.1:8080;" in least
    assert "server 127.0.0.1:41000;" in least and "server 127.0.0.1:41001;" in least
    assert "keepalive 512;" in least and 'proxy_set_header Connection "";' in least
    assert "least_conn;" not in nginx_config(8080, REPLICAS, "round_robin", str(tmp_path))
    with pytest.raises(ValueError, match="least_conn"):
        nginx_config(8080, REPLICAS, "leastconn", str(tmp_path))


def test_haproxy_config_lists_the_replicas_with_the_method_and_one_thread():
    config = haproxy_config(8080, REPLICAS, "leastconn")
    assert "balance leastconn" in config and "bind 127.0.0.1:8080" in config
    assert "server r0 127.0.0.1:41000" in config and "nbthread 1" in config
    with pytest.raises(ValueError, match="roundrobin"):
        haproxy_config(8080, REPLICAS, "round_robin")


def test_the_upstream_answers_on_every_replica_port_with_its_name():
    config = upstream_config({"r0": 41000, "r1": 41001}, "/tmp/x")
    assert config.count("listen 127.0.0.1:") == 2
    assert "listen 127.0.0.1:41001;" in config and "add_header X-Replica r1 always;" in config


def test_commands_write_their_config_into_the_run_directory(tmp_path):
    ours = balancer_command(Balancer("mltoolkit", "least_request", "python"), 9000, REPLICAS, tmp_path)
    assert ours[1:3] == ["-m", "mltoolkit.balancer"]
    assert ours[ours.index("--policy") + 1] == "least_request"
    assert ours[ours.index("--data-plane") + 1] == "python"
    assert "r1=http://127.0.0.1:41001" in ours
    nginx = balancer_command(Balancer("nginx", "round_robin"), 9000, REPLICAS, tmp_path)
    assert nginx[0] == "nginx" and (tmp_path / "nginx-round_robin-9000.conf").exists()
    haproxy = balancer_command(Balancer("haproxy", "leastconn"), 9000, REPLICAS, tmp_path)
    assert haproxy[:2] == ["haproxy", "-db"] and (tmp_path / "haproxy-leastconn-9000.cfg").exists()
    with pytest.raises(ValueError, match="no process"):
        balancer_command(DIRECT, 9000, REPLICAS, tmp_path)


def test_only_keeps_direct_as_the_baseline():
    assert [b.label for b in select_balancers(["haproxy"])] == [
        "direct (no balancer)", "mltoolkit ewma [haproxy]", "mltoolkit least_request [haproxy]",
        "haproxy roundrobin", "haproxy leastconn",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="matches no balancer"):
        select_balancers(["traefik"])


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_generated_configs(tmp_path):
    for name, text in (("proxy", nginx_config(8080, REPLICAS, "least_conn", str(tmp_path))),
                       ("upstream", upstream_config({"r0": 41000}, str(tmp_path)))):  # fmt: skip
        path = tmp_path / f"{name}.conf"
        path.write_text(text)
        check = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(path)],
                               capture_output=True, text=True, timeout=30)  # fmt: skip
        assert check.returncode == 0, check.stderr


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="HAProxy is not installed")
def test_haproxy_accepts_the_generated_config(tmp_path):
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(8080, REPLICAS, "roundrobin"))
    check = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True,
                           timeout=30)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
