"""benchmarks/peers/output.py: error notes on one line, raw runs as CSV."""

import csv
from dataclasses import replace

from peers.output import CSV_COLUMNS, one_line, save_results, write_runs_csv
from peers.results import Cell, Results


def test_an_error_with_a_log_tail_becomes_one_bounded_line():
    exc = RuntimeError("MLServer exited with 1:\n  Traceback\n\n  OSError: address in use\n")
    assert one_line(exc) == "MLServer exited with 1: | Traceback | OSError: address in use"
    assert len(one_line(RuntimeError("x" * 1000), limit=50)) == 50


def test_every_run_is_one_csv_line(tmp_path, make_result):
    results = Results()
    results.add(Cell("ours", 1, 32), 0, make_result(rps=5000))
    results.add(Cell("ours", 1, 32), 1, replace(make_result(rps=6000), cpu_us_per_request=12.345))
    results.add(Cell("no-op", None, 8), 0, make_result(rps=9000))
    path = tmp_path / "runs.csv"
    write_runs_csv(results, path)
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [(r["label"], r["rows"], r["repetition"], r["requests_per_s"], r["cpu_us_per_request"])
            for r in rows] == [
        ("no-op", "", "1", "9000.0", ""), ("ours", "1", "1", "5000.0", ""), ("ours", "1", "2", "6000.0", "12.35"),
    ]  # fmt: skip


def test_saved_results_are_the_table_and_the_runs(tmp_path, make_result):
    results = Results()
    results.add(Cell("ours", 1, 32), 0, make_result(rps=5000))
    csv_path = save_results(results, "the table", tmp_path / "results", "serving-1")
    assert csv_path == tmp_path / "results" / "serving-1-runs.csv"
    assert (tmp_path / "results" / "serving-1.txt").read_text() == "the table\n"
    assert len(list(csv.DictReader(csv_path.open()))) == 1
