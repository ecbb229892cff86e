"""benchmarks/peers/servers.py: how each server is launched and called (nothing is started)."""

import json

import numpy as np
import pytest

from peers.servers import (
    MLSERVER_TUNED,
    NOOP,
    OURS_BATCHING,
    OURS_NOOP,
    PREDICT,
    SERVER_KINDS,
    V2,
    mlserver_settings,
    predictions_of,
    request_body,
    select_kinds,
)

KINDS = {kind.name: kind for kind in SERVER_KINDS}
PORTS = [41001, 41002, 41003]


def launch(name, tmp_path):
    model = tmp_path / "digits.joblib"
    model.write_bytes(b"model")
    return KINDS[name].launch(PORTS, model, tmp_path, tmp_path / "bin")


def test_every_server_named_in_the_issue_is_compared():
    assert list(KINDS) == [
        "mltoolkit, batching", "mltoolkit, no batching", "MLServer, as installed",
        "MLServer, tuned", "BentoML", "FastAPI + uvicorn",
    ]  # fmt: skip
    # the no-op ceiling is measured on the batching server's own process
    assert [(r.label, r.path, r.protocol) for r in KINDS[OURS_BATCHING].rows] == [
        (OURS_BATCHING, "/predict", PREDICT), (OURS_NOOP, "/v2/health/live", NOOP),
    ]  # fmt: skip


def test_ours_runs_the_replica_command_with_batching_on_or_off(tmp_path):
    on = launch("mltoolkit, batching", tmp_path)
    off = launch("mltoolkit, no batching", tmp_path)
    assert on.command[1:3] == ["-m", "mltoolkit.serving"] and "--no-batching" not in on.command
    assert off.command[-1] == "--no-batching"
    assert on.command[on.command.index("--port") + 1] == "41001"
    assert on.env["OPENBLAS_NUM_THREADS"] == "1" and on.ready_path == "/v2/health/ready"


def test_mlserver_tuned_turns_debug_off_and_infers_in_process(tmp_path):
    assert mlserver_settings(PORTS, tuned=False) == {
        "host": "127.0.0.1", "http_port": 41001, "grpc_port": 41002, "metrics_port": 41003,
    }  # fmt: skip
    assert mlserver_settings(PORTS, tuned=True) == {
        **mlserver_settings(PORTS, tuned=False), "debug": False, "parallel_workers": 0,
    }  # fmt: skip
    started = launch(MLSERVER_TUNED, tmp_path)
    workdir = started.cwd
    assert started.command[-2:] == ["start", str(workdir)]
    settings = json.loads((workdir / "settings.json").read_text())
    assert settings["debug"] is False and settings["parallel_workers"] == 0
    model = json.loads((workdir / "digits" / "model-settings.json").read_text())
    assert model["implementation"] == "mlserver_sklearn.SKLearnModel"
    assert model["parameters"]["uri"] == str(tmp_path / "digits.joblib")  # the same file for all


def test_bentoml_and_fastapi_load_the_same_model_file(tmp_path):
    for name in ("BentoML", "FastAPI + uvicorn"):
        started = launch(name, tmp_path)
        assert started.env["DIGITS_MODEL_PATH"] == str(tmp_path / "digits.joblib")
        assert "41001" in started.command
    assert launch("BentoML", tmp_path).env["BENTOML_DO_NOT_TRACK"] == "True"


def test_launch_needs_three_ports(tmp_path):
    with pytest.raises(ValueError, match="3 free ports"):
        KINDS[MLSERVER_TUNED].launch([1], tmp_path / "m", tmp_path, tmp_path)


def test_request_bodies_and_answers_per_protocol():
    rows = np.arange(6.0).reshape(2, 3)
    assert request_body(PREDICT, rows) == {"instances": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]}
    v2 = request_body(V2, rows)["inputs"][0]
    assert v2["shape"] == [2, 3] and v2["datatype"] == "FP64" and v2["data"] == list(range(6))
    assert predictions_of(PREDICT, {"predictions": [4, 2]}).tolist() == [4, 2]
    # MLServer answers a column: shape [2, 1]
    assert predictions_of(V2, {"outputs": [{"data": [[4], [2]]}]}).tolist() == [4, 2]
    with pytest.raises(ValueError):
        request_body(NOOP, rows)


def test_only_selects_servers_by_words_in_their_names():
    assert [k.name for k in select_kinds(["mlserver"])] == ["MLServer, as installed", "MLServer, tuned"]
    assert len(select_kinds([])) == len(SERVER_KINDS)
    with pytest.raises(ValueError, match="matches no server"):
        select_kinds(["triton"])
