"""How accurate is ``load_test``? Against a minimal precise reference generator, same endpoint.

    .venv/bin/python benchmarks/loadgen.py                 # 5 rounds of 5 s per rate (~3 min)
    .venv/bin/python benchmarks/loadgen.py --quick         # 1 round of 2 s (~30 s)
    .venv/bin/python benchmarks/loadgen.py --repetitions 3 --duration 10 --rates 100 1000

One model server (``python -m mltoolkit.serving``, the digits LogisticRegression, 1-row
``/predict`` bodies) pinned to core 1; the generators pinned to core 0 (``taskset``), one at a
time, alternating which goes first in each round. Both are open loop with a constant rate and
measure latency from each request's *scheduled* time:

* ``load_test``: mltoolkit's own, in this process, as a user calls it.
* ``reference``: this file run with ``--reference`` in a process of its own: a few threads,
  each with one blocking keep-alive socket and a share of the schedule, sleeping with
  ``clock_nanosleep`` until each send (no event loop, no HTTP library: a request is one
  ``sendall``, an answer is read by its Content-Length).
* ``wrk -c1`` (closed loop, one connection) for context: the server's own latency floor.

wrk2 is not packaged in Debian (``apt-cache search wrk2`` finds nothing); ``hey`` is, but it
rate-limits per worker and times from the actual send, so it cannot measure from a schedule.

Printed: per rate, medians over rounds [min-max] of p50 and p99 for each generator, the
differences load_test - reference (paired by round), each generator's send lag, and whether
the issue's goals are met: p50 within 0.3 ms and p99 within 1 ms of the reference at 100 and
1,000 requests/s. Raw runs go to benchmarks/results/loadgen-*.csv.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

P50_GOAL_MS = 0.3
P99_GOAL_MS = 1.0


# ----------------------------------------------------------------------------- reference


def reference_run(url: str, body: bytes, rate: float, duration: float, connections: int) -> dict:
    """Open loop at ``rate`` for ``duration`` s over ``connections`` blocking sockets; latency
    and send lag (in seconds) per request, from the scheduled times."""
    parts = urlsplit(url)
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.hostname}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    count = int(rate * duration)
    latencies = np.full(count, np.nan)
    lags = np.full(count, np.nan)
    start = time.monotonic() + 0.2

    def worker(first: int) -> None:
        sock = socket.create_connection((parts.hostname, parts.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        try:
            for index in range(first, count, connections):
                scheduled = start + index / rate
                delay = scheduled - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # clock_nanosleep: tens of microseconds late at most
                lags[index] = time.monotonic() - scheduled
                sock.sendall(request)
                while b"\r\n\r\n" not in buffer:
                    buffer += sock.recv(65536)
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                while len(buffer) < length:
                    buffer += sock.recv(65536)
                buffer = buffer[length:]
                latencies[index] = time.monotonic() - scheduled
        finally:
            sock.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latency_s": latencies.tolist(), "send_lag_s": lags.tolist()}


# ----------------------------------------------------------------------------- measuring


@dataclass
class Run:
    rate: float
    repetition: int
    generator: str
    p50_ms: float
    p99_ms: float
    lag_p50_ms: float
    lag_p99_ms: float
    errors: int


def _percentiles_ms(values_s: Sequence[float]) -> tuple[float, float]:
    array = np.asarray(values_s, dtype=float)
    array = array[~np.isnan(array)] * 1000.0
    if not len(array):
        return float("nan"), float("nan")
    p50, p99 = np.percentile(array, [50, 99])
    return float(p50), float(p99)


def run_load_test(url: str, rows: np.ndarray, rate: float, duration: float, repetition: int) -> Run:
    from mltoolkit.endpoint import Endpoint
    from mltoolkit.observe import load_test

    frame = load_test(Endpoint(url, "digits"), rate=rate, duration=duration, X=rows)
    ok = frame[frame["status"] == 200]
    p50, p99 = _percentiles_ms(ok["latency_s"])
    return Run(rate, repetition, "load_test", p50, p99, frame.attrs["send_lag_p50_ms"],
               frame.attrs["send_lag_p99_ms"], int((frame["status"] != 200).sum()))  # fmt: skip


def run_reference(url: str, body_file: Path, rate: float, duration: float, repetition: int,
                  cpu: int | None) -> Run:  # fmt: skip
    from peers.processes import pinned

    connections = 1 if rate <= 200 else 4
    command = [sys.executable, str(Path(__file__).resolve()), "--reference", url,
               "--body-file", str(body_file), "--rate", str(rate), "--duration", str(duration),
               "--connections", str(connections)]  # fmt: skip
    output = subprocess.run(pinned(command, cpu), capture_output=True, text=True, check=True)
    result = json.loads(output.stdout)
    p50, p99 = _percentiles_ms(result["latency_s"])
    lag50, lag99 = _percentiles_ms(result["send_lag_s"])
    errors = int(np.isnan(np.asarray(result["latency_s"], dtype=float)).sum())
    return Run(rate, repetition, "reference", p50, p99, lag50, lag99, errors)


def run_wrk_floor(url: str, body: bytes, duration: float, repetition: int, cpu: int | None,
                  workdir: Path) -> Run | None:  # fmt: skip
    from peers.processes import pinned

    script = workdir / "post.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body.decode())}\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    command = ["wrk", "-t1", "-c1", f"-d{max(1, int(duration))}s", "--latency", "-s", str(script),
               url]  # fmt: skip
    try:
        text = subprocess.run(pinned(command, cpu), capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    unit_ms = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    found = {
        q: float(v) * unit_ms[u]
        for q, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", text, re.M)
    }
    if "50" not in found or "99" not in found:
        return None
    return Run(0, repetition, "wrk -c1 (closed)", found["50"], found["99"], float("nan"),
               float("nan"), 0)  # fmt: skip


# ----------------------------------------------------------------------------- report


def _spread(values: Sequence[float]) -> str:
    array = np.asarray([v for v in values if not np.isnan(v)], dtype=float)
    if not len(array):
        return "n/a"
    return f"{np.median(array):7.3f} [{array.min():.3f}-{array.max():.3f}]"


def report(runs: list[Run], rates: Sequence[float]) -> tuple[str, bool]:
    lines = []
    all_met = True
    for rate in rates:
        lines.append(f"\n{rate:g} requests/s (medians over rounds [min-max], ms)")
        lines.append(f"  {'generator':18} {'p50':>24} {'p99':>24} {'send lag p50':>24} {'send lag p99':>24}")
        for generator in ("load_test", "reference"):
            mine = [r for r in runs if r.rate == rate and r.generator == generator]
            lines.append(
                f"  {generator:18} {_spread([r.p50_ms for r in mine]):>24} "
                f"{_spread([r.p99_ms for r in mine]):>24} {_spread([r.lag_p50_ms for r in mine]):>24} "
                f"{_spread([r.lag_p99_ms for r in mine]):>24}"
            )
        floor = [r for r in runs if r.generator.startswith("wrk")]
        if floor and rate == rates[0]:
            lines.append(
                f"  {'wrk -c1 (closed)':18} {_spread([r.p50_ms for r in floor]):>24} "
                f"{_spread([r.p99_ms for r in floor]):>24}"
            )
        pairs = {}
        for r in runs:
            if r.rate == rate and r.generator in ("load_test", "reference"):
                pairs.setdefault(r.repetition, {})[r.generator] = r
        d50 = [p["load_test"].p50_ms - p["reference"].p50_ms for p in pairs.values() if len(p) == 2]
        d99 = [p["load_test"].p99_ms - p["reference"].p99_ms for p in pairs.values() if len(p) == 2]
        lines.append(f"  load_test - reference: p50 {_spread(d50)}   p99 {_spread(d99)}")
        met50 = bool(d50) and abs(float(np.median(d50))) <= P50_GOAL_MS
        met99 = bool(d99) and abs(float(np.median(d99))) <= P99_GOAL_MS
        all_met &= met50 and met99
        lines.append(
            f"  goal p50 within {P50_GOAL_MS} ms: {'met' if met50 else 'NOT met'}; "
            f"p99 within {P99_GOAL_MS} ms: {'met' if met99 else 'NOT met'}"
        )
        errors = sum(r.errors for r in runs if r.rate == rate)
        if errors:
            lines.append(f"  errors: {errors} requests without a 200 answer")
    return "\n".join(lines), all_met


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s per rate")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 1000.0])
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    # the reference generator's own process
    parser.add_argument("--reference", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--body-file", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.repetitions, args.duration = 1, 2.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.reference:
        body = Path(args.body_file).read_bytes()
        print(json.dumps(reference_run(args.reference, body, args.rate, args.duration,
                                       args.connections)))  # fmt: skip
        return 0

    from peers.output import log, machine_line
    from peers.processes import ServerProcess, free_port, pinned
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from mltoolkit.spec import ModelSpec

    server_cpu, client_cpu = (None, None) if args.no_pin else (1, 0)
    if client_cpu is not None:
        import os

        os.sched_setaffinity(0, {client_cpu})  # load_test runs in this process
    started = datetime.now().strftime("%Y%m%d-%H%M%S")
    X, y = load_digits(return_X_y=True)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="loadgen-") as tmp:
        workdir = Path(tmp)
        model = ModelSpec.from_object(
            LogisticRegression(max_iter=2000).fit(X, y), "digits", directory=workdir
        )
        body = json.dumps({"instances": X[:1].tolist()}).encode()
        body_file = workdir / "body.json"
        body_file.write_bytes(body)
        port = free_port()
        command = [sys.executable, "-m", "mltoolkit.serving", "--model-path", str(model.path),
                   "--model-name", "digits", "--port", str(port)]  # fmt: skip
        with ServerProcess("mltoolkit", pinned(command, server_cpu), workdir / "server.log") as server:
            base = f"http://127.0.0.1:{port}"
            server.wait_ready(base + "/v2/health/ready")
            url = base + "/predict"
            for repetition in range(args.repetitions):
                floor = run_wrk_floor(url, body, args.duration, repetition, client_cpu, workdir)
                if floor is not None:
                    runs.append(floor)
                for rate in args.rates:
                    order = ["load_test", "reference"]
                    if repetition % 2:
                        order.reverse()
                    for generator in order:
                        if generator == "load_test":
                            run = run_load_test(base, X[:1], rate, args.duration, repetition)
                        else:
                            run = run_reference(url, body_file, rate, args.duration, repetition,
                                                client_cpu)  # fmt: skip
                        runs.append(run)
                        log(f"round {repetition + 1}/{args.repetitions} {rate:g}/s {generator}: "
                            f"p50 {run.p50_ms:.3f} ms p99 {run.p99_ms:.3f} ms, send lag p99 "
                            f"{run.lag_p99_ms:.3f} ms")  # fmt: skip
    text, met = report(runs, args.rates)
    header = (f"load_test accuracy against a reference generator ({machine_line()}; "
              f"{args.repetitions} round(s) of {args.duration:g} s)")  # fmt: skip
    print(header + text)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    csv = results / f"loadgen-{started}-runs.csv"
    with open(csv, "w") as out:
        out.write("rate,repetition,generator,p50_ms,p99_ms,send_lag_p50_ms,send_lag_p99_ms,errors\n")
        for r in runs:
            out.write(f"{r.rate},{r.repetition},{r.generator},{r.p50_ms},{r.p99_ms},"
                      f"{r.lag_p50_ms},{r.lag_p99_ms},{r.errors}\n")  # fmt: skip
    (results / f"loadgen-{started}.txt").write_text(header + text + "\n")
    print(f"\nruns saved to {csv}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
