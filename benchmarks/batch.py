"""Batch prediction through the fleet (issue 14): predict_batch against in-process predict and Ray.

    .venv/bin/python benchmarks/batch.py            # 1M rows, 2 repetitions (several minutes)
    .venv/bin/python benchmarks/batch.py --quick    # 100k rows, 1 repetition: a smoke test
    .venv/bin/python benchmarks/batch.py --only memory,kill   # some sections only

All in one run, on this machine:

1. Compute-bound: RandomForest (100 trees) on 64-feature rows. rows/s of in-process
   ``model.predict`` (one process), of ``run_batch`` across 2 local replicas (binary tensors,
   through the balancer), and of Ray Data ``map_batches`` with an actor pool of 2 (Ray in its own
   virtualenv, benchmarks/.venvs/ray; its start-up reported apart). Predictions are checked equal.
2. Data-bound: LogisticRegression. rows/s and MB/s moved (request + answer bodies) with binary
   tensors and with JSON, against in-process predict and the machine's loopback TCP copy rate.
3. A replica killed (SIGKILL) at ~30 % of a run (balancer retries off, so the client's retries do
   the work): every row exactly once in the output, equal to in-process predictions; retries
   counted.
4. Memory: a child process scores a Parquet file 4x larger (as float64 in memory) than the memory
   it is allowed: a sampler thread aborts it (exit 3) the moment its resident set (RSS, all of
   it: interpreter, libraries and data) passes the limit, as a container's memory limit would.

Ratios are paired by repetition (measured in the same round) and shown as median [min-max].
The table goes to stdout and to benchmarks/results/batch.txt; goal lines say met / NOT met.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))
sys.path.insert(0, str(BENCHMARKS.parent))

from peers.output import log, machine_line, one_line  # noqa: E402
from peers.stats import Spread, paired_ratios, render_table  # noqa: E402
from peers.venvs import PeerUnavailable, ensure_venv  # noqa: E402

RESULTS = BENCHMARKS / "results"
FEATURES = 64
MB = 1e6
SECTIONS = ("compute", "kill", "data", "memory")


@dataclass
class Report:
    rows: list[list[str]] = field(default_factory=list)
    goals: list[tuple[str, bool | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def goal(self, text: str, met: bool | None) -> None:
        self.goals.append((text, met))

    def render(self) -> str:
        lines = [machine_line(), ""]
        lines.append(render_table(["measurement", "value", "ratio"], self.rows))
        lines.append("")
        for text, met in self.goals:
            state = "NOT measured" if met is None else ("met" if met else "NOT met")
            lines.append(f"goal: {text}: {state}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def rate(values: list[float]) -> str:
    return Spread.of(values).format(0)


def ratio(mine: list[float], base: list[float]) -> Spread:
    return Spread.of(paired_ratios(mine, base))


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - started, value


def start_fleet(model, name: str, retries: int = 1):
    from mltoolkit.local import LocalTarget
    from mltoolkit.spec import BalancerSpec, DeploymentSpec, ModelSpec

    target = LocalTarget(nodes=2, progress=False)
    target.up(
        DeploymentSpec(
            model=ModelSpec.from_object(model, name=name),
            replicas=2,
            balancer=BalancerSpec(policy="least_request", retries=retries),
        )
    )
    return target


# ----------------------------------------------------------------------------- 1. compute-bound


def ray_run(model_path: Path, rows_path: Path, workdir: Path, report: Report) -> tuple[float, float, np.ndarray] | None:
    """(startup_s, elapsed_s, predictions) from Ray Data in its own venv, or None (noted)."""
    try:
        venv = ensure_venv("ray", log=log)
    except PeerUnavailable as exc:
        report.notes.append(f"Ray could not be installed here: {one_line(exc)}")
        return None
    out = workdir / "ray-predictions.npy"
    command = [
        str(venv / "bin" / "python"), str(BENCHMARKS / "peers" / "ray_batch.py"),
        str(model_path), str(rows_path), str(out), "--workers", "2",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)
    if done.returncode != 0:
        report.notes.append(f"Ray run failed (exit {done.returncode}): {one_line(RuntimeError(done.stderr[-600:]))}")
        return None
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["startup_s"], answer["elapsed_s"], np.load(out)


def compute_bound(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    log(f"compute-bound: RandomForest(100 trees) on {FEATURES} features, {args.rows:,} rows")
    X_train, y_train = make_classification(
        n_samples=args.train_rows, n_features=FEATURES, n_informative=16, random_state=0
    )
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X_train, y_train)
    rows = np.random.default_rng(1).normal(size=(args.rows, FEATURES))
    model_path, rows_path = workdir / "forest.joblib", workdir / "rows.npy"
    joblib.dump(model, model_path)
    np.save(rows_path, rows)

    in_process, fleet_rates, ray_rates, ray_startups = [], [], [], []
    expected = None
    equal_fleet, equal_ray = True, True
    target = start_fleet(model, "forest", retries=0)
    try:
        for repetition in range(args.repetitions if "compute" in args.only else 0):
            log(f"  round {repetition + 1}: in-process predict")
            seconds, expected = timed(model.predict, rows)
            in_process.append(args.rows / seconds)
            log("  2 replicas: run_batch")
            run = target.run_batch(rows, progress=False)
            fleet_rates.append(run.rows_per_s)
            equal_fleet &= bool((run.predictions.to_numpy() == expected).all())
            if not args.no_ray:
                log("  Ray Data map_batches, 2 workers")
                got = ray_run(model_path, rows_path, workdir, report)
                if got is not None:
                    startup, elapsed, predictions = got
                    ray_startups.append(startup)
                    ray_rates.append(args.rows / elapsed)
                    equal_ray &= bool((predictions == expected).all())
        killed = Report()  # its lines go after the compute lines
        if "kill" in args.only:
            kill_mid_run(target, model, rows[: args.kill_rows], killed)
    finally:
        target.down()
    if "compute" in args.only:
        compute_lines(report, in_process, fleet_rates, ray_rates, ray_startups, equal_fleet, equal_ray)
    report.rows += killed.rows
    report.goals += killed.goals
    report.notes += killed.notes


def compute_lines(
    report: Report,
    in_process: list[float],
    fleet_rates: list[float],
    ray_rates: list[float],
    ray_startups: list[float],
    equal_fleet: bool,
    equal_ray: bool,
) -> None:
    fleet_ratio = ratio(fleet_rates, in_process)
    report.rows += [
        ["compute: in-process model.predict rows/s", rate(in_process), "1.00"],
        ["compute: 2 replicas run_batch rows/s", rate(fleet_rates), fleet_ratio.format(2)],
    ]
    report.goal(f"2 replicas >= 1.3x in-process predict rows/s (median {fleet_ratio.median:.2f}x)", fleet_ratio.median >= 1.3)
    report.goal("2 replicas' predictions equal in-process predictions", equal_fleet)
    if ray_rates:
        ray_ratio = ratio(ray_rates, in_process)
        vs_ray = ratio(fleet_rates, ray_rates)
        report.rows += [
            ["compute: Ray Data map_batches (2 actors) rows/s", rate(ray_rates), ray_ratio.format(2)],
            ["compute: Ray start-up (ray.init) s, apart", Spread.of(ray_startups).format(1), ""],
            ["compute: 2 replicas / Ray rows/s", "", vs_ray.format(2)],
        ]
        report.goal(f"2 replicas beat Ray Data map_batches with 2 workers (median {vs_ray.median:.2f}x)", vs_ray.median > 1.0)
        report.goal("Ray's predictions equal in-process predictions", equal_ray)
    else:
        report.rows.append(["compute: Ray Data map_batches (2 actors) rows/s", "NOT measured", ""])
        report.goal("2 replicas beat Ray Data map_batches with 2 workers", None)


# ----------------------------------------------------------------------------- 3. kill mid-run


def kill_mid_run(target, model, rows: np.ndarray, report: Report) -> None:
    log(f"kill a replica at ~30% of a {len(rows):,}-row run")
    expected = model.predict(rows)
    killed: list[int] = []

    def kill_at_30_percent(progress) -> None:
        if not killed and progress.fraction >= 0.3:
            killed.append(target.kill_replica("forest-0"))

    run = target.run_batch(rows, progress=kill_at_30_percent, chunk_rows=max(1, len(rows) // 200))
    ok = run.attempts[run.attempts["ok"]]
    starts = sorted(ok["start"])
    once = starts == list(range(0, len(rows), run.chunk_rows))
    equal = bool((run.predictions.to_numpy() == expected).all())
    report.rows.append(
        ["kill: rows scored / retries counted", f"{int(ok['rows'].sum()):,} / {run.retries}", ""]
    )
    report.goal(
        f"replica killed mid-run: every row exactly once, equal to in-process ({run.retries} retries counted)",
        bool(killed) and once and equal and len(ok) == len(set(starts)) and run.retries >= 1,
    )


# ----------------------------------------------------------------------------- 2. data-bound


def loopback_copy_mb_s(total_bytes: int = 512 * 2**20, block: int = 2**20) -> float:
    """Bytes through one loopback TCP connection (send, receive and drop), MB/s."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def sink() -> None:
        connection, _ = server.accept()
        with connection:
            while connection.recv(4 * block):
                pass

    thread = threading.Thread(target=sink, daemon=True)
    thread.start()
    payload = b"x" * block
    with socket.create_connection(("127.0.0.1", port)) as client:
        started = time.perf_counter()
        for _ in range(total_bytes // block):
            client.sendall(payload)
        client.shutdown(socket.SHUT_WR)
        thread.join()
        seconds = time.perf_counter() - started
    server.close()
    return total_bytes / seconds / MB


def data_bound(args: argparse.Namespace, report: Report, workdir: Path) -> None:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    log(f"data-bound: LogisticRegression on {FEATURES} features, {args.rows:,} rows")
    X_train, y_train = make_classification(n_samples=10_000, n_features=FEATURES, random_state=0)
    model = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    rows = np.random.default_rng(2).normal(size=(args.rows, FEATURES))
    in_process, binary_rates, json_rates, binary_mb, json_mb, loopback = [], [], [], [], [], []
    equal = True
    target = start_fleet(model, "logistic")
    try:
        for repetition in range(args.repetitions if "data" in args.only else 0):
            log(f"  round {repetition + 1}")
            seconds, expected = timed(model.predict, rows)
            in_process.append(args.rows / seconds)
            for encoding, rates, mbs in (("binary", binary_rates, binary_mb), ("json", json_rates, json_mb)):
                run = target.run_batch(rows, progress=False, encoding=encoding)
                rates.append(run.rows_per_s)
                moved = run.attempts["request_bytes"].sum() + run.attempts["response_bytes"].sum()
                mbs.append(moved / run.elapsed_s / MB)
                equal &= bool((run.predictions.to_numpy() == expected).all())
            loopback.append(loopback_copy_mb_s())
        memory = Report()  # its lines go after the data lines
        if "memory" in args.only:
            memory_bound(args, target, model, workdir, memory)
    finally:
        target.down()
    if "data" in args.only:
        data_lines(report, in_process, binary_rates, json_rates, binary_mb, json_mb, loopback, equal)
    report.rows += memory.rows
    report.goals += memory.goals
    report.notes += memory.notes


def data_lines(
    report: Report,
    in_process: list[float],
    binary_rates: list[float],
    json_rates: list[float],
    binary_mb: list[float],
    json_mb: list[float],
    loopback: list[float],
    equal: bool,
) -> None:
    factor = ratio(binary_rates, json_rates)
    report.rows += [
        ["data: in-process model.predict rows/s", rate(in_process), "1.00"],
        ["data: 2 replicas binary rows/s", rate(binary_rates), ratio(binary_rates, in_process).format(2)],
        ["data: 2 replicas JSON rows/s", rate(json_rates), ratio(json_rates, in_process).format(2)],
        ["data: binary MB/s moved (vs loopback copy)", rate(binary_mb), ratio(binary_mb, loopback).format(3)],
        ["data: JSON MB/s moved (vs loopback copy)", rate(json_mb), ratio(json_mb, loopback).format(3)],
        ["data: loopback TCP copy MB/s", rate(loopback), "1.00"],
        ["data: binary / JSON rows/s", "", factor.format(2)],
    ]
    report.goal(f"binary path beats JSON (median {factor.median:.2f}x rows/s)", factor.median > 1.0)
    report.goal("data-bound predictions equal in-process (binary and JSON)", equal)


# ----------------------------------------------------------------------------- 4. memory


def write_parquet(path: Path, total_rows: int, group_rows: int = 16384) -> None:
    """Random rows written one row group at a time (this process never holds them all)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    names = [f"f{i}" for i in range(FEATURES)]
    writer = None
    try:
        for start in range(0, total_rows, group_rows):
            block = rng.normal(size=(min(group_rows, total_rows - start), FEATURES))
            table = pa.Table.from_arrays([pa.array(block[:, i]) for i in range(FEATURES)], names=names)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def memory_bound(args: argparse.Namespace, target, model, workdir: Path, report: Report) -> None:
    import pyarrow.parquet as pq

    limit = args.memory_limit_mb * 2**20
    total_rows = 4 * limit // (FEATURES * 8)
    source, output = workdir / "big.parquet", workdir / "big-predictions"
    log(f"memory: {total_rows:,} rows ({4 * args.memory_limit_mb} MiB as float64) under a {args.memory_limit_mb} MiB RSS limit")
    write_parquet(source, total_rows)
    command = [
        sys.executable, __file__, "--memory-child", "--url", target.endpoint.url,
        "--model-name", target.endpoint.model_name, "--source", str(source),
        "--output", str(output), "--memory-limit-mb", str(args.memory_limit_mb),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        report.rows.append(["memory: Parquet 4x the limit", f"failed (exit {done.returncode})", ""])
        report.notes.append(f"memory child: {one_line(RuntimeError(done.stdout[-300:] + done.stderr[-500:]))}")
        report.goal(f"Parquet input 4x larger ({4 * args.memory_limit_mb} MiB) than the memory limit completes", False)
        return
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    import pandas as pd

    scored = pd.read_parquet(output)
    expected = np.concatenate(
        [model.predict(b.to_pandas().to_numpy()) for b in pq.ParquetFile(source).iter_batches(65536)]
    )
    correct = scored["row"].tolist() == list(range(total_rows)) and bool((scored["prediction"].to_numpy() == expected).all())
    report.rows.append(
        [
            "memory: peak RSS / limit MiB (RSS at start)",
            f"{answer['peak_mb']:.0f} / {args.memory_limit_mb} ({answer['start_mb']:.0f})",
            f"{answer['rows_per_s']:,.0f} rows/s",
        ]
    )
    report.goal(
        f"Parquet input 4x larger ({4 * args.memory_limit_mb} MiB) than the memory limit completes, every row once",
        correct and answer["peak_mb"] <= args.memory_limit_mb,
    )


def memory_child(args: argparse.Namespace) -> int:
    """Score ``--source`` into ``--output`` while a sampler watches RSS; exit 3 over the limit."""
    import psutil

    import mltoolkit.batch  # noqa: F401 - imported before the baseline, like pyarrow
    import pyarrow.parquet  # noqa: F401
    from mltoolkit.endpoint import Endpoint

    process = psutil.Process()
    start = process.memory_info().rss
    limit = args.memory_limit_mb * 2**20
    peak = [start]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            rss = process.memory_info().rss
            peak[0] = max(peak[0], rss)
            if rss > limit:
                print(f"RSS {rss / 2**20:.0f} MiB is over the limit of {args.memory_limit_mb} MiB", flush=True)
                os._exit(3)

    threading.Thread(target=sample, daemon=True).start()
    endpoint = Endpoint(args.url, args.model_name)
    # 1 MiB requests: what a memory-bounded run would choose (memory holds ~6 chunks in flight)
    run = endpoint.run_batch(args.source, output=args.output, progress=False, max_request_bytes=2**20)
    stop.set()
    print(json.dumps({"peak_mb": peak[0] / 2**20, "start_mb": start / 2**20, "rows_per_s": run.rows_per_s, "rows": run.rows_scored}))
    return 0


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k rows, 1 repetition")
    parser.add_argument("--rows", type=int, default=None, help="rows per run (default 1,000,000; --quick 100,000)")
    parser.add_argument("--repetitions", type=int, default=None, help="rounds (default 2; --quick 1)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray Data peer")
    parser.add_argument("--memory-limit-mb", type=int, default=None, help="RSS limit of the scoring process (default 384; --quick 320)")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})"
    )
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--model-name", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows is None:
        args.rows = 100_000 if args.quick else 1_000_000
    if args.repetitions is None:
        args.repetitions = 1 if args.quick else 2
    if args.memory_limit_mb is None:
        args.memory_limit_mb = 320 if args.quick else 384
    args.only = set(args.only.split(","))
    unknown = args.only - set(SECTIONS)
    if unknown:
        parser.error(f"--only: unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    args.train_rows = 5_000 if args.quick else 10_000
    args.kill_rows = min(args.rows, 200_000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        return memory_child(args)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="mltoolkit-batch-bench-") as tmp:
        workdir = Path(tmp)
        if args.only & {"compute", "kill"}:
            compute_bound(args, workdir, report)
        if args.only & {"data", "memory"}:
            data_bound(args, report, workdir)
    text = report.render()
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "batch.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
