"""Model-server throughput and latency: mltoolkit against MLServer, BentoML and FastAPI + uvicorn.

    .venv/bin/python benchmarks/serving.py            # 3 rounds of 20 s per cell (~30 min)
    .venv/bin/python benchmarks/serving.py --quick    # 1 round of 2 s: a smoke test (~3 min)
    .venv/bin/python benchmarks/serving.py --repetitions 3 --duration 10 --only mltoolkit mlserver

Each server runs alone, pinned to core 1 (``taskset``), with wrk pinned to core 0; the same model
file (a LogisticRegression on scikit-learn's digits) for all. Peers run from their own virtualenvs
under benchmarks/.venvs/, built on first use from benchmarks/peers/requirements-*.txt. Per round,
each server in turn (alternating order between rounds): start, check that its answers equal the
in-process predictions on the whole digits set, warm up, then wrk at 8 and 32 connections with
1-row and 64-row bodies, then stop. Our batching server also answers ``GET /v2/health/live``: the
same HTTP stack with no model, the ceiling the issue compares against. The table gives medians
over rounds with [min-max]; ratios are paired by round. Raw runs go to
benchmarks/results/serving-*-runs.csv. Every server started is stopped, on Ctrl-C or error too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peers.processes import (  # noqa: E402
    ServerFailed,
    ServerProcess,
    free_ports,
    http_request,
    pinned,
    post_json,
    raise_keyboard_interrupt_on_sigterm,
)
from peers.output import log, machine_line, one_line, save_results  # noqa: E402
from peers.results import Cell, Results  # noqa: E402
from peers.servers import (  # noqa: E402
    NOOP,
    PORTS_NEEDED,
    ServerKind,
    main_python_bin,
    predictions_of,
    request_body,
    select_kinds,
)
from peers.serving_report import cells_of, goal_checks, noop_ratios, serving_table  # noqa: E402
from peers.venvs import PeerUnavailable, ensure_venv  # noqa: E402
from peers.wrk import WrkError, run_wrk  # noqa: E402

RESULTS_DIR = HERE / "results"


@dataclass(frozen=True)
class Settings:
    repetitions: int = 3
    duration_s: int = 20
    warmup_s: int = 5
    connections: tuple[int, ...] = (8, 32)
    batch_rows: tuple[int, ...] = (1, 64)
    server_cpu: int = 1
    load_cpu: int = 0
    only: tuple[str, ...] = ()


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 round of 2 s per cell after a 1 s warm-up: a smoke test")
    parser.add_argument("--repetitions", type=int, help="rounds (default 3)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 20)")
    parser.add_argument("--warmup", type=int, help="seconds of discarded load per start (default 5)")
    parser.add_argument("--only", nargs="+", default=[],
                        help="servers whose name contains any of these words (e.g. mltoolkit mlserver)")
    args = parser.parse_args(argv)  # fmt: skip
    base = Settings(repetitions=1, duration_s=2, warmup_s=1) if args.quick else Settings()
    settings = Settings(
        repetitions=base.repetitions if args.repetitions is None else args.repetitions,
        duration_s=base.duration_s if args.duration is None else args.duration,
        warmup_s=base.warmup_s if args.warmup is None else args.warmup,
        only=tuple(args.only),
    )
    for name, value, low in (("--repetitions", settings.repetitions, 1),
                             ("--duration", settings.duration_s, 1),
                             ("--warmup", settings.warmup_s, 0)):  # fmt: skip
        if value < low:
            parser.error(f"{name} must be at least {low}; got {value}")
    try:
        select_kinds(settings.only)
    except ValueError as exc:
        parser.error(str(exc))
    return settings


class Workbench:
    """The run's directory: the model file, the request bodies and the expected answers."""

    def __init__(self, rundir: Path, batch_rows: Sequence[int]) -> None:
        import joblib
        from mltoolkit.quickstart import train_digits

        model, X, _ = train_digits()
        self.rundir = rundir
        self.model_path = rundir / "digits.joblib"
        joblib.dump(model, self.model_path)
        self.X = X
        self.expected = model.predict(X)
        self.bodies: dict[tuple[str, int], Path] = {}
        for protocol in ("predict", "v2"):
            for rows in batch_rows:
                path = rundir / f"{protocol}-{rows}.json"
                path.write_text(json.dumps(request_body(protocol, X[:rows])))
                self.bodies[(protocol, rows)] = path

    def check_answers(self, url: str, protocol: str) -> None:
        """The server's predictions equal the in-process ones: the benchmark bodies first, then
        every row of the digits set in 64-row requests, then each of the first 16 rows alone."""
        for (body_protocol, rows), path in self.bodies.items():
            if body_protocol == protocol:
                got = predictions_of(protocol, post_json(url, json.loads(path.read_text())))
                _compare(got, self.expected[:rows], f"the {rows}-row benchmark body")
        for start in range(0, len(self.X), 64):
            rows = self.X[start : start + 64]
            got = predictions_of(protocol, post_json(url, request_body(protocol, rows)))
            _compare(got, self.expected[start : start + 64], f"rows {start}-{start + len(rows) - 1}")
        for i in range(16):
            got = predictions_of(protocol, post_json(url, request_body(protocol, self.X[i : i + 1])))
            _compare(got, self.expected[i : i + 1], f"row {i} alone")


