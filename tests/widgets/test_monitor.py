"""MonitorPanel without a kernel, on a fake target: click Start/Stop, move the rate slider, and
read back the latency, utilization and balance the panel shows."""

from __future__ import annotations

import threading

import pytest

from mltoolkit.endpoint import EndpointError
from mltoolkit.errors import SpecError
from mltoolkit.local import LocalTargetError
from mltoolkit.widgets import MonitorPanel

from tests.waiting import wait_for

from .fakes import FakeLocalTarget
from .html_tables import records, text

TIMEOUT = 60




@pytest.fixture
def target():
    target = FakeLocalTarget()
    yield target
    for release in target._release.values():
        release.set()


@pytest.fixture
def make_panel(target):
    panels = []

    def make(**kwargs):
        kwargs.setdefault("refresh", False)
        kwargs.setdefault("chunk_s", 0.5)
        panel = MonitorPanel(target, **kwargs)
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        for release in target._release.values():
            release.set()
        assert panel.close(TIMEOUT)


def mltoolkit_threads():
    return [t for t in threading.enumerate() if t.name in ("mltoolkit-load-test", "mltoolkit-refresh")]


# -------------------------------------------------------------------------------- load test


def test_the_load_test_runs_in_chunks_at_the_sliders_rate(make_panel, target):
    panel = make_panel(rate=40)
    panel.start_button.click()
    wait_for(lambda: len(target.called("load_test")) >= 1 and panel.summary is not None)
    panel.rate.value = 80  # read before the next chunk
    wait_for(lambda: any(kw["rate"] == 80 for _, kw in target.called("load_test")))
    panel.stop_button.click()
    assert panel.wait(TIMEOUT)

    calls = [kw for _, kw in target.called("load_test")]
    assert calls[0] == {"rate": 40, "duration": 0.5}
    assert {kw["duration"] for kw in calls} == {0.5}
    assert calls[-1]["rate"] == 80
    # every chunk's requests are in the table: 20 per chunk at 40 req/s, 40 at 80 req/s
    rows = {r[""]: r for r in records(panel.latency.value)}
    assert list(rows) == ["overall", "digits-0", "digits-1"]
    assert int(rows["overall"]["count"]) == sum(int(kw["rate"] * 0.5) for kw in calls)
    # each fake replica answers in a fixed time: 10 ms and 30 ms
    assert (rows["digits-0"]["p50_ms"], rows["digits-0"]["p99_ms"]) == ("10.0", "10.0")
    assert (rows["digits-1"]["p50_ms"], rows["digits-1"]["max_ms"]) == ("30.0", "30.0")
    assert rows["overall"]["error_rate"] == "0.0%"
    assert text(panel.status.value).startswith(f"load test: stopped — {rows['overall']['count']} requests in")


def test_the_replicas_balance_is_the_cv_of_requests_served(make_panel, target):
    target.pattern = ["digits-0", "digits-0", "digits-1"]  # two thirds to one replica
    panel = make_panel(rate=60)
    panel.start()
    wait_for(lambda: panel.summary is not None)
    panel.stop()
    assert panel.wait(TIMEOUT)
    # served 2:1 → population std 0.5 over mean 1.5 = 0.33
    assert panel.replicas_cv == pytest.approx(1 / 3)
    assert "replicas 0.33" in text(panel.balance.value)


def test_start_is_disabled_and_stop_enabled_while_a_chunk_runs(make_panel, target):
    release = target.hold("load_test")
    panel = make_panel()
    assert (panel.start_button.disabled, panel.stop_button.disabled) == (False, True)
    panel.start()
    assert target.entered["load_test"].wait(TIMEOUT)
    assert (panel.start_button.disabled, panel.stop_button.disabled) == (True, False)
    assert panel.start() is False  # one load test at a time
    panel.stop()
    assert "stopping after the current chunk" in text(panel.status.value)
    release.set()
    assert panel.wait(TIMEOUT)
    assert len(target.called("load_test")) == 1  # Stop ended it after that chunk
    assert (panel.start_button.disabled, panel.stop_button.disabled) == (False, True)


