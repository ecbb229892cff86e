import math
import subprocess
import sys
import time

import pandas as pd
import psutil
import pytest

from mltoolkit.observe.utilization import (
    GONE,
    NODE_COLUMNS,
    REPLICA_COLUMNS,
    ProcessReading,
    ProcessRef,
    ProcessSampler,
    by_node,
    replica_frame,
)

REPLICA_DTYPES = {
    "time": "datetime64[ns, UTC]",
    "pid": "int64",
    "cpu_cores": "float64",
    "cpu_percent": "float64",
    "memory_bytes": "int64",
    "in_flight": "Int64",
    "served": "Int64",
    "failed": "Int64",
    "cpu_request_cores": "float64",
    "memory_request_bytes": "int64",
}
NODE_DTYPES = {
    "time": "datetime64[ns, UTC]",
    "cpu_cores": "float64",
    "cpu_percent": "float64",
    "memory_bytes": "int64",
    "memory_percent": "float64",
    "replicas": "int64",
    "in_flight": "Int64",
    "served": "Int64",
}


@pytest.fixture
def children():
    """``children(code)`` starts ``python -c code``; every child is killed at test end."""
    started: list[subprocess.Popen] = []

    def start(code: str) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", code])
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=30)


def assert_dtypes(frame: pd.DataFrame, expected: dict[str, str]) -> None:
    for column, dtype in expected.items():
        assert str(frame[column].dtype) == dtype, column
    for column in ("node", "replica"):
        if column in frame.columns:
            assert pd.api.types.is_string_dtype(frame[column]), column


def test_sampling_real_processes_busy_uses_more_cpu_than_idle(children):
    busy = children("while True: pass")
    idle = children("import time; time.sleep(120)")
    refs = [
        ProcessRef(
            "node-1", "busy", busy.pid, cpu_request_cores=0.5, memory_request_bytes=256 * 2**20
        ),
        ProcessRef(
            "node-2", "idle", idle.pid, cpu_request_cores=0.5, memory_request_bytes=256 * 2**20
        ),
    ]
    sampler = ProcessSampler()
    first = sampler.sample(refs)
    time.sleep(1.0)
    stats = {
        "policy": "round_robin",
        "replicas": [{"name": "busy", "in_flight": 1, "served": 7, "failed": 0}],
    }
    sample = sampler.sample(refs, stats)

    for frame in (first, sample):
        assert list(frame.columns) == list(REPLICA_COLUMNS)
        assert_dtypes(frame, REPLICA_DTYPES)
        assert frame["time"].nunique() == 1
    assert not first["cpu_cores"].isna().any()  # the first sample is primed, not NaN
    rows = sample.set_index("replica")
    assert rows.loc["busy", "cpu_cores"] > rows.loc["idle", "cpu_cores"]
    assert rows.loc["busy", "cpu_cores"] > 0.02
    assert rows.loc["busy", "cpu_percent"] == pytest.approx(
        rows.loc["busy", "cpu_cores"] / 0.5 * 100
    )
    assert (rows["memory_bytes"] > 1_000_000).all()  # a Python interpreter's resident memory
    assert rows.loc["busy", "pid"] == busy.pid
    assert (rows.loc["busy", "in_flight"], rows.loc["busy", "served"]) == (1, 7)
    assert rows.loc["idle", ["in_flight", "served", "failed"]].isna().all()  # not in the stats

    nodes = by_node(sample)
    assert list(nodes.columns) == list(NODE_COLUMNS)
    assert_dtypes(nodes, NODE_DTYPES)
    assert nodes["node"].tolist() == ["node-1", "node-2"]
    assert nodes["replicas"].tolist() == [1, 1]


def test_a_process_that_vanished_is_reported_not_raised(children):
    doomed = children("import time; time.sleep(120)")
    ref = ProcessRef("node-1", "r0", doomed.pid, 1.0, 2**20)
    sampler = ProcessSampler(prime_interval_s=0)
    primed = sampler.sample([ref])
    assert math.isnan(primed.loc[0, "cpu_cores"])  # no prime wait: the first CPU reading is unknown
    assert primed.loc[0, "memory_bytes"] > 0
    doomed.kill()
    doomed.wait(timeout=30)

    after = sampler.sample([ref])
    assert math.isnan(after.loc[0, "cpu_cores"]) and math.isnan(after.loc[0, "cpu_percent"])
    assert after.loc[0, "memory_bytes"] == 0
    assert_dtypes(after, REPLICA_DTYPES)


