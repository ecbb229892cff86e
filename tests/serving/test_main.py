"""``python -m mltoolkit.serving``: bad options and model files stop it with exit 2, unbound."""

import socket
import subprocess

import joblib
import pytest

from mltoolkit.local.ports import free_ports
from mltoolkit.serving.__main__ import main

from .process import server_command


@pytest.mark.parametrize(
    "make_file, extra, fragment",
    [
        ("digits", ["--port", "abc"], "--port: 'abc' is not allowed; expected a whole number"),
        ("digits", ["--max-batch-size", "-3"], "--max-batch-size: -3 is not allowed"),
        ("garbage", [], "--model-path: "),
        ("no-predict", [], "which has no predict method"),
    ],
)
def test_bad_configuration_exits_2_with_the_option_named(
    tmp_path, digits_path, capsys, make_file, extra, fragment
):
    path = digits_path
    if make_file == "garbage":
        path = str(tmp_path / "g.joblib")
        (tmp_path / "g.joblib").write_bytes(b"garbage")
    if make_file == "no-predict":
        path = str(tmp_path / "n.joblib")
        joblib.dump([1, 2, 3], path)
    with pytest.raises(SystemExit) as info:
        main(["--model-path", path, "--model-name", "digits", "--port", "0", *extra], environ={})
    assert info.value.code == 2
    assert fragment in capsys.readouterr().err


def test_the_real_command_exits_2_before_binding(digits_path):
    port = free_ports(1)[0]
    result = subprocess.run(
        server_command(
            "--model-path", digits_path, "--model-name", "digits", "--port", str(port),
            "--max-wait-ms", "5000",
        ),  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--max-wait-ms: 5000.0 is not allowed; expected a number from 0 to 1000" in result.stderr
    assert "usage: python -m mltoolkit.serving" in result.stderr
    assert "http://" not in result.stdout  # it never announced a listening address


def test_a_busy_port_exits_1_with_the_address(digits_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["--model-path", digits_path, "--model-name", "digits", "--port", str(port)], environ={})
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def _sha256(path) -> str:
    import hashlib
    from pathlib import Path

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_a_model_file_that_does_not_match_its_hash_is_never_unpickled(tmp_path, digits_path, capsys):
    """A file swapped after the spec recorded its hash: refused before joblib runs its code."""
    expected = _sha256(digits_path)
    swapped = tmp_path / "swapped.joblib"
    marker = tmp_path / "the-pickle-ran"
    swapped.write_bytes(
        b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    )  # a pickle that runs a command when loaded
    with pytest.raises(SystemExit) as info:
        main(
            ["--model-path", str(swapped), "--model-name", "digits", "--port", "0",
             "--model-sha256", expected],
            environ={},
        )  # fmt: skip
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"has SHA-256 {_sha256(swapped)}, not the {expected} recorded" in err
    assert not marker.exists()


def test_a_matching_hash_loads(digits_path):
    from mltoolkit.serving.model import load_model

    assert load_model(digits_path, "digits", _sha256(digits_path)).n_features == 64


def test_library_versions_that_differ_from_the_installed_ones_exit_2(digits_path, capsys):
    from importlib.metadata import version

    numpy = version("numpy")
    with pytest.raises(SystemExit) as info:
        main(
            ["--model-path", digits_path, "--model-name", "digits", "--port", "0",
             "--library-versions", f"numpy={numpy},scikit-learn=0.0.1,not-a-real-package-xyz=1.0"],
            environ={},
        )  # fmt: skip
    assert info.value.code == 2
    err = capsys.readouterr().err
    installed = version("scikit-learn")
    assert f"scikit-learn: the model was pickled with scikit-learn 0.0.1; this environment has scikit-learn {installed} installed" in err
    assert "not-a-real-package-xyz: the model was pickled with not-a-real-package-xyz 1.0; this environment does not have it installed" in err
    assert "numpy:" not in err  # the matching one is not reported


def _standby(digits_path, *extra):
    process = subprocess.Popen(
        server_command("--model-path", digits_path, "--model-name", "digits", "--standby", *extra),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    for line in process.stdout:
        if "ready to take over" in line:
            return process
    raise AssertionError(f"the standby exited with {process.wait(timeout=30)}")


def test_a_standby_takes_over_a_replica_when_told(tmp_path, digits_path):
    """A warm spare: loaded first, then given a port, an id and a log, it serves as that replica."""
    import json
    import urllib.request

    port = free_ports(1)[0]
    log = tmp_path / "digits-1.log"
    process = _standby(digits_path)
    try:
        process.stdin.write(json.dumps({"port": port, "replica_id": "digits-1", "log_path": str(log)}) + "\n")
        process.stdin.close()
        from tests.waiting import wait_for

        wait_for(lambda: "on http://127.0.0.1" in (log.read_text() if log.exists() else ""), 60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=30) as answer:
            assert answer.status == 200 and answer.headers["X-Replica"] == "digits-1"
        assert "standby activated as replica 'digits-1'" in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_standby_without_orders_exits_0_and_one_whose_model_changed_refuses(tmp_path, digits_path):
    import json
    import shutil

    process = _standby(digits_path)
    process.stdin.close()
    assert process.wait(timeout=30) == 0

    copy = tmp_path / "digits.joblib"
    shutil.copy(digits_path, copy)
    process = _standby(str(copy), "--model-sha256", _sha256(copy))
    copy.write_bytes(b"swapped while waiting")
    process.stdin.write(json.dumps({"port": free_ports(1)[0], "replica_id": "r"}) + "\n")
    process.stdin.close()
    assert process.wait(timeout=30) == 2
    assert "the file changed since" in process.stdout.read()


def test_a_standby_takes_over_with_the_replicas_emulated_service_time(tmp_path, digits_path):
    """A replica of LocalTarget(service_ms=...) taken over by the spare keeps its emulation: the
    spare starts without it and is told the service time and slowdown when it takes over."""
    import json
    import time
    import urllib.request

    port = free_ports(1)[0]
    log = tmp_path / "digits-1.log"
    process = _standby(digits_path)
    try:
        order = {"port": port, "replica_id": "digits-1", "log_path": str(log), "slowdown": 2.0, "service_ms": 150}
        process.stdin.write(json.dumps(order) + "\n")
        process.stdin.close()
        from tests.waiting import wait_for

        wait_for(lambda: "on http://127.0.0.1" in (log.read_text() if log.exists() else ""), 60)
        body = json.dumps({"instances": [[0.0] * 64]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict", data=body, headers={"Content-Type": "application/json"}
        )
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
        # the emulated core is held 150 ms x 2 (a sleep): a lower bound, not a speed claim
        assert time.monotonic() - started >= 0.3
    finally:
        process.terminate()
        process.wait(timeout=30)
