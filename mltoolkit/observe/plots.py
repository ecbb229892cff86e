"""Matplotlib figures of load-test and utilization frames.

Every function returns the ``Figure`` (and never calls ``plt.show``), so a notebook shows it
once as the cell's value and a script can ``savefig`` it. Give ``ax`` to draw into an
existing figure. New figures are detached from pyplot right away, so they are neither shown
twice in Jupyter nor left open; this works headless (Agg).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from mltoolkit.observe.summary import balance, is_error, served_per_replica


def _new_axes(ncols: int = 1, width: float = 6.0, height: float = 4.0) -> tuple[Any, list[Any]]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    plt.close(fig)  # detached from pyplot: shown once (as the returned value), never leaked
    return fig, list(axes[0])


def _axes(ax: Any) -> Any:
    return _new_axes()[1][0] if ax is None else ax


def rolling_p99_ms(df: pd.DataFrame, window_s: float = 1.0) -> pd.Series:
    """p99 latency (ms) of successful requests over a trailing ``window_s`` of scheduled time."""
    ok = df[~is_error(df) & df["latency_s"].notna()].sort_values("scheduled_s")
    latency_ms = pd.Series(
        ok["latency_s"].to_numpy(dtype=float) * 1000.0,
        index=pd.to_timedelta(ok["scheduled_s"].to_numpy(dtype=float), unit="s"),
    )
    rolled = latency_ms.rolling(pd.Timedelta(seconds=window_s)).quantile(0.99)
    rolled.index = ok["scheduled_s"].to_numpy(dtype=float)
    return rolled


def plot_latency_over_time(df: pd.DataFrame, ax: Any = None, window_s: float = 1.0) -> Any:
    """Scatter of latency vs scheduled time, one colour per replica, with a rolling p99 line.

    Answered errors (HTTP >= 400) are red crosses; requests without an answer have no latency
    and are not drawn.
    """
    ax = _axes(ax)
    errors = is_error(df)
    ok = df[~errors & df["latency_s"].notna()]
    for replica in sorted(ok["replica"].dropna().unique(), key=str):
        rows = ok[ok["replica"] == replica]
        ax.scatter(
            rows["scheduled_s"], rows["latency_s"] * 1000.0, s=8, alpha=0.6, label=str(replica)
        )
    unnamed = ok[ok["replica"].isna()]
    if len(unnamed):
        ax.scatter(
            unnamed["scheduled_s"],
            unnamed["latency_s"] * 1000.0,
            s=8,
            alpha=0.6,
            label="(no replica)",
        )
    failed = df[errors & df["latency_s"].notna()]
    if len(failed):
        ax.scatter(
            failed["scheduled_s"],
            failed["latency_s"] * 1000.0,
            s=16,
            marker="x",
            color="red",
            label="errors",
        )
    p99 = rolling_p99_ms(df, window_s)
    ax.plot(
        p99.index, p99.to_numpy(), color="black", linewidth=1.5, label=f"p99 over {window_s:g} s"
    )
    ax.set_xlabel("scheduled time (s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency over time")
    ax.legend(loc="upper left", fontsize="small")
    return ax.figure


def plot_latency_distribution(df: pd.DataFrame, ax: Any = None, bins: int = 50) -> Any:
    """Histogram of successful latencies with their CDF on a second y axis (twin of ``ax``)."""
    ax = _axes(ax)
    ok_ms = np.sort(df.loc[~is_error(df), "latency_s"].dropna().to_numpy(dtype=float) * 1000.0)
    ax.hist(ok_ms, bins=bins, color="tab:blue", alpha=0.6)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("requests")
    cdf_ax = ax.twinx()
    fraction = np.arange(1, len(ok_ms) + 1) / max(len(ok_ms), 1)
    cdf_ax.plot(ok_ms, fraction, color="black", linewidth=1.5)
    cdf_ax.set_ylim(0, 1.02)
    cdf_ax.set_ylabel("fraction at or below (CDF)")
    ax.set_title("Latency distribution")
    return ax.figure


def plot_latency(df: pd.DataFrame, window_s: float = 1.0, bins: int = 50) -> Any:
    """Latency over time (left) and its distribution (right; histogram + CDF twin axis)."""
    fig, (left, right) = _new_axes(2)
    plot_latency_over_time(df, ax=left, window_s=window_s)
    plot_latency_distribution(df, ax=right, bins=bins)
    fig.tight_layout()
    return fig


def plot_cpu_by_node(util: pd.DataFrame, ax: Any = None) -> Any:
    """One line per node: ``cpu_percent`` (of the node's capacity) over time."""
    import matplotlib.dates as mdates

    ax = _axes(ax)
    for node, rows in util.sort_values("time").groupby("node", sort=True):
        ax.plot(rows["time"], rows["cpu_percent"], marker=".", label=str(node))
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("CPU (% of node capacity)")
    ax.set_title("CPU by node")
    if util["node"].nunique():
        ax.legend(loc="best", fontsize="small")
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    return ax.figure


def plot_served_by_replica(
    frame: pd.DataFrame, ax: Any = None, replicas: Iterable[str] | None = None
) -> Any:
    """Bars of requests served per replica (see ``served_per_replica``), balance in the title."""
    ax = _axes(ax)
    served = served_per_replica(frame, replicas)
    ax.bar(served.index.astype(str), served.to_numpy())
    ax.set_xlabel("replica")
    ax.set_ylabel("requests served")
    ax.set_title(f"Served per replica (balance CV {balance(frame, replicas):.2f})")
    return ax.figure


def plot_utilization(util: pd.DataFrame, served_from: pd.DataFrame | None = None) -> Any:
    """CPU by node over time; with ``served_from`` (load-test or by-replica frame), the bars too."""
    fig, axes = _new_axes(2 if served_from is not None else 1)
    plot_cpu_by_node(util, ax=axes[0])
    if served_from is not None:
        plot_served_by_replica(served_from, ax=axes[1])
    fig.tight_layout()
    return fig