def test_load_options_go_to_every_chunk(make_panel, target):
    panel = make_panel(load_options={"timeout_s": 5.0, "rows_per_request": 2})
    panel.start()
    wait_for(lambda: target.called("load_test"))
    panel.stop()
    assert panel.wait(TIMEOUT)
    assert target.called("load_test")[0][1] == {"rate": 20, "duration": 0.5, "timeout_s": 5.0, "rows_per_request": 2}


def test_a_failing_load_test_is_shown_and_start_comes_back(make_panel, target):
    target.fail("load_test", EndpointError("connection refused by 127.0.0.1:8123; is the target up?"))
    panel = make_panel()
    panel.start()
    assert panel.wait(TIMEOUT)
    shown = text(panel.status.value)
    assert "load test failed (EndpointError)" in shown and "is the target up?" in shown
    assert isinstance(panel.last_error, EndpointError)
    assert (panel.start_button.disabled, panel.stop_button.disabled) == (False, True)


# ------------------------------------------------------------------------------ utilization


def test_utilization_is_refreshed_as_a_table_a_plot_and_the_nodes_balance(make_panel, target):
    panel = make_panel(refresh=True, refresh_s=0.05)
    wait_for(lambda: len(target.called("utilization")) >= 3 and panel.plot.value)
    rows = records(panel.utilization.value)
    assert [(r["node"], r["cpu_percent"], r["memory_mib"]) for r in rows] == [
        ("node-0", "40.0", "100.0"), ("node-1", "60.0", "100.0")
    ]
    assert bytes(panel.plot.value).startswith(b"\x89PNG")
    # nodes at 40 % and 60 %: std 10 over mean 50
    assert panel.nodes_cv == pytest.approx(0.2)
    assert "nodes 0.20" in text(panel.balance.value)
    assert panel.refreshing
    assert panel.stop_refresh(TIMEOUT)
    assert not panel.refreshing


def test_live_traffic_is_shown_when_no_load_test_runs(make_panel, target):
    """No load test: each refresh reads target.latency over live_window_s and shows it, with the
    replicas' balance from it; a running load test's table is not overwritten."""
    target.traffic = {"digits-0": 30, "digits-1": 10}
    panel = make_panel(live_window_s=2.0)
    panel.refresh()
    assert target.called("latency") == [((), {"window_s": 2.0, "by": "replica"})]
    assert "live traffic" in text(panel.latency_title.value) and "last 2 s" in text(panel.latency_title.value)
    rows = records(panel.latency.value)
    assert [(r["replica"], r["node"], r["count"]) for r in rows] == [("digits-0", "node-0", "30"), ("digits-1", "node-1", "10")]
    assert 5.0 < float(rows[0]["p50_ms"]) <= 10.0 and 20.0 < float(rows[1]["p50_ms"]) <= 50.0  # the buckets' estimates
    assert panel.replicas_cv == pytest.approx(0.5)  # 30 and 10: std 10 over mean 20
    assert list(panel.traffic_frame["count"]) == [30, 10]

    hold = target.hold("load_test")
    panel.start()
    wait_for(lambda: "load_test" in target.entered)
    panel.refresh()  # during the load test: no live traffic reading
    assert len(target.called("latency")) == 1
    hold.set()
    panel.stop()
    assert panel.wait(TIMEOUT)
    assert "whole load test" in text(panel.latency_title.value)


def test_a_failed_traffic_reading_is_shown_and_utilization_goes_on(make_panel, target):
    target.fail("latency", LocalTargetError("LocalTarget is not up: call up(spec) first"))
    panel = make_panel()
    panel.refresh()
    assert "not up" in text(panel.latency.value)
    assert len(records(panel.utilization.value)) == 2


def test_the_plot_covers_the_kept_readings(make_panel, target):
    panel = make_panel(keep=2)
    for percent in (10.0, 20.0, 30.0):
        target.cpu_percent["node-0"] = percent
        panel.refresh()
    assert list(panel.utilization_frame.query("node == 'node-0'")["cpu_percent"]) == [20.0, 30.0]
    assert "plot of the last 2 reading(s)" in text(panel.utilization_status.value)


