import threading

import ipywidgets as widgets

from mltoolkit.widgets.worker import BackgroundTask

TIMEOUT = 30


def test_controls_are_disabled_while_work_runs_and_restored_after():
    go, stop_button, already_off = widgets.Button(), widgets.Button(disabled=True), widgets.Button(disabled=True)
    task = BackgroundTask("t", controls=[go, already_off], busy_controls=[stop_button])
    entered, release = threading.Event(), threading.Event()
    results = []

    def work():
        entered.set()
        assert release.wait(TIMEOUT)
        return 42

    assert task.start(work, results.append, lambda e: None)
    assert entered.wait(TIMEOUT)
    assert task.busy
    assert (go.disabled, stop_button.disabled, already_off.disabled) == (True, False, True)
    release.set()
    assert task.wait(TIMEOUT)
    assert results == [42]
    assert (go.disabled, stop_button.disabled, already_off.disabled) == (False, True, True)
    assert not task.busy


def test_a_second_start_while_busy_is_refused():
    release = threading.Event()
    task = BackgroundTask("t")
    ran = []
    assert task.start(lambda: release.wait(TIMEOUT), lambda r: None, lambda e: None)
    assert task.start(lambda: ran.append(1), lambda r: None, lambda e: None) is False
    release.set()
    assert task.wait(TIMEOUT)
    assert ran == []


def test_errors_go_to_on_error_and_are_kept_with_their_traceback():
    button = widgets.Button()
    task = BackgroundTask("t", controls=[button])
    seen = []

    def work():
        raise ValueError("bad value")

    task.start(work, lambda r: seen.append(("done", r)), lambda e: seen.append(("error", e)))
    assert task.wait(TIMEOUT)
    assert seen[0][0] == "error" and str(seen[0][1]) == "bad value"
    assert task.last_error is seen[0][1]
    assert "ValueError: bad value" in task.last_traceback
    assert button.disabled is False


def test_a_failing_on_error_is_kept_and_controls_still_come_back():
    button = widgets.Button()
    task = BackgroundTask("t", controls=[button])

    def on_error(error):
        raise RuntimeError("while showing the error")

    task.start(lambda: 1 / 0, lambda r: None, on_error)
    assert task.wait(TIMEOUT)
    assert isinstance(task.last_error, RuntimeError)
    assert button.disabled is False


def test_wait_without_work_returns_true():
    assert BackgroundTask("t").wait(0) is True
