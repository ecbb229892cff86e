"""balance.py's goal lines (pure): issue 10's verdict from the summary table, and the paired view
of each trace beside it."""

from __future__ import annotations

import pandas as pd
import pytest

from balance import IDEAL, balance_goals, paired_cell, paired_p99_ratios, summarize


def runs_of(p99_by_system: dict[str, list[float]], load: float = 0.9) -> pd.DataFrame:
    """One row per system and repetition; only p99 differs between them."""
    rows = []
    for system, p99s in p99_by_system.items():
        for rep, p99 in enumerate(p99s):
            rows.append({"load": load, "system": system, "rep": rep, "p50_ms": 90.0, "p99_ms": p99,
                         "throughput_rps": 235.0, "error_rate": 0.0, "util_cv": 0.1, "served_cv": 0.1})  # fmt: skip
    return pd.DataFrame(rows)


def goals(p99_by_system: dict[str, list[float]]) -> list[str]:
    runs = runs_of(p99_by_system)
    return balance_goals(summarize(runs), runs=runs)


def test_the_goal_is_met_below_both_peers_and_within_1_2x_the_ideal():
    lines = goals({IDEAL: [500, 600, 550], "ours:ewma": [520, 640, 560],
                   "nginx:least_conn": [560, 660, 600], "haproxy:leastconn": [700, 710, 720]})  # fmt: skip
    assert lines[0].startswith("goal: ours:ewma at 90% load") and lines[0].endswith("-- met")
    assert "1.04x, 560 ms (nginx:least_conn 600 ms, haproxy:leastconn 710 ms)" in lines[0]
    # beside it, each trace's ratio: 520/560, 640/660, 560/600
    assert lines[1] == ("  paired, ours:ewma's p99 over the peer's on the same traces: "
                        "nginx:least_conn 0.93x [0.93-0.97] over 3, haproxy:leastconn 0.78x [0.74-0.90] over 3")  # fmt: skip


@pytest.mark.parametrize(
    "ideal, ours, why",
    [([500, 600, 550], [520, 640, 610], "above nginx's median p99"),
     ([400, 450, 420], [520, 640, 560], "below both peers, but 1.33x the ideal")],
)  # fmt: skip
def test_the_goal_is_not_met_above_a_peer_or_far_from_the_ideal(ideal, ours, why):
    lines = goals({IDEAL: ideal, "ours:ewma": ours,
                   "nginx:least_conn": [560, 660, 600], "haproxy:leastconn": [900, 910, 920]})  # fmt: skip
    assert lines[0].endswith("-- NOT met"), why


def test_a_peer_not_measured_means_not_met_and_each_data_plane_gets_its_line():
    lines = goals({IDEAL: [500], "ours:ewma": [400], "ours-python:ewma": [450], "nginx:least_conn": [600]})
    goal_lines = [line for line in lines if line.startswith("goal:")]
    assert [line.split(" at ")[0] for line in goal_lines] == ["goal: ours:ewma", "goal: ours-python:ewma"]
    assert all(line.endswith("-- NOT met") for line in goal_lines)


def test_paired_ratios_use_only_the_traces_both_systems_ran():
    runs = runs_of({"ours:ewma": [100, 200, 300], "nginx:least_conn": [50, 400]})
    assert paired_p99_ratios(runs, "ours:ewma", "nginx:least_conn", 0.9) == [2.0, 0.5]
    assert paired_p99_ratios(runs, "ours:ewma", "nginx:least_conn", 0.5) == []


def test_from_five_traces_the_paired_view_says_below_or_a_tie_by_its_interval():
    ideal = [500, 520, 540, 560, 580, 600]
    ours = [500, 520, 540, 560, 580, 600]
    lines = goals({IDEAL: ideal, "ours:ewma": ours,
                   "nginx:least_conn": [550, 580, 590, 620, 640, 700],   # ours 0.86-0.92x on every trace
                   "haproxy:leastconn": [450, 560, 600, 530, 640, 580]})  # ours 0.90-1.11x: some each way  # fmt: skip
    cells = lines[1].split(": ", 1)[1].split(", haproxy")
    assert cells[0] == "nginx:least_conn 0.90x [0.86-0.92] over 6, 90% interval of the median 0.86-0.92: below"
    assert cells[1].endswith("90% interval of the median 0.90-1.11: a tie within this run's noise")


def test_with_fewer_than_five_traces_the_paired_view_has_no_interval():
    lines = goals({IDEAL: [500] * 4, "ours:ewma": [500] * 4,
                   "nginx:least_conn": [600] * 4, "haproxy:leastconn": [600] * 4})  # fmt: skip
    assert "interval" not in lines[1] and lines[1].endswith("haproxy:leastconn 0.83x [0.83-0.83] over 4")


def test_the_paired_view_says_above_when_the_whole_interval_is():
    assert paired_cell("nginx:least_conn", [1.05, 1.2, 1.1, 1.3, 1.02]).endswith("1.02-1.30: above")
