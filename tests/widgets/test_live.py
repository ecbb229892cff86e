import pandas as pd

from mltoolkit.widgets.live import LoadTestRun, UtilizationHistory


def chunk(n, replica="r0"):
    return pd.DataFrame({"scheduled_s": [i * 0.5 for i in range(n)], "latency_s": [0.01] * n,
                         "status": [200] * n, "replica": [replica] * n, "error": [None] * n})


def test_chunks_join_on_one_time_axis():
    run = LoadTestRun()
    assert run.frame is None and run.requests == 0
    first = chunk(2)
    run.add(first, 0.0)
    run.add(chunk(3, "r1"), 10.0)
    frame = run.frame
    assert list(frame["scheduled_s"]) == [0.0, 0.5, 10.0, 10.5, 11.0]
    assert list(frame["replica"]) == ["r0", "r0", "r1", "r1", "r1"]
    assert run.requests == 5
    assert list(first["scheduled_s"]) == [0.0, 0.5]  # the caller's frame is left alone


def test_history_keeps_the_latest_readings():
    history = UtilizationHistory(keep=2)
    assert history.latest is None and history.frame is None
    readings = [pd.DataFrame({"node": ["n0"], "cpu_percent": [float(i)]}) for i in range(3)]
    for reading in readings:
        history.add(reading)
    assert history.latest is readings[2]
    assert list(history.frame["cpu_percent"]) == [1.0, 2.0]
