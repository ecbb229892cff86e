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


def test_fleet_pairs_default_to_four_and_are_bounded(capsys):
    assert balancer.parse_args([]).fleet_pairs == 4
    assert balancer.parse_args(["--quick"]).fleet_pairs == 1
    assert balancer.parse_args(["--fleet-pairs", "0"]).fleet_pairs == 0
    assert balancer.parse_args(["--duration", "1"]).fleet_slice_s == 1  # never longer than a run
    with pytest.raises(SystemExit):
        balancer.parse_args(["--fleet-pairs", "51"])
    assert "--fleet-pairs must be from 0 to 50; got 51" in capsys.readouterr().err


def test_each_system_adds_short_runs_right_after_direct_fleet_runs_to_the_timeline(monkeypatch, make_result):
    """The order the fleet goal pairs by: fleet, the system's own run, then (fleet, system) x
    fleet_pairs at the short length while it still runs, then the round's closing fleet run."""
    from peers.balancer_report import FleetTimeline
    from peers.proxies import DIRECT_FLEET, OURS
    from peers.results import Cell, Results

    calls = []
    monkeypatch.setattr(balancer, "measure_fleet", lambda urls, settings, body: (
        calls.append(("fleet", settings.duration_s)) or make_result(rps=10000)))
    monkeypatch.setattr(balancer, "run_wrk", lambda url, conns, duration, **kw: (
        calls.append((url, conns, duration)) or make_result(rps=9000)))

    def run_system(system, repetition, replicas, settings, rundir, body, results, then=None):
        calls.append(("measured", system.label))
        results.add(Cell(system.label, 1, 64), repetition, make_result(rps=9500))
        then("http://127.0.0.1:1/predict")

    monkeypatch.setattr(balancer, "run_system", run_system)
    settings = balancer.phase_settings(balancer.parse_args(["--duration", "5", "--fleet-pairs", "2"]), "model")
    timeline, results = FleetTimeline(), Results()
    balancer.run_round([OURS], 0, {"r0": "http://127.0.0.1:2"}, settings, None, None, results, timeline)
    assert calls == [("fleet", 5), ("measured", OURS.label),
                     ("fleet", 2), ("http://127.0.0.1:1/predict", 64, 2),
                     ("fleet", 2), ("http://127.0.0.1:1/predict", 64, 2), ("fleet", 5)]  # fmt: skip
    assert [label for label, _, _ in timeline.runs] == [DIRECT_FLEET.label, OURS.label] + [
        DIRECT_FLEET.label, OURS.label] * 2 + [DIRECT_FLEET.label]
    assert timeline.ratios(OURS.label) == [0.95, 0.9, 0.9]