def _compare(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    if got.shape != expected.shape or not np.array_equal(got, expected):  # 3.0 == 3, 3.7 != 3
        raise ServerFailed(f"wrong answers for {what}: got {got[:8].tolist()}..., "
                           f"expected {expected[:8].tolist()}...")


def server_log(rundir: Path, kind: ServerKind) -> Path:
    return rundir / f"{kind.name.replace(' ', '_').replace(',', '')}.log"


def python_bin_for(kind: ServerKind, venvs: dict[str, Path]) -> Path:
    return main_python_bin() if kind.peer is None else venvs[kind.peer] / "bin"


def run_server_round(kind: ServerKind, repetition: int, bench: Workbench, settings: Settings,
                     venvs: dict[str, Path], results: Results) -> None:
    """Start ``kind``, check it, measure all its cells once, stop it (always)."""
    launch = kind.launch(
        free_ports(PORTS_NEEDED), bench.model_path, bench.rundir, python_bin_for(kind, venvs)
    )
    log_path = server_log(bench.rundir, kind)
    log(f"round {repetition + 1}: starting {kind.name}")
    with ServerProcess(kind.name, pinned(launch.command, settings.server_cpu), log_path,
                       cwd=launch.cwd, env=launch.env) as server:  # fmt: skip
        server.wait_ready(launch.base_url + launch.ready_path)
        for row in kind.rows:
            url = launch.base_url + row.path
            if row.protocol == NOOP:
                status = http_request(url).status
                if status != 200:
                    raise ServerFailed(f"GET {row.path} answered {status}")
            else:
                bench.check_answers(url, row.protocol)
        first = kind.rows[0]
        if settings.warmup_s > 0:
            run_wrk(launch.base_url + first.path, max(settings.connections), settings.warmup_s,
                    body_file=bench.bodies.get((first.protocol, min(settings.batch_rows))),
                    cpu=settings.load_cpu)  # fmt: skip
        for row in kind.rows:
            for rows in (None,) if row.protocol == NOOP else settings.batch_rows:
                for conns in settings.connections:
                    body = None if rows is None else bench.bodies[(row.protocol, rows)]
                    result = run_wrk(launch.base_url + row.path, conns, settings.duration_s,
                                     body_file=body, cpu=settings.load_cpu)  # fmt: skip
                    results.add(Cell(row.label, rows, conns), repetition, result)
                    log(f"  {row.label}, {rows or '-'} rows, {conns} conns: "
                        f"{result.requests_per_s:.0f} req/s, p50 {result.p50_ms:.1f} ms, "
                        f"p99 {result.p99_ms:.1f} ms, errors {result.errors}")
        if server.process is not None and server.process.poll() is not None:
            raise ServerFailed(f"{kind.name} exited during the measurements:\n{server.log_tail()}")


def report(results: Results, kinds: Sequence[ServerKind], settings: Settings, started: str,
           finished: str) -> str:
    cells = cells_of(kinds, settings.connections, settings.batch_rows)
    lines = [
        f"Serving benchmark: {settings.repetitions} round(s) of {settings.duration_s} s per cell "
        f"after a {settings.warmup_s} s warm-up; server on core {settings.server_cpu}, wrk "
        f"(1 thread) on core {settings.load_cpu}; digits LogisticRegression",
        f"machine at start: {started}; at end: {finished}",
        "req/s, p50 and p99 (wrk, closed loop): median [min-max] over rounds; "
        "'x MLServer tuned': req/s ratio paired by round",
        "",
        serving_table(results, cells),
        "",
        *noop_ratios(results, settings.connections),
        "Goal (1-row requests, 32 connections, one core):",
        *(f"  {check.format()}" for check in goal_checks(results)),
    ]
    if results.notes:
        lines += ["", "Notes:"]
        for label, messages in results.notes.items():
            lines += [f"  {label}: {message}" for message in messages]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"needs {' and '.join(missing)} (apt-get install -y wrk util-linux)")
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs at least 2 cores: one for the server, one for wrk")
    raise_keyboard_interrupt_on_sigterm()
    kinds = select_kinds(settings.only)
    results = Results()
    started = machine_line()
    log(f"machine: {started}")
    venvs: dict[str, Path] = {}
    for peer in sorted({k.peer for k in kinds if k.peer is not None}):
        try:
            venvs[peer] = ensure_venv(peer, log=log)
        except PeerUnavailable as exc:
            for kind in kinds:
                if kind.peer == peer:
                    for row in kind.rows:
                        results.note(row.label, f"not run: {exc}")
    runnable = [k for k in kinds if k.peer is None or k.peer in venvs]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp:
        bench = Workbench(Path(tmp), settings.batch_rows)
        try:
            for repetition in range(settings.repetitions):
                order = runnable if repetition % 2 == 0 else list(reversed(runnable))
                for kind in order:
                    try:
                        run_server_round(kind, repetition, bench, settings, venvs, results)
                    except (ServerFailed, WrkError, subprocess.SubprocessError) as exc:
                        log(f"{kind.name} failed: {exc}")
                        kept = RESULTS_DIR / f"serving-{stamp}-{server_log(bench.rundir, kind).name}"
                        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
                        if server_log(bench.rundir, kind).exists():
                            shutil.copy(server_log(bench.rundir, kind), kept)
                        for row in kind.rows:
                            results.note(row.label, f"round {repetition + 1} (log {kept.name}): "
                                                    f"{one_line(exc)}")
        except KeyboardInterrupt:
            interrupted = True
            log("interrupted: every server started has been stopped; partial results follow")
    text = report(results, kinds, settings, started, machine_line())
    print(text)
    if results.runs:
        csv_path = save_results(results, text, RESULTS_DIR, f"serving-{stamp}")
        log(f"raw runs: {csv_path}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
