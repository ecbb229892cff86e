import socket

import pytest

from mltoolkit.errors import SpecError
from mltoolkit.serving.config import ServerConfig, config_from_args
from mltoolkit.spec import BatchingSpec


@pytest.fixture
def model_file(tmp_path) -> str:
    path = tmp_path / "m.joblib"
    path.write_bytes(b"not read by the config")
    return str(path)


def test_command_line_options(model_file):
    config = config_from_args(
        [
            "--model-path", model_file, "--model-name", "digits", "--port", "9001",
            "--replica-id", "digits-0", "--host", "0.0.0.0", "--max-request-bytes", "4096",
            "--max-batch-size", "16", "--max-wait-ms", "2.5",
        ],  # fmt: skip
        environ={},
    )
    assert config == ServerConfig(
        model_path=model_file,
        model_name="digits",
        port=9001,
        replica_id="digits-0",
        host="0.0.0.0",
        max_request_bytes=4096,
        batching=BatchingSpec(enabled=True, max_batch_size=16, max_wait_ms=2.5),
    )


def test_defaults_bind_loopback_and_batch(model_file):
    config = config_from_args(["--model-path", model_file, "--model-name", "digits"], environ={})
    assert config.host == "127.0.0.1"
    assert config.port == 8080
    assert config.replica_id == socket.gethostname()
    assert config.batching == BatchingSpec()
    assert config_from_args(
        ["--model-path", model_file, "--model-name", "d", "--no-batching"], environ={}
    ).batching.enabled is False


def test_environment_fallbacks_for_the_container(model_file):
    environ = {
        "MLTOOLKIT_MODEL_PATH": model_file,
        "MLTOOLKIT_MODEL_NAME": "digits",
        "MLTOOLKIT_REPLICA_ID": "pod-7",
        "PORT": "8081",
        "MLTOOLKIT_HOST": "0.0.0.0",
        "MLTOOLKIT_BATCHING": "false",
        "MLTOOLKIT_MAX_WAIT_MS": "3",
    }
    config = config_from_args([], environ=environ)
    assert (config.model_path, config.model_name, config.replica_id) == (model_file, "digits", "pod-7")
    assert (config.host, config.port) == ("0.0.0.0", 8081)
    assert config.batching == BatchingSpec(enabled=False, max_wait_ms=3.0)
    # the command line wins over the environment
    assert config_from_args(["--port", "9000"], environ=environ).port == 9000


@pytest.mark.parametrize(
    "args, field, fragment",
    [
        (["--port", "http"], "--port", "a whole number"),
        (["--port", "70000"], "--port", "from 0 to 65535"),
        (["--max-batch-size", "0"], "--max-batch-size", "from 1 to 4096"),
        (["--max-wait-ms", "-1"], "--max-wait-ms", "from 0 to 1000"),
        (["--max-wait-ms", "soon"], "--max-wait-ms", "a number"),
        (["--max-request-bytes", "10"], "--max-request-bytes", "from 1024"),
        (["--model-name", "my model"], "--model-name", "letters, digits"),
        (["--replica-id", "two words"], "--replica-id", "no spaces"),
        (["--host", "local host!"], "--host", "an IP address"),
        (["--model-path", "/nonexistent/model.joblib"], "--model-path", "an existing model file"),
    ],
)
def test_bad_options_are_named(model_file, args, field, fragment):
    argv = ["--model-path", model_file, "--model-name", "digits", *args]
    with pytest.raises(SpecError) as info:
        config_from_args(argv, environ={})
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "environ, field",
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"MLTOOLKIT_MAX_BATCH_SIZE": "100000"}, "MLTOOLKIT_MAX_BATCH_SIZE"),
        ({"MLTOOLKIT_BATCHING": "maybe"}, "MLTOOLKIT_BATCHING"),
        ({"MLTOOLKIT_HOST": "bad host"}, "MLTOOLKIT_HOST"),
    ],
)
def test_bad_environment_values_name_the_variable(model_file, environ, field):
    environ = {"MLTOOLKIT_MODEL_PATH": model_file, "MLTOOLKIT_MODEL_NAME": "d", **environ}
    with pytest.raises(SpecError) as info:
        config_from_args([], environ=environ)
    assert info.value.field == field


@pytest.mark.parametrize("missing", ["--model-path", "--model-name"])
def test_model_path_and_name_are_required(model_file, missing):
    argv = {"--model-path": model_file, "--model-name": "digits"}
    del argv[missing]
    with pytest.raises(SpecError) as info:
        config_from_args([x for pair in argv.items() for x in pair], environ={})
    assert info.value.field == missing
    assert "environment variable MLTOOLKIT_MODEL_" in str(info.value)