def test_a_zombie_counts_as_gone(children):
    zombie = children("pass")
    ref = ProcessRef("node-1", "r0", zombie.pid, 1.0, 2**20)
    sampler = ProcessSampler(prime_interval_s=0)
    sampler.sample([ref])
    deadline = time.monotonic() + 30  # safety net only: wait until it has exited (unreaped)
    while (
        psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert sampler.read([zombie.pid]) == {zombie.pid: GONE}


def test_sampling_nothing_gives_an_empty_typed_frame():
    frame = ProcessSampler().sample([])
    assert frame.empty and list(frame.columns) == list(REPLICA_COLUMNS)
    assert_dtypes(frame, REPLICA_DTYPES)
    nodes = by_node(frame)
    assert nodes.empty and list(nodes.columns) == list(NODE_COLUMNS)
    assert_dtypes(nodes, NODE_DTYPES)


def hand_made_replicas(when: pd.Timestamp) -> pd.DataFrame:
    refs = [
        ProcessRef("n1", "r1", 1, cpu_request_cores=0.5, memory_request_bytes=100),
        ProcessRef("n1", "r2", 2, cpu_request_cores=1.5, memory_request_bytes=300),
        ProcessRef("n2", "r3", 3, cpu_request_cores=1.0, memory_request_bytes=200),
    ]
    readings = {1: ProcessReading(0.25, 50), 2: ProcessReading(0.25, 150), 3: GONE}
    stats = {
        "policy": "least_request",
        "replicas": [
            {
                "name": "r1",
                "url": "http://127.0.0.1:1",
                "node": "n1",
                "healthy": True,
                "in_flight": 2,
                "served": 10,
                "failed": 0,
            },
            {
                "name": "r2",
                "url": "http://127.0.0.1:2",
                "node": "n1",
                "healthy": True,
                "in_flight": 1,
                "served": 20,
                "failed": 1,
            },
        ],
    }
    return replica_frame(when, refs, readings, stats)


def test_replica_frame_arithmetic():
    frame = hand_made_replicas(pd.Timestamp("2024-01-01", tz="UTC")).set_index("replica")
    assert frame.loc["r1", "cpu_percent"] == pytest.approx(50.0)  # 0.25 / 0.5
    assert frame.loc["r2", "cpu_percent"] == pytest.approx(100 / 6)  # 0.25 / 1.5
    assert math.isnan(frame.loc["r3", "cpu_percent"]) and frame.loc["r3", "memory_bytes"] == 0
    assert frame.loc["r2", ["in_flight", "served", "failed"]].tolist() == [1, 20, 1]


def test_by_node_arithmetic():
    t0, t1 = (
        pd.Timestamp("2024-01-01T00:00:00", tz="UTC"),
        pd.Timestamp("2024-01-01T00:00:05", tz="UTC"),
    )
    nodes = by_node(pd.concat([hand_made_replicas(t1), hand_made_replicas(t0)]))
    assert nodes[["time", "node"]].values.tolist() == [
        [t0, "n1"],
        [t0, "n2"],
        [t1, "n1"],
        [t1, "n2"],
    ]
    n1 = nodes.iloc[0]
    # n1: 0.25 + 0.25 cores over requests 0.5 + 1.5 → 25 % (not the 33 % mean of 50 % and 16.7 %)
    assert n1["cpu_cores"] == pytest.approx(0.5)
    assert n1["cpu_percent"] == pytest.approx(25.0)
    # memory: 50 + 150 bytes of 100 + 300 requested → 50 %
    assert (n1["memory_bytes"], n1["memory_percent"]) == (200, pytest.approx(50.0))
    assert (n1["replicas"], n1["in_flight"], n1["served"]) == (2, 3, 30)
    n2 = nodes.iloc[1]
    # n2's only process is gone: CPU unknown, no memory, no balancer counters
    assert math.isnan(n2["cpu_cores"]) and math.isnan(n2["cpu_percent"])
    assert (n2["memory_bytes"], n2["memory_percent"], n2["replicas"]) == (0, 0.0, 1)
    assert pd.isna(n2["in_flight"]) and pd.isna(n2["served"])
    assert_dtypes(nodes, NODE_DTYPES)


def test_by_node_names_missing_columns():
    with pytest.raises(ValueError, match="by-replica utilization frame"):
        by_node(pd.DataFrame({"node": ["n1"], "cpu_cores": [0.1]}))
