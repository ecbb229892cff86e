import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mltoolkit.observe.loadtest import results_frame  # noqa: E402
from mltoolkit.observe.plots import (  # noqa: E402
    plot_cpu_by_node,
    plot_latency,
    plot_latency_distribution,
    plot_latency_over_time,
    plot_served_by_replica,
    plot_utilization,
    rolling_p99_ms,
)
from mltoolkit.observe.utilization import GONE, ProcessReading, ProcessRef, by_node, replica_frame  # noqa: E402


def load_frame() -> pd.DataFrame:
    """60 requests over 3 s: replicas r0/r1/r2 in turn, every 10th a 503, one with no answer."""
    rows = {}
    for i in range(60):
        replica = f"r{i % 3}"
        status = 503 if i % 10 == 9 else 200
        rows[i] = (
            i * 0.05,
            0.01 + 0.001 * i,
            status,
            replica,
            None if status == 200 else "HTTP 503: busy",
        )
    rows[60] = (3.0, float("nan"), 0, None, "timeout")
    return results_frame(rows)


def util_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    refs = [
        ProcessRef("n1", "r0", 1, 1.0, 100),
        ProcessRef("n1", "r1", 2, 1.0, 100),
        ProcessRef("n2", "r2", 3, 1.0, 100),
    ]
    samples = []
    for second in range(4):
        readings = {
            1: ProcessReading(0.1 * second, 50),
            2: ProcessReading(0.2, 50),
            3: GONE if second == 3 else ProcessReading(0.5, 60),
        }
        stats = {
            "replicas": [
                {"name": r.replica, "in_flight": 0, "served": 10 * second + r.pid, "failed": 0}
                for r in refs
            ]
        }
        samples.append(
            replica_frame(
                pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(seconds=second),
                refs,
                readings,
                stats,
            )
        )
    replicas = pd.concat(samples, ignore_index=True)
    return replicas, by_node(replicas)


def test_latency_figure_has_time_and_distribution_axes():
    fig = plot_latency(load_frame())
    assert isinstance(fig, Figure)
    over_time, histogram, cdf = fig.axes  # the CDF is a twin of the histogram's axes
    assert (
        len([c for c in over_time.collections if isinstance(c, PathCollection)]) == 4
    )  # r0 r1 r2 + errors
    assert [line.get_label() for line in over_time.get_lines()] == ["p99 over 1 s"]
    assert sum(patch.get_height() for patch in histogram.patches) == 54  # the successes
    (cdf_line,) = cdf.get_lines()
    assert cdf_line.get_ydata()[-1] == 1.0 and len(cdf_line.get_ydata()) == 54
    assert not plt.get_fignums()  # detached from pyplot: nothing left open


def test_latency_over_time_colours_each_replica():
    fig = plot_latency_over_time(load_frame())
    (ax,) = fig.axes
    labels = [c.get_label() for c in ax.collections]
    assert labels == ["r0", "r1", "r2", "errors"]
    r1 = ax.collections[1].get_offsets()
    assert len(r1) == 18  # 20 requests to r1, minus the 503s at i = 19 and 49 (i % 3 == 1)
    assert len({tuple(c.get_facecolor()[0]) for c in ax.collections[:3]}) == 3


def test_rolling_p99_follows_the_window():
    df = results_frame({i: (float(i), 0.001 * (i + 1), 200, "r0", None) for i in range(5)})
    # 1 request per second; a 1 s window holds only the current one, a 2.5 s window the last 3
    np.testing.assert_allclose(rolling_p99_ms(df, 1.0).to_numpy(), [1, 2, 3, 4, 5])
    np.testing.assert_allclose(rolling_p99_ms(df, 2.5).to_numpy()[-1], np.percentile([3, 4, 5], 99))


def test_distribution_into_given_axes():
    fig, ax = plt.subplots()
    try:
        assert plot_latency_distribution(load_frame(), ax=ax, bins=10) is fig
        assert len(ax.patches) == 10 and len(fig.axes) == 2
    finally:
        plt.close(fig)


def test_cpu_by_node_draws_one_line_per_node():
    _, nodes = util_frames()
    fig = plot_cpu_by_node(nodes)
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["n1", "n2"]
    # n1 at second 2: (0.2 + 0.2) cores of 2 requested → 20 %
    assert lines[0].get_ydata()[2] == pytest.approx(20.0)
    assert len(lines[1].get_ydata()) == 4


def test_served_bars_from_a_load_test_and_from_balancer_counters():
    fig = plot_served_by_replica(load_frame())
    (ax,) = fig.axes
    # 20 each, minus the 503s: i = 9, 39 (r0), 19, 49 (r1), 29, 59 (r2)
    assert [p.get_height() for p in ax.patches] == [18, 18, 18]
    assert "balance CV 0.00" in ax.get_title()

    replicas, _ = util_frames()
    (ax,) = plot_served_by_replica(replicas, replicas=["r0", "r1", "r2", "r9"]).axes
    assert [p.get_height() for p in ax.patches] == [31, 32, 33, 0]  # latest counters: 30 + pid


def test_utilization_figure_with_and_without_bars():
    replicas, nodes = util_frames()
    assert len(plot_utilization(nodes).axes) == 1
    fig = plot_utilization(nodes, served_from=replicas)
    assert len(fig.axes) == 2 and len(fig.axes[1].patches) == 3
    fig.savefig(__import__("io").BytesIO(), format="png")  # renders headless
