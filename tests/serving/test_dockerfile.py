"""The container image recipe: no Docker engine here, so check what it says against the code."""

import json
import re
import shlex
import socket
from pathlib import Path

import pytest

from mltoolkit.serving.config import config_from_args

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "mltoolkit" / "serving" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def env_of_image() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in instructions():
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
    return env


def test_runs_the_server_module_as_pid_1():
    [cmd] = [rest for keyword, rest in instructions() if keyword == "CMD"]
    assert json.loads(cmd) == ["python", "-m", "mltoolkit.serving"]
    [base] = [rest for keyword, rest in instructions() if keyword == "FROM"]
    assert re.fullmatch(r"python:3\.1[1-9]-slim", base)
    [user] = [rest for keyword, rest in instructions() if keyword == "USER"]
    assert user != "root" and user != "0"


def test_copies_only_paths_that_exist_in_the_source_tree():
    copied = [rest.split()[:-1] for keyword, rest in instructions() if keyword == "COPY"]
    sources = [source for group in copied for source in group]
    assert sources and all((REPO / source).exists() for source in sources), sources


def test_the_image_environment_configures_the_server_for_the_pod(tmp_path):
    env = env_of_image()
    model = tmp_path / "model.joblib"
    model.write_bytes(b"")
    config = config_from_args(
        [], environ={**env, "MLTOOLKIT_MODEL_PATH": str(model), "MLTOOLKIT_MODEL_NAME": "digits"}
    )
    assert (config.host, config.port) == ("0.0.0.0", 8080)
    assert config.replica_id == socket.gethostname()  # the pod name on Kubernetes
    assert env["MLTOOLKIT_MODEL_PATH"].startswith("/models/")
    exposed = [rest for keyword, rest in instructions() if keyword == "EXPOSE"]
    assert exposed == [env["PORT"]]


@pytest.mark.parametrize("needed", ["pyproject.toml", "README.md", "mltoolkit"])
def test_the_build_context_keeps_what_the_image_installs(needed):
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore and f"!{needed}" in ignore
