"""Emulated service time: ``--service-ms MS`` (env ``MLTOOLKIT_SERVICE_MS``).

Each request holds the replica's one emulated core for MS x slowdown ms, one at a time in arrival
order, sleeping: the replica behaves like a single-core machine of that speed on any host.
"""

import asyncio

import pytest

from mltoolkit.errors import SpecError
from mltoolkit.serving import ServerConfig
from mltoolkit.serving.app import STATE
from mltoolkit.serving.config import config_from_args
from mltoolkit.serving.emulation import EmulatedCore, emulated_core


@pytest.fixture
def model_file(tmp_path) -> str:
    path = tmp_path / "m.joblib"
    path.write_bytes(b"not read by the config")
    return str(path)


def base_args(path: str) -> list[str]:
    return ["--model-path", path, "--model-name", "m"]


# -- the core ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_requests_hold_the_core_one_at_a_time_in_arrival_order():
    # Five requests arrive together at a core of 30 ms. Served one at a time, the k-th (from 1)
    # cannot finish before k x 30 ms after they arrived; served in parallel, all would finish
    # after ~30 ms. The bound is exact: it comes from the sleeps themselves, however slow the host.
    core, loop = EmulatedCore(0.03), asyncio.get_running_loop()
    start, finished = loop.time(), []

    async def request(number: int) -> None:
        await core.serve()
        finished.append((number, loop.time() - start))

    await asyncio.gather(*(request(n) for n in range(5)))
    assert [number for number, _ in finished] == [0, 1, 2, 3, 4]  # first come, first served
    for k, (_, elapsed) in enumerate(finished, start=1):
        assert elapsed >= k * 0.03 - 1e-3


def test_service_time_is_ms_times_slowdown_and_zero_turns_it_off():
    assert emulated_core(0.0, 4.0) is None
    assert emulated_core(20.0, 1.0).service_s == pytest.approx(0.020)
    assert emulated_core(20.0, 4.0).service_s == pytest.approx(0.080)


# -- configuration ---------------------------------------------------------------------------


def test_service_ms_defaults_to_off_and_comes_from_the_option_or_the_environment(model_file):
    assert config_from_args(base_args(model_file), environ={}).service_ms == 0.0
    assert config_from_args([*base_args(model_file), "--service-ms", "20"], environ={}).service_ms == 20.0
    env = {"MLTOOLKIT_SERVICE_MS": "7.5"}
    assert config_from_args(base_args(model_file), environ=env).service_ms == 7.5
    both = config_from_args([*base_args(model_file), "--service-ms", "3"], environ=env)
    assert both.service_ms == 3.0  # the option wins over the environment


@pytest.mark.parametrize("text", ["-1", "abc", "nan", "inf", "60001"])
def test_a_bad_service_ms_names_the_option(model_file, text):
    with pytest.raises(SpecError) as info:
        config_from_args([*base_args(model_file), "--service-ms", text], environ={})
    assert info.value.field == "--service-ms"
    assert text in str(info.value)


@pytest.mark.parametrize("value", [-0.5, True, "20", None, float("nan")])
def test_server_config_rejects_bad_service_times(model_file, value):
    with pytest.raises(SpecError) as info:
        ServerConfig(model_path=model_file, model_name="m", service_ms=value)
    assert info.value.field == "ServerConfig.service_ms"
    assert "milliseconds from 0 (off)" in str(info.value)


# -- a real server ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_server_with_service_time_answers_one_request_per_service_time(digits_path, serve):
    # 40 ms x slowdown 2 = 80 ms per request: four requests sent together are answered one by
    # one, the last >= 4 x 80 ms after they were sent, and every prediction is still the model's.
    config = ServerConfig(
        model_path=digits_path, model_name="digits", port=0, replica_id="a", slowdown=2.0,
        service_ms=40.0,
    )  # fmt: skip
    client = await serve(config)
    state = client.server.app[STATE]
    assert state.core is not None and state.core.service_s == pytest.approx(0.08)
    assert state.batcher.slowdown == 1.0  # the slowdown stretches the service time, not predict
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def predict() -> tuple[float, list[int], int]:
        response = await client.post("/predict", json={"instances": [[0.0] * 64]})
        body = await response.json()
        return loop.time() - start, body["predictions"], response.status

    answers = await asyncio.gather(*(predict() for _ in range(4)))
    assert all(status == 200 for _, _, status in answers)
    assert max(elapsed for elapsed, _, _ in answers) >= 4 * 0.08 - 1e-3
    assert len({tuple(p) for _, p, _ in answers}) == 1


@pytest.mark.anyio
async def test_without_service_time_there_is_no_core_and_slowdown_stretches_predict(digits_path, serve):
    config = ServerConfig(model_path=digits_path, model_name="digits", port=0, replica_id="a", slowdown=3.0)
    state = (await serve(config)).server.app[STATE]
    assert state.core is None
    assert state.batcher.slowdown == 3.0
