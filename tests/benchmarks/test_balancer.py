"""benchmarks/balancer.py: its options (nothing started)."""

import pytest

from .conftest import load_script

balancer = load_script("balancer")


def test_defaults_measure_added_latency_at_one_connection_and_throughput_at_64():
    settings = balancer.parse_args([])
    assert settings.connections == (1, 64) and settings.repetitions == 3
    assert (settings.upstream, settings.replicas) == ("both", None)  # static, then model servers
    assert (settings.balancer_cpu, settings.load_cpu) == (1, 0)
    assert balancer.phase_settings(settings, "static").replicas == 4
    assert balancer.phase_settings(settings, "model").replicas == 2
    assert balancer.phase_settings(balancer.parse_args(["--replicas", "3"]), "model").replicas == 3
    assert balancer.parse_args(["--quick"]).duration_s == 2
    # wrk beside the trivial upstream, but beside the balancer in front of model servers (which
    # then have core 0 to themselves); --wrk-on sets both phases
    assert balancer.phase_settings(settings, "static").client_cpu == 0
    assert balancer.phase_settings(settings, "model").client_cpu == 1
    on_replicas = balancer.parse_args(["--wrk-on", "replicas"])
    assert balancer.phase_settings(on_replicas, "model").client_cpu == 0


@pytest.mark.parametrize("argv, message", [
    (["--replicas", "0"], "--replicas must be from 1 to 16; got 0"),
    (["--upstream", "triton"], "invalid choice: 'triton'"),
    (["--only", "traefik"], "matches no balancer"),
])  # fmt: skip
def test_bad_options_stop_before_anything_starts(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        balancer.parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
