"""Driving wrk: the command line (pure), its report (pure), and one run (a subprocess).

wrk runs ``wrk_report.lua``, which POSTs a body file (or GETs) and prints one report line with
the exact numbers in microseconds (wrk's own text rounds to two digits and changes units).
Latency is wrk's: from sending a request to its answer on a closed-loop connection.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).resolve().parent / "wrk_report.lua"
REPORT_PREFIX = "WRK_REPORT"


class WrkError(RuntimeError):
    """wrk failed, or printed no report line."""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run. ``status_errors`` counts answers with an HTTP status above 399;
    ``socket_errors`` connect/read/write failures and timeouts."""

    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    status_errors: int
    socket_errors: int
    # CPU the system under test ran per request meanwhile, in µs (set by balancer.py; not wrk's)
    cpu_us_per_request: float | None = None

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors


def wrk_command(
    url: str,
    connections: int,
    duration_s: float,
    cpu: int | None = 0,
    threads: int = 1,
    timeout_s: float = 10.0,
    lua: Path = LUA,
) -> list[str]:
    """The command line for one run; ``cpu`` pins wrk to that core with taskset (None: no pin)."""
    if connections < threads:
        raise ValueError(f"connections ({connections}) must be at least threads ({threads})")
    if duration_s < 1 or int(duration_s) != duration_s:
        raise ValueError(f"duration_s must be a whole number of seconds (wrk's -d); got {duration_s}")
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{int(duration_s)}s",
        "--timeout", f"{timeout_s:g}s", "--latency", "-s", str(lua), url,
    ]  # fmt: skip
    return ["taskset", "-c", str(cpu), *command] if cpu is not None else command


def parse_wrk_report(stdout: str, prefix: str = REPORT_PREFIX) -> WrkResult:
    """The result from wrk's output (the line ``wrk_report.lua`` prints at the end)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(prefix + " "):
            data = json.loads(line[len(prefix) + 1 :])
            return WrkResult(
                requests=int(data["requests"]),
                duration_s=data["duration_us"] / 1e6,
                p50_ms=data["latency_p50_us"] / 1000,
                p90_ms=data["latency_p90_us"] / 1000,
                p99_ms=data["latency_p99_us"] / 1000,
                mean_ms=data["latency_mean_us"] / 1000,
                max_ms=data["latency_max_us"] / 1000,
                status_errors=int(data["errors_status"]),
                socket_errors=sum(
                    int(data[f"errors_{kind}"]) for kind in ("connect", "read", "write", "timeout")
                ),
            )
    raise WrkError(f"no {prefix} line in wrk's output:\n{stdout[-2000:]}")


def run_wrk(
    url: str,
    connections: int,
    duration_s: float,
    body_file: Path | None = None,
    cpu: int | None = 0,
) -> WrkResult:
    """Run wrk once against ``url`` (POSTing ``body_file`` if given, else GET) and parse it."""
    env = {**os.environ, "REPORT_PREFIX": REPORT_PREFIX, "BODY_FILE": str(body_file or "")}
    command = wrk_command(url, connections, duration_s, cpu=cpu)
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=duration_s + 60
        )
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish within {duration_s + 60:g} s") from exc
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    return parse_wrk_report(done.stdout)
