"""The command line: parsing in-process, and the real ``python -m mltoolkit.balancer`` process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mltoolkit.balancer import BalancerConfig, ReplicaTarget
from mltoolkit.balancer.cli import config_from_args, main
from mltoolkit.local.ports import free_ports

from .fakes import needs_haproxy, wait_until

REPO = Path(__file__).resolve().parents[2]
ONE = ["--port", "0", "--replica", "a=http://127.0.0.1:9001"]


def test_the_command_line_rebuilds_a_config():
    config = BalancerConfig(
        replicas=(
            ReplicaTarget("digits-0", "http://127.0.0.1:9001", node="node-0", weight=2.5),
            ReplicaTarget("digits-1", "http://127.0.0.1:9002"),
        ),
        policy="round_robin",
        port=8123,
        health_interval_s=0.1,
        retries=2,
        request_timeout_s=7.5,
        client_header_timeout_s=3.0,
        client_body_timeout_s=4.0,
        client_idle_timeout_s=5.0,
        max_client_connections=77,
        reuse_port=True,
        hedge=True,
        hedge_min_s=0.3,
        data_plane="python",
        latency_sample=3,
    )
    assert config_from_args(config.to_cli_args()) == config
    haproxy = replace(config, hedge=False, hedge_min_s=0.1, data_plane="haproxy")
    assert config_from_args(haproxy.to_cli_args()) == haproxy


def test_defaults_follow_the_contract():
    config = config_from_args(["--port", "8000", "--replica", "a=http://127.0.0.1:9001@n1"])
    assert (config.host, config.port, config.health_interval_s, config.retries) == (
        "127.0.0.1", 8000, 0.25, 1,
    )  # fmt: skip
    assert config.replicas == (ReplicaTarget("a", "http://127.0.0.1:9001", "n1"),)
    assert (config.data_plane, config.latency_sample) == ("haproxy", 1)  # HAProxy forwards by default


def test_hedging_needs_the_python_data_plane(capsys):
    with pytest.raises(SystemExit):
        main([*ONE, "--hedge"])
    assert "--hedge: True is not allowed; expected False with data_plane \"haproxy\"" in capsys.readouterr().err
    assert config_from_args([*ONE, "--hedge", "--data-plane", "python"]).hedge


def test_a_missing_haproxy_is_named_with_its_install_command(capsys, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert main(ONE) == 2
    assert "haproxy is not installed; install it (apt-get install haproxy) or give --data-plane python" in (
        capsys.readouterr().err
    )
    assert config_from_args([*ONE, "--data-plane", "python"]).data_plane == "python"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--replica", "a=http://127.0.0.1:9001"], "--port"),  # missing
        (["--port", "0"], "--replica"),  # missing
        (["--port", "x", "--replica", "a=http://127.0.0.1:9001"], "--port: invalid int value: 'x'"),
        (["--port", "70000", "--replica", "a=http://127.0.0.1:9001"], "--port: 70000 is not allowed"),
        (["--port", "0", "--replica", "a:http://127.0.0.1:9001"], "--replica: --replica: 'a:http"),
        (["--port", "0", "--replica", "a=ftp://h:1"], "--replica: ReplicaTarget.url"),
        ([*ONE, "--replica", "a=http://127.0.0.1:9002"], "--replica: 'a' is not allowed; expected unique"),
        ([*ONE, "--policy", "fastest"], "--policy: 'fastest' is not allowed; expected one of"),
        ([*ONE, "--retries", "9"], "--retries: 9 is not allowed; expected a whole number from 0 to 3"),
        ([*ONE, "--health-interval", "0"], "--health-interval: 0.0 is not allowed"),
        ([*ONE, "--timeout", "-1"], "--timeout: -1.0 is not allowed"),
        ([*ONE, "--weight", "b=2"], "--weight: 'b' is not a --replica name"),
        ([*ONE, "--weight", "a=0"], "--weight: ReplicaTarget.weight: 0.0 is not allowed"),
        ([*ONE, "--weight", "a"], "--weight: 'a' is not NAME=WEIGHT"),
        ([*ONE, "--client-header-timeout", "0"], "--client-header-timeout: 0.0 is not allowed"),
        ([*ONE, "--max-client-connections", "0"], "--max-client-connections: 0 is not allowed"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_process_rejects_bad_arguments_with_status_2():
    result = subprocess.run(
        [sys.executable, "-m", "mltoolkit.balancer", "--port", "0", "--replica", "nonsense"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 2
    assert "argument --replica" in result.stderr and "NAME=URL[@NODE]" in result.stderr
    assert result.stdout == ""


def _refuses_connections(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
async def balancer_process(tmp_path):
    """``await balancer_process(args)`` → (process, url); killed at the end if still running."""
    processes: list[asyncio.subprocess.Process] = []

    async def start(args: list[str]) -> tuple[asyncio.subprocess.Process, str]:
        stderr = open(tmp_path / "balancer.stderr", "wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mltoolkit.balancer", *args,
            stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        stderr.close()
        processes.append(process)
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=60)).decode()
        assert "listening on http://127.0.0.1:" in line, (line, (tmp_path / "balancer.stderr").read_text())
        return process, line.split("listening on ")[1].split()[0]

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


DATA_PLANES = pytest.mark.parametrize("data_plane", ["python", pytest.param("haproxy", marks=needs_haproxy)])


@pytest.mark.anyio
@DATA_PLANES
async def test_the_balancer_process_end_to_end(replicas, balancer_process, client, tmp_path, data_plane):
    a = await replicas("a")
    b = await replicas("b")
    process, url = await balancer_process(
        ["--port", "0", "--policy", "round_robin", "--health-interval", "0.1", "--data-plane", data_plane,
         "--replica", f"a={a.url}@node-0", "--replica", f"b={b.url}@node-1"]
    )  # fmt: skip
    # its start-up objects are out of the collector's reach before the first request (no first
    # full collection stalling the first requests, as issue 13 measured on the replicas)
    frozen = re.search(r"(\d+) start-up objects frozen", (tmp_path / "balancer.stderr").read_text())
    assert frozen and int(frozen.group(1)) > 10_000
    seen = []
    for _ in range(4):
        async with client.post(url + "/predict", json={"instances": [[1, 2]]}) as response:
            assert response.status == 200
            assert (await response.json())["predictions"] == [3]
            seen.append(response.headers["X-Replica"])
    assert sorted(seen) == ["a", "a", "b", "b"]
    async with client.get(url + "/-/replicas") as response:
        doc = await response.json()
    assert doc["policy"] == "round_robin"
    assert [(r["name"], r["node"], r["served"]) for r in doc["replicas"]] == [
        ("a", "node-0", 2), ("b", "node-1", 2),
    ]  # fmt: skip

    # SIGTERM with a request in progress: the balancer stops accepting connections, lets that
    # request finish, then exits 0.
    a.hold()
    b.hold()
    in_progress = asyncio.create_task(client.post(url + "/predict", json={"instances": [[5]]}))
    await wait_until(lambda: a.in_progress + b.in_progress == 1, what="a request on a replica")
    process.send_signal(signal.SIGTERM)
    port = int(url.rsplit(":", 1)[1])
    await wait_until(lambda: _refuses_connections(port), what="the balancer to stop listening")
    # Keep the request in progress a while after shutdown began: a balancer that cut requests
    # short at shutdown would have dropped it by now.
    await asyncio.sleep(0.5)
    assert process.returncode is None
    a.release()
    b.release()
    response = await in_progress
    assert response.status == 200
    assert (await response.json())["predictions"] == [5]
    response.release()
    assert await asyncio.wait_for(process.wait(), timeout=30) == 0


def test_an_admin_port_round_trips_and_is_checked(capsys):
    config = BalancerConfig(replicas=(ReplicaTarget("a", "http://127.0.0.1:9001"),), port=8000,
                            reuse_port=True, admin_port=8101)  # fmt: skip
    assert config_from_args(config.to_cli_args()) == config
    for argv, message in [
        ([*ONE, "--admin-port", "0"], "--admin-port: 0 is not allowed; expected a whole number from 1"),
        (["--port", "8000", "--replica", "a=http://127.0.0.1:9001", "--admin-port", "8000"],
         "--admin-port: 8000 is not allowed; expected a port other than --port 8000"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit):
            main(argv)
        assert message in capsys.readouterr().err


@pytest.mark.anyio
@DATA_PLANES
async def test_the_admin_port_reaches_this_process_alone(replicas, balancer_process, client, data_plane):
    """Two processes share --port (--reuse-port); each one's --admin-port answers for it only."""
    a = await replicas("a")
    admin_ports = free_ports(2)
    first, url = await balancer_process(["--port", "0", "--reuse-port", "--replica", f"a={a.url}",
                                         "--admin-port", str(admin_ports[0]), "--data-plane", data_plane])  # fmt: skip
    port = url.rsplit(":", 1)[1]
    second, _ = await balancer_process(["--port", port, "--reuse-port", "--replica", f"a={a.url}",
                                        "--admin-port", str(admin_ports[1]), "--data-plane", data_plane])  # fmt: skip
    async with client.post(f"http://127.0.0.1:{admin_ports[1]}/predict", json={"instances": [[1]]}) as response:
        assert response.status == 200
    counts = []
    for admin in admin_ports:
        async with client.get(f"http://127.0.0.1:{admin}/-/metrics?format=json") as response:
            counts.append(sum(r["count"] for r in (await response.json())["replicas"]))
    assert counts == [0, 1]
    for process in (first, second):
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
