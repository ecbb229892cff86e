"""The emulated slow replica: ``--slowdown FACTOR`` (env ``MLTOOLKIT_SLOWDOWN``).

After each predict call that took t seconds the replica sleeps (FACTOR - 1) * t where predict runs,
so it serves fewer requests per second, like a replica on a slower CPU.
"""

import threading

import numpy as np
import pytest

from mltoolkit.endpoint import Endpoint
from mltoolkit.errors import SpecError
from mltoolkit.observe import load_test
from mltoolkit.serving import batching
from mltoolkit.serving.__main__ import main
from mltoolkit.serving.batching import Batcher
from mltoolkit.serving.config import ServerConfig, config_from_args
from mltoolkit.serving.testing import SleepyModel
from mltoolkit.spec import BatchingSpec


SAFETY_S = 60


@pytest.fixture
def model_file(tmp_path) -> str:
    path = tmp_path / "m.joblib"
    path.write_bytes(b"not read by the config")
    return str(path)


def base_args(path: str) -> list[str]:
    return ["--model-path", path, "--model-name", "m"]


# -- configuration ---------------------------------------------------------------------------


def test_slowdown_defaults_to_full_speed_and_comes_from_the_option_or_the_environment(model_file):
    assert config_from_args(base_args(model_file), environ={}).slowdown == 1.0
    assert config_from_args([*base_args(model_file), "--slowdown", "3"], environ={}).slowdown == 3.0
    from_env = config_from_args(base_args(model_file), environ={"MLTOOLKIT_SLOWDOWN": "2.5"})
    assert from_env.slowdown == 2.5
    both = config_from_args(
        [*base_args(model_file), "--slowdown", "4"], environ={"MLTOOLKIT_SLOWDOWN": "2.5"}
    )
    assert both.slowdown == 4.0  # the option wins over the environment


@pytest.mark.parametrize("text", ["0.5", "0", "-2", "abc", "nan", "inf", "1001"])
def test_a_bad_slowdown_names_the_option(model_file, text):
    with pytest.raises(SpecError) as info:
        config_from_args([*base_args(model_file), "--slowdown", text], environ={})
    assert info.value.field == "--slowdown"
    assert text in str(info.value)


def test_a_bad_slowdown_from_the_environment_names_the_variable(model_file):
    with pytest.raises(SpecError) as info:
        config_from_args(base_args(model_file), environ={"MLTOOLKIT_SLOWDOWN": "0.9"})
    assert info.value.field == "MLTOOLKIT_SLOWDOWN"
    assert "from 1 (full speed)" in str(info.value)


@pytest.mark.parametrize("value", [0.99, True, "3", None, float("nan")])
def test_server_config_rejects_bad_slowdowns(model_file, value):
    with pytest.raises(SpecError) as info:
        ServerConfig(model_path=model_file, model_name="m", slowdown=value)
    assert info.value.field == "ServerConfig.slowdown"


def test_the_server_exits_2_naming_the_option_before_binding(digits_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*base_args(digits_path), "--port", "0", "--slowdown", "0.5"], environ={})
    assert info.value.code == 2
    assert "--slowdown: 0.5 is not allowed; expected a number from 1" in capsys.readouterr().err


# -- the batcher: where the emulation happens --------------------------------------------------


class FakeClock:
    """Stands in for the ``time`` module inside batching: predict advances it, sleeps are recorded."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.anyio
@pytest.mark.parametrize("slowdown, sleeps, mean_ms", [(1.0, [], 10.0), (3.0, [0.02], 30.0)])
async def test_after_each_predict_the_batcher_stays_busy_for_factor_minus_one_times_its_duration(
    monkeypatch, slowdown, sleeps, mean_ms
):
    clock = FakeClock()
    monkeypatch.setattr(batching, "time", clock)

    def predict(rows: np.ndarray) -> np.ndarray:
        clock.now += 0.010  # this call "takes" 10 ms
        return rows[:, 0]

    batcher = Batcher(predict, BatchingSpec(enabled=False), slowdown=slowdown)
    answer = await batcher.predict(np.array([[7.0, 0.0]]))
    assert answer.tolist() == [7.0]
    assert clock.sleeps == pytest.approx(sleeps)  # (3 - 1) x 10 ms, once; nothing at full speed
    # the moving average (which decides offloading) sees the slowed call, as on a slower CPU
    assert batcher.mean_predict_ms == pytest.approx(mean_ms)


def test_the_batcher_rejects_a_speedup():
    with pytest.raises(SpecError, match="Batcher.slowdown"):
        Batcher(lambda rows: rows, slowdown=0.5)


# -- real servers under the same closed-loop load -----------------------------------------------




@pytest.mark.slow
def test_a_replica_with_slowdown_3_serves_fewer_requests_than_one_at_full_speed(
    servers, save_model
):
    # The model sleeps 20 ms per call (no CPU, so a busy machine barely matters); without
    # batching each request is one call, so full speed serves about 1 / 20 ms = 50 requests/s
    # and slowdown 3 about 1 / 60 ms = 17 requests/s: about a third as many in the same time.
    path = save_model(SleepyModel(delay_s=0.02, n_features=4), "sleepy")
    common = ["--model-path", path, "--model-name", "sleepy", "--port", "0", "--no-batching"]
    fast = servers(*common, "--replica-id", "fast")
    slow = servers(*common, "--replica-id", "slow", "--slowdown", "3")

    results: dict[str, object] = {}

    def load(name: str, url: str) -> None:
        try:  # the same closed loop on both, at the same time: 4 workers for 3 s
            results[name] = load_test(
                Endpoint(url, "sleepy"), concurrency=4, duration=3, X=np.ones((8, 4))
            )
        except BaseException as exc:  # reported on the test's thread
            results[name] = exc

    threads = [
        threading.Thread(target=load, args=(name, server.url))
        for name, server in (("fast", fast), ("slow", slow))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SAFETY_S)
    frames = {name: results[name] for name in ("fast", "slow")}
    for name, frame in frames.items():
        assert not isinstance(frame, BaseException), f"{name}: {frame!r}"
        assert (frame["status"] == 200).all(), frame[frame["status"] != 200].head()
        assert set(frame["replica"]) == {name}
    served = {name: len(frame) for name, frame in frames.items()}
    assert served["slow"] >= 1
    assert served["slow"] * 1.5 < served["fast"], served  # ~3x expected; 1.5x leaves room
