"""The model servers benchmarks/serving.py compares, and how to start and call each one.

Each ``ServerKind`` knows its command line, environment and configuration files (``launch``
writes the files into a run directory and returns a ``Launch``; nothing is started here), the
protocol its predictions speak, and which rows of the table it yields: our batching server also
yields the no-op row (``GET /v2/health/live`` on the same process, the HTTP stack's ceiling).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

PEERS_DIR = Path(__file__).resolve().parent
MODEL_NAME = "digits"
PORTS_NEEDED = 3
# One BLAS thread for every server: they are pinned to one core, where more threads only contend.
BLAS_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

PREDICT = "predict"  # POST {"instances": [[...]]} -> {"predictions": [...]}
V2 = "v2"  # Open Inference Protocol V2 infer
NOOP = "noop"  # GET with no body and no model


@dataclass(frozen=True)
class Row:
    """One row group of the results table: a label and the protocol wrk speaks to ``path``."""

    label: str
    path: str
    protocol: str


@dataclass(frozen=True)
class Launch:
    """Everything needed to start one server process (pinning is added by the caller)."""

    command: list[str]
    env: dict[str, str]
    cwd: Path
    base_url: str
    ready_path: str


@dataclass(frozen=True)
class ServerKind:
    """A server under test. ``peer`` names its virtualenv (None: mltoolkit's own); ``options``
    are extra command-line options for ours, and ``("tuned",)`` selects MLServer's tuned
    settings."""

    name: str
    peer: str | None
    rows: tuple[Row, ...]
    options: tuple[str, ...] = field(default=())

    def launch(
        self, ports: Sequence[int], model_path: Path, rundir: Path, python_bin: Path
    ) -> Launch:
        """The process to start for this server, writing any configuration it needs. ``ports``:
        free ports, the first for HTTP (MLServer also listens on the next two: gRPC, metrics)."""
        if len(ports) < PORTS_NEEDED:
            raise ValueError(f"launch needs {PORTS_NEEDED} free ports; got {list(ports)}")
        port = ports[0]
        env = {**_base_env(), **BLAS_ENV}
        base_url = f"http://127.0.0.1:{port}"
        if self.peer is None:
            command = [
                str(python_bin / "python"), "-m", "mltoolkit.serving",
                "--model-path", str(model_path), "--model-name", MODEL_NAME,
                "--port", str(port), "--replica-id", "bench", *self.options,
            ]  # fmt: skip
            return Launch(command, env, rundir, base_url, "/v2/health/ready")
        if self.peer == "mlserver":
            workdir = rundir / f"mlserver-{port}"
            write_mlserver_repository(workdir, model_path, ports, tuned="tuned" in self.options)
            env["MLSERVER_METRICS_DIR"] = str(workdir / ".metrics")
            command = [str(python_bin / "mlserver"), "start", str(workdir)]
            return Launch(command, env, workdir, base_url, f"/v2/models/{MODEL_NAME}/ready")
        if self.peer == "bentoml":
            env.update(
                DIGITS_MODEL_PATH=str(model_path),
                BENTOML_HOME=str(rundir / "bentoml-home"),
                BENTOML_DO_NOT_TRACK="True",
            )
            command = [
                str(python_bin / "bentoml"), "serve", "bentoml_service:Digits",
                "--working-dir", str(PEERS_DIR), "--host", "127.0.0.1", "--port", str(port),
            ]  # fmt: skip
            return Launch(command, env, rundir, base_url, "/readyz")
        if self.peer == "fastapi":
            env["DIGITS_MODEL_PATH"] = str(model_path)
            command = [
                str(python_bin / "uvicorn"), "fastapi_app:app", "--app-dir", str(PEERS_DIR),
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
            return Launch(command, env, rundir, base_url, "/health")
        raise ValueError(f"unknown peer {self.peer!r}")


OURS_BATCHING = "mltoolkit, batching"
OURS_NO_BATCHING = "mltoolkit, no batching"
OURS_NOOP = "mltoolkit no-op (GET /v2/health/live)"
MLSERVER_DEFAULT = "MLServer, as installed"
MLSERVER_TUNED = "MLServer, tuned"
BENTOML = "BentoML"
FASTAPI = "FastAPI + uvicorn"

SERVER_KINDS: tuple[ServerKind, ...] = (
    ServerKind(
        OURS_BATCHING, None,
        (Row(OURS_BATCHING, "/predict", PREDICT), Row(OURS_NOOP, "/v2/health/live", NOOP)),
    ),
    ServerKind(OURS_NO_BATCHING, None, (Row(OURS_NO_BATCHING, "/predict", PREDICT),),
               options=("--no-batching",)),
    ServerKind(MLSERVER_DEFAULT, "mlserver",
               (Row(MLSERVER_DEFAULT, f"/v2/models/{MODEL_NAME}/infer", V2),)),
    ServerKind(MLSERVER_TUNED, "mlserver",
               (Row(MLSERVER_TUNED, f"/v2/models/{MODEL_NAME}/infer", V2),), options=("tuned",)),
    ServerKind(BENTOML, "bentoml", (Row(BENTOML, "/predict", PREDICT),)),
    ServerKind(FASTAPI, "fastapi", (Row(FASTAPI, "/predict", PREDICT),)),
)  # fmt: skip


def select_kinds(only: Sequence[str]) -> list[ServerKind]:
    """The kinds whose name contains any of ``only`` (case-insensitive); all when empty."""
    if not only:
        return list(SERVER_KINDS)
    words = [w.lower() for w in only]
    chosen = [k for k in SERVER_KINDS if any(w in k.name.lower() for w in words)]
    if not chosen:
        names = ", ".join(repr(k.name) for k in SERVER_KINDS)
        raise ValueError(f"--only {list(only)} matches no server; the servers are {names}")
    return chosen


def write_mlserver_repository(
    workdir: Path, model_path: Path, ports: Sequence[int], tuned: bool
) -> None:
    """settings.json and digits/model-settings.json for ``mlserver start workdir``.

    As installed: only the addresses (HTTP, gRPC and metrics on ``ports``).
    Tuned: also ``debug: false`` and ``parallel_workers: 0`` (inference in the server process
    instead of a worker pool reached through a queue).
    """
    (workdir / MODEL_NAME).mkdir(parents=True, exist_ok=True)
    settings = mlserver_settings(ports, tuned)
    (workdir / "settings.json").write_text(json.dumps(settings, indent=2))
    model_settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model_path), "version": "v1"},
    }
    (workdir / MODEL_NAME / "model-settings.json").write_text(json.dumps(model_settings, indent=2))


def mlserver_settings(ports: Sequence[int], tuned: bool) -> dict[str, Any]:
    http_port, grpc_port, metrics_port = ports[:3]
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
    }
    if tuned:
        settings.update(debug=False, parallel_workers=0)
    return settings


# -- request bodies and answers (pure) ---------------------------------------------------------


def request_body(protocol: str, rows: np.ndarray) -> dict[str, Any]:
    """The JSON body carrying ``rows`` in ``protocol``."""
    if protocol == PREDICT:
        return {"instances": rows.tolist()}
    if protocol == V2:
        return {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(rows.shape),
                    "datatype": "FP64",
                    "data": rows.reshape(-1).tolist(),
                }
            ]
        }
    raise ValueError(f"protocol {protocol!r} has no request body")


def predictions_of(protocol: str, answer: Any) -> np.ndarray:
    """The predictions in a server's JSON answer, as a flat array."""
    if protocol == PREDICT:
        values = answer["predictions"]
    elif protocol == V2:
        values = answer["outputs"][0]["data"]
    else:
        raise ValueError(f"protocol {protocol!r} has no predictions")
    return np.asarray(values).reshape(-1)


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    return {k: os.environ[k] for k in keep if k in os.environ}


def main_python_bin() -> Path:
    """The bin directory of the interpreter running the benchmark (mltoolkit's environment)."""
    return Path(sys.executable).parent
