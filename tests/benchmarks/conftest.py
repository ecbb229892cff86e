"""The benchmark helpers live in benchmarks/peers/ (a folder of scripts, not part of the package)."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))


def load_script(name: str):
    """Import benchmarks/NAME.py as a module (scripts are not importable by package name)."""
    module_name = f"{name}_benchmark_script"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def make_result():
    """``make_result(rps=1000, p99=5.0)``: a WrkResult over 10 s with those numbers."""
    from peers.wrk import WrkResult

    def make(rps: float = 1000.0, p50: float = 1.0, p99: float = 5.0, errors: int = 0) -> WrkResult:
        return WrkResult(requests=int(rps * 10), duration_s=10.0, p50_ms=p50, p90_ms=p50 * 2,
                         p99_ms=p99, mean_ms=p50, max_ms=p99 * 2, status_errors=errors,
                         socket_errors=0)  # fmt: skip

    return make
