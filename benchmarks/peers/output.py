"""What the benchmark scripts print and save: progress lines, the machine's load, raw runs as CSV."""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

from peers.results import Results

CSV_COLUMNS = ("label", "rows", "connections", "repetition", "requests", "duration_s",
               "requests_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "status_errors",
               "socket_errors", "cpu_us_per_request")  # fmt: skip


def log(message: str) -> None:
    """A progress line on stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine_line() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores; load average {load}"


def one_line(exc: BaseException, limit: int = 400) -> str:
    """An error (with any log tail it carries) on one line, for the notes under a table."""
    text = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_runs_csv(results: Results, path: Path) -> None:
    """Every wrk run, one line each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for cell in sorted(results.runs, key=lambda c: (c.label, c.rows or 0, c.connections)):
            for repetition, r in sorted(results.runs[cell].items()):
                writer.writerow([
                    cell.label, "" if cell.rows is None else cell.rows, cell.connections,
                    repetition + 1, r.requests, f"{r.duration_s:.3f}", f"{r.requests_per_s:.1f}",
                    r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms, r.status_errors, r.socket_errors,
                    "" if r.cpu_us_per_request is None else f"{r.cpu_us_per_request:.2f}",
                ])  # fmt: skip


def save_results(results: Results, text: str, directory: Path, prefix: str) -> Path:
    """The table as ``PREFIX.txt`` and every run as ``PREFIX-runs.csv`` in ``directory``."""
    csv_path = directory / f"{prefix}-runs.csv"
    write_runs_csv(results, csv_path)
    (directory / f"{prefix}.txt").write_text(text + "\n")
    return csv_path
