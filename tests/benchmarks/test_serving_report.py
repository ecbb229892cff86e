"""benchmarks/peers/serving_report.py: the serving table and the check of the issue's goal."""

from peers.results import Cell, Results
from peers.servers import MLSERVER_TUNED, OURS_BATCHING, OURS_NOOP, SERVER_KINDS
from peers.serving_report import cells_of, goal_checks, noop_ratios, serving_table


def results_with(make_result, ours_rps, ours_p99, mlserver_rps, mlserver_p99, noop_rps):
    results = Results()
    for round_ in range(3):
        results.add(Cell(OURS_BATCHING, 1, 32), round_, make_result(rps=ours_rps[round_], p99=ours_p99))
        results.add(Cell(MLSERVER_TUNED, 1, 32), round_, make_result(rps=mlserver_rps[round_], p99=mlserver_p99))
        results.add(Cell(OURS_NOOP, None, 32), round_, make_result(rps=noop_rps[round_]))
    return results


def test_cells_cover_rows_and_connections_and_the_noop_has_no_body():
    cells = cells_of(SERVER_KINDS[:1], (8, 32), (1, 64))
    assert cells == [
        Cell(OURS_BATCHING, 1, 8), Cell(OURS_BATCHING, 1, 32),
        Cell(OURS_BATCHING, 64, 8), Cell(OURS_BATCHING, 64, 32),
        Cell(OURS_NOOP, None, 8), Cell(OURS_NOOP, None, 32),
    ]  # fmt: skip


def test_the_goal_is_met_at_three_times_mlserver_with_a_lower_p99_and_half_the_noop(make_result):
    # per round: 3300/1000, 3600/1200, 2700/900 = 3.3, 3.0, 3.0 -> median 3.0 (>= 3)
    # against the no-op: 3300/6000, 3600/7000, 2700/5000 = 0.55, 0.51, 0.54 -> 0.54 (>= 0.5)
    results = results_with(make_result, [3300, 3600, 2700], 20.0, [1000, 1200, 900], 60.0,
                           [6000, 7000, 5000])  # fmt: skip
    throughput, p99, share = goal_checks(results)
    assert (throughput.met, p99.met, share.met) == (True, True, True)
    assert throughput.value == "3.00 [3.00-3.30]x" and share.value == "0.54 [0.51-0.55]"
    assert throughput.format() == (
        "throughput, mltoolkit batching / MLServer tuned: 3.00 [3.00-3.30]x (goal >= 3x): met"
    )


def test_each_part_of_the_goal_can_fail_on_its_own(make_result):
    slow = results_with(make_result, [2900, 2900, 2900], 20.0, [1000] * 3, 60.0, [5000] * 3)
    assert [c.met for c in goal_checks(slow)] == [False, True, True]
    tail = results_with(make_result, [5000] * 3, 61.0, [1000] * 3, 60.0, [6000] * 3)
    assert [c.met for c in goal_checks(tail)] == [True, False, True]
    stack = results_with(make_result, [5000] * 3, 20.0, [1000] * 3, 60.0, [10001] * 3)
    assert [c.met for c in goal_checks(stack)] == [True, True, False]


def test_a_peer_that_did_not_run_leaves_the_goal_unmeasured_not_failed(make_result):
    results = Results()
    results.add(Cell(OURS_BATCHING, 1, 32), 0, make_result(rps=5000))
    checks = goal_checks(results)
    assert [c.met for c in checks] == [None, None, None]
    assert checks[0].format().endswith("not measured")


def test_the_table_gives_medians_spreads_and_ratios_to_mlserver_tuned(make_result):
    results = results_with(make_result, [3300, 3600, 2700], 20.0, [1000, 1200, 900], 60.0,
                           [6000, 7000, 5000])  # fmt: skip
    results.note("BentoML", "not run: no wheel")
    table = serving_table(results, [Cell(OURS_BATCHING, 1, 32), Cell(OURS_NOOP, None, 32),
                                    Cell("BentoML", 1, 32)])  # fmt: skip
    ours, noop, bento = table.splitlines()[2:]
    assert ours.split()[-9:] == ["3300", "[2700-3600]", "1.0", "[1.0-1.0]", "20.0", "[20.0-20.0]",
                                 "0", "3.00", "[3.00-3.30]"]  # fmt: skip
    assert noop.split()[-1] == "-"  # no ratio for the no-op: MLServer has no such row
    assert "not measured" in bento
    assert noop_ratios(results, [32]) == [
        "mltoolkit batching (1 row) / no-op at 32 connections: 0.54 [0.51-0.55]"
    ]