def test_refresh_stops_by_itself_when_readings_keep_failing(make_panel, target):
    target.fail("utilization", LocalTargetError("LocalTarget is not up: call up(spec) first"))
    panel = make_panel(refresh=True, refresh_s=0.01, max_refresh_failures=3)
    wait_for(lambda: not panel.refreshing)
    assert len(target.called("utilization")) == 3
    shown = text(panel.utilization_status.value)
    assert "LocalTarget is not up" in shown and "Refresh stopped after 3 failed readings" in shown


# -------------------------------------------------------------------------------- lifecycle


def test_close_stops_the_load_test_and_the_refresh_and_leaves_no_thread(target):
    panel = MonitorPanel(target, chunk_s=0.2, refresh_s=0.05)
    panel.start()
    wait_for(lambda: panel.summary is not None and panel.utilization_frame is not None)
    assert len(mltoolkit_threads()) == 2
    assert panel.close(TIMEOUT)
    assert not panel.running and not panel.refreshing
    assert mltoolkit_threads() == []
    assert panel.widget.comm is None and panel.start_button.comm is None


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"rate": 0}, "MonitorPanel.rate"),
        ({"rate": 600}, "MonitorPanel.rate"),
        ({"max_rate": 0}, "MonitorPanel.max_rate"),
        ({"chunk_s": -1}, "MonitorPanel.chunk_s"),
        ({"refresh_s": "3"}, "MonitorPanel.refresh_s"),
        ({"keep": 0}, "MonitorPanel.keep"),
        ({"load_options": {"duration": 9}}, "MonitorPanel.load_options"),
        ({"max_refresh_failures": 0}, "MonitorPanel.max_refresh_failures"),
    ],
)
def test_bad_arguments_fail_before_any_thread_starts(target, kwargs, field):
    with pytest.raises(SpecError) as caught:
        MonitorPanel(target, **kwargs)
    assert caught.value.field == field
    assert mltoolkit_threads() == [] and target.calls == []


def test_the_target_must_measure():
    with pytest.raises(SpecError) as caught:
        MonitorPanel(object())
    assert caught.value.field == "MonitorPanel.target"


# ------------------------------------------------------------------ both panels, real processes


@pytest.fixture(scope="module")
def digits_tree():
    """A real model that fits in milliseconds: a decision tree on scikit-learn's digits."""
    from sklearn.datasets import load_digits
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_digits(return_X_y=True)
    return DecisionTreeClassifier(max_depth=8, random_state=0).fit(X, y), X


@pytest.mark.slow
def test_both_panels_on_a_real_local_target(digits_tree, tmp_path):
    import psutil

    from mltoolkit.spec import ModelSpec
    from mltoolkit.widgets import ProvisionPanel

    fitted, X = digits_tree
    provision = ProvisionPanel(ModelSpec.from_object(fitted, name="digits", directory=tmp_path), nodes=2, replicas=2)
    monitor = None
    try:
        provision.up()
        assert provision.wait(TIMEOUT * 2)
        assert provision.errors.value == "", provision.errors.value
        target = provision.target
        pids = list(target.status()["pid"])
        assert len(pids) == 3 and all(psutil.pid_exists(p) for p in pids)

        monitor = MonitorPanel(target, rate=20, chunk_s=1.0, refresh_s=0.5, load_options={"X": X[:50]})
        monitor.start()
        wait_for(lambda: monitor.summary is not None and len(monitor.summary) == 3
                 and monitor.utilization_frame is not None)
        monitor.stop()
        assert monitor.wait(TIMEOUT)
        rows = {r[""]: r for r in records(monitor.latency.value)}
        assert list(rows) == ["overall", "digits-0", "digits-1"]
        assert rows["overall"]["errors"] == "0" and int(rows["overall"]["count"]) >= 20
        assert float(rows["digits-0"]["p50_ms"]) > 0
        assert [r["node"] for r in records(monitor.utilization.value)] == ["node-0", "node-1"]
        assert monitor.replicas_cv is not None and monitor.replicas_cv >= 0
        assert monitor.close(TIMEOUT)
        assert mltoolkit_threads() == []

        provision.down(confirm=True)
        assert provision.wait(TIMEOUT)
        assert text(provision.status.value) == "Down: done — nothing left running"
        wait_for(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                                 for p in pids))
    finally:
        if monitor is not None:
            monitor.close(TIMEOUT)
        if provision.target is not None:
            provision.target.down()
        provision.close(TIMEOUT)
