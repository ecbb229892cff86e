"""``MonitorPanel``: load a running target and watch latency, utilization and balance live.

A thin view over ``mltoolkit.observe``:

- **Start / Stop** with a rate slider: a load test (``target.load_test``) in chunks of
  ``chunk_s`` seconds on a background thread, the slider read before each chunk; after each
  chunk the latency table (``summarize`` over the whole test so far: overall and per replica)
  and the replicas' balance are updated. Stop ends the test after the current chunk.
- **Utilization**, refreshed every ``refresh_s`` seconds on a second background thread with a
  stop event: the latest reading by node (``target.utilization()``), a plot of CPU by node over
  the kept readings (``plot_cpu_by_node``) and the nodes' balance (``utilization_balance``).
- **Live traffic** when no load test runs: with each utilization reading, the latency of the
  real traffic the balancers served over the last ``live_window_s`` seconds
  (``target.latency(window_s=...)``, when the target has it), per replica, in the latency table.
- **Balance**: the coefficient of variation across replicas (requests served, ``balance``; from
  the live traffic when no load test runs) and across nodes (mean CPU %).

``close()`` stops both threads and waits for them: nothing is left running.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Mapping

import ipywidgets as widgets
import pandas as pd

from mltoolkit.errors import SpecError
from mltoolkit.observe import balance, coefficient_of_variation, plot_cpu_by_node, summarize, utilization_balance
from mltoolkit.widgets import render
from mltoolkit.widgets.live import LoadTestRun, UtilizationHistory
from mltoolkit.widgets.panel import PanelBase, close_tree
from mltoolkit.widgets.targets import MonitoredTarget
from mltoolkit.widgets.worker import BackgroundTask


LOAD_TEST_TITLE = "<b>Latency (ms), whole load test</b>"
TRAFFIC_SHOWN = ("replica", "node", "count", "errors", "throughput_rps", "p50_ms", "p90_ms", "p99_ms")


def live_title(window_s: float) -> str:
    return f"<b>Latency (ms), live traffic through the balancers, last {window_s:g} s (no load test running)</b>"


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SpecError(f"MonitorPanel.{name}", value, "a number of seconds > 0")
    return float(value)


def _whole(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SpecError(f"MonitorPanel.{name}", value, f"a whole number >= {low}")
    return value


class MonitorPanel(PanelBase):
    """Live load test, latency, utilization and balance of a running ``target``.

    ``rate`` (requests/s, slider up to ``max_rate``) and ``chunk_s`` shape the load test;
    ``load_options`` go to ``target.load_test`` as well (e.g. ``{"X": X[:100]}``,
    ``{"timeout_s": 5}``). Utilization is read every ``refresh_s`` seconds, the last ``keep``
    readings plotted; ``refresh=False`` leaves that to ``start_refresh()`` / ``refresh()``.
    After ``max_refresh_failures`` failed readings in a row (the target went down) the refresh
    thread stops by itself.

    Methods mirror the buttons: ``start()``, ``stop()``; ``wait()`` blocks until a stopped load
    test has finished its last chunk. Results: ``summary``, ``load_frame``,
    ``utilization_frame``, ``replicas_cv``, ``nodes_cv``, ``traffic_frame`` (the last live
    traffic reading, ``target.latency`` of ``live_window_s`` seconds; read while no load test runs).
    """

    def __init__(
        self,
        target: MonitoredTarget,
        *,
        rate: int = 20,
        max_rate: int = 500,
        chunk_s: float = 3.0,
        refresh_s: float = 3.0,
        keep: int = 40,
        load_options: Mapping[str, Any] | None = None,
        refresh: bool = True,
        max_refresh_failures: int = 3,
        live_window_s: float = 1.0,
    ) -> None:
        for method in ("load_test", "utilization"):
            if not callable(getattr(target, method, None)):
                raise SpecError("MonitorPanel.target", target, "a running target with load_test() and utilization()")
        self.max_rate = _whole("max_rate", max_rate, 1)
        if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= self.max_rate:
            raise SpecError("MonitorPanel.rate", rate, f"a whole number of requests/s from 1 to max_rate ({self.max_rate})")
        self.chunk_s = _positive("chunk_s", chunk_s)
        self.refresh_s = _positive("refresh_s", refresh_s)
        self.max_refresh_failures = _whole("max_refresh_failures", max_refresh_failures, 1)
        self.live_window_s = _positive("live_window_s", live_window_s)
        if load_options is not None and not isinstance(load_options, Mapping):
            raise SpecError("MonitorPanel.load_options", load_options, "None or a mapping of load_test arguments")
        reserved = {"rate", "duration", "concurrency"} & set(load_options or {})
        if reserved:
            raise SpecError("MonitorPanel.load_options", sorted(reserved), "load_test arguments other than rate, duration and concurrency (the panel sets them)")
        self.target = target
        self.load_options = dict(load_options or {})
        self._lock = threading.Lock()
        self._run = LoadTestRun()
        self._history = UtilizationHistory(keep=_whole("keep", keep, 1))
        self.summary: pd.DataFrame | None = None
        self.load_frame: pd.DataFrame | None = None
        self.utilization_frame: pd.DataFrame | None = None
        self.replicas_cv: float | None = None
        self.nodes_cv: float | None = None
        self.traffic_frame: pd.DataFrame | None = None
        self._load_stop = threading.Event()
        self._refresh_stop = threading.Event()
        self._refresh_thread: threading.Thread | None = None
        self._build(rate)
        if refresh:
            self.start_refresh()

    # ------------------------------------------------------------------ widgets

    def _build(self, rate: int) -> None:
        self.rate = widgets.IntSlider(
            value=rate, min=1, max=self.max_rate, description="rate (req/s)", continuous_update=False
        )
        self.start_button = widgets.Button(description="Start", button_style="primary", icon="play")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.status = widgets.HTML(value="load test: idle")
        self.balance = widgets.HTML(value=render.balance_html(None, None))
        self.latency = widgets.HTML(value="")
        self.latency_title = widgets.HTML(value=LOAD_TEST_TITLE)
        self.utilization_status = widgets.HTML(value="utilization: waiting for the first reading")
        self.utilization = widgets.HTML(value="")
        self.plot = widgets.Image(format="png", layout=widgets.Layout(max_width="460px"))
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.rate, self.start_button, self.stop_button]),
                self.status,
                self.balance,
                self.latency_title,
                self.latency,
                widgets.HTML("<b>Utilization by node</b>"),
                self.utilization_status,
                widgets.HBox([self.utilization, self.plot]),
            ]
        )
        self._load_task = BackgroundTask("load-test", controls=[self.start_button], busy_controls=[self.stop_button])
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())

    def _show_balance(self) -> None:
        with self._lock:
            text = render.balance_html(self.replicas_cv, self.nodes_cv)
        self.balance.value = text

    # ------------------------------------------------------------------ load test

    def start(self) -> bool:
        """Start a load test at the slider's rate (Start button); False if one is running."""
        if self._load_task.busy:
            return False
        self._load_stop.clear()
        with self._lock:
            self._run = LoadTestRun()
        self.status.value = f"load test: starting at {self.rate.value} req/s"
        return self._load_task.start(self._load_loop, self._load_done, self._load_failed)

    def stop(self) -> None:
        """End the load test after the current chunk (Stop button)."""
        if self._load_task.busy:
            self._load_stop.set()
            self.status.value = "load test: stopping after the current chunk…"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the load test has ended; False if it is still running at ``timeout``."""
        return self._load_task.wait(timeout)

    @property
    def running(self) -> bool:
        return self._load_task.busy

    @property
    def last_error(self) -> BaseException | None:
        return self._load_task.last_error

    def _load_loop(self) -> tuple[int, float]:
        started = time.monotonic()
        while not self._load_stop.is_set():
            rate = self.rate.value
            offset_s = time.monotonic() - started
            chunk = self.target.load_test(rate=rate, duration=self.chunk_s, **self.load_options)
            with self._lock:
                self._run.add(chunk, offset_s)
                frame = self._run.frame
                requests = self._run.requests
            assert frame is not None
            summary = summarize(frame)
            replicas_cv = balance(frame)
            with self._lock:
                self.load_frame, self.summary, self.replicas_cv = frame, summary, replicas_cv
            self.latency_title.value = LOAD_TEST_TITLE
            self.latency.value = render.latency_html(summary)
            self._show_balance()
            if not self._load_stop.is_set():
                self.status.value = (
                    f"load test: running at {rate} req/s — {requests} requests in "
                    f"{time.monotonic() - started:.0f} s (Stop ends it after the current chunk)"
                )
        return self._run.requests, time.monotonic() - started

    def _load_done(self, result: tuple[int, float]) -> None:
        requests, elapsed = result
        self.status.value = f"load test: stopped — {requests} requests in {elapsed:.0f} s"

    def _load_failed(self, error: BaseException) -> None:
        self.status.value = render.error_html(error, "load test")

    # ------------------------------------------------------------------ utilization

    def refresh(self) -> None:
        """Read utilization once and update the table, plot and balance (on this thread); while
        no load test runs, then read the live traffic (``refresh_traffic``)."""
        reading = self.target.utilization()
        with self._lock:
            self._history.add(reading)
            history = self._history.frame
            count = len(self._history.readings)
        assert history is not None
        nodes_cv = utilization_balance(history)
        png = render.cpu_plot_png(history, plot_cpu_by_node)
        with self._lock:
            self.utilization_frame, self.nodes_cv = history, nodes_cv
        self.utilization.value = render.utilization_html(reading)
        self.plot.value = png
        self.utilization_status.value = (
            f"utilization: {len(reading)} node(s); plot of the last {count} reading(s), "
            f"one every {self.refresh_s:g} s"
        )
        self._show_balance()
        if not self.running:
            self.refresh_traffic()

    def refresh_traffic(self) -> bool:
        """Show the real traffic of the last ``live_window_s`` seconds (``target.latency``) in the
        latency table, and its replicas' balance; False when the target has no ``latency()``. A
        failed reading is shown in the table's place (utilization goes on)."""
        latency = getattr(self.target, "latency", None)
        if not callable(latency):
            return False
        try:
            traffic = latency(window_s=self.live_window_s)
        except Exception as error:  # the balancers may be restarting; shown, not fatal
            if not self.running:
                self.latency_title.value = live_title(self.live_window_s)
                self.latency.value = render.error_html(error, "live traffic reading")
            return True
        if self.running:  # a load test started meanwhile: its table wins
            return True
        replicas_cv = coefficient_of_variation(traffic["count"]) if traffic["count"].sum() else None
        with self._lock:
            self.traffic_frame, self.replicas_cv = traffic, replicas_cv
        self.latency_title.value = live_title(self.live_window_s)
        self.latency.value = render.frame_html(traffic[list(TRAFFIC_SHOWN)])
        self._show_balance()
        return True

    def _refresh_loop(self) -> None:
        failures = 0
        while not self._refresh_stop.is_set():
            try:
                self.refresh()
                failures = 0
            except Exception as error:  # shown; the target may be restarting
                failures += 1
                stopped = failures >= self.max_refresh_failures
                note = (
                    f"<br>Refresh stopped after {failures} failed readings in a row; "
                    "call start_refresh() once the target is up again."
                    if stopped
                    else ""
                )
                self.utilization_status.value = render.error_html(error, "utilization reading") + note
                if stopped:
                    return
            self._refresh_stop.wait(self.refresh_s)

    @property
    def refreshing(self) -> bool:
        thread = self._refresh_thread
        return thread is not None and thread.is_alive()

    def start_refresh(self) -> None:
        """Start reading utilization every ``refresh_s`` seconds on a background thread."""
        if self.refreshing:
            return
        self._refresh_stop.clear()
        self._refresh_thread = threading.Thread(target=self._refresh_loop, name="mltoolkit-refresh", daemon=True)
        self._refresh_thread.start()

    def stop_refresh(self, timeout: float | None = None) -> bool:
        """Stop the refresh thread and wait for it; False if it is still running at ``timeout``."""
        self._refresh_stop.set()
        thread = self._refresh_thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # ------------------------------------------------------------------ lifecycle

    def close(self, timeout: float | None = None) -> bool:
        """Stop the load test and the refresh thread, wait for both, close the widgets.
        True when both threads have ended (False only if ``timeout`` ran out)."""
        self.stop()
        self._refresh_stop.set()
        stopped = self.stop_refresh(timeout) and self.wait(timeout)
        close_tree(self.widget)
        return stopped
