import io
import threading

import pytest

from mltoolkit.errors import SpecError
from mltoolkit.stack import render
from mltoolkit.stack.events import StackEvent
from mltoolkit.stack.progress import ProgressModel
from mltoolkit.stack.render import (
    CallbackRenderer,
    QuietRenderer,
    TextRenderer,
    WidgetRenderer,
    make_renderer,
)

BUCKET = "urn:pulumi:dev::p::gcp:storage/bucket:Bucket::models"


def step(kind, op="create", urn=BUCKET):
    return StackEvent(kind, urn=urn, resource_type="gcp:storage/bucket:Bucket", op=op, custom=True)


def test_text_renderer_writes_one_line_per_step_and_a_summary():
    stream = io.StringIO()
    renderer = TextRenderer(stream)
    model = ProgressModel("up", "dev", planned=1, clock=lambda: 0.0)
    model.add_listener(renderer)
    renderer.announce("up dev: 1 resources planned")
    model.handle(step("resource_pre"))
    model.handle(StackEvent("diagnostic", severity="info", message="ignored"))
    model.handle(step("resource_done"))
    model.finish("succeeded")
    assert stream.getvalue().splitlines() == [
        "up dev: 1 resources planned",
        "[   0.0s] creating gcp:storage/bucket:Bucket models",
        "[   0.0s] created gcp:storage/bucket:Bucket models",
        "up dev: succeeded — 1 created, 0 updated, 0 deleted, 0 unchanged, 0 failed in 0.0 s",
    ]


def test_text_renderer_defaults_to_current_stdout(capsys):
    TextRenderer().announce("hello")
    assert capsys.readouterr().out == "hello\n"


def test_widget_renderer_updates_bar_status_and_log():
    shown = []
    renderer = WidgetRenderer("up dev", display=shown.append)
    assert shown == [renderer.box]
    model = ProgressModel("up", "dev", planned=4, clock=lambda: 0.0)
    model.add_listener(renderer)
    model.handle(step("resource_pre"))
    model.handle(step("resource_done"))
    assert (renderer.bar.value, renderer.bar.max) == (1, 4)
    assert "1/4 resources" in renderer.status.value
    assert "created gcp:storage/bucket:Bucket models" in renderer.log.value
    renderer.announce("<b>not html</b>")
    assert "&lt;b&gt;not html&lt;/b&gt;" in renderer.log.value
    model.finish("failed")
    assert renderer.bar.bar_style == "danger" and "failed" in renderer.status.value


def test_widget_renderer_from_worker_threads():
    renderer = WidgetRenderer("up dev", display=lambda box: None)
    model = ProgressModel("up", "dev")
    model.add_listener(renderer)

    def worker(n):
        for i in range(50):
            urn = f"urn:pulumi:dev::p::gcp:storage/bucket:Bucket::w{n}-{i}"
            model.handle(step("resource_pre", urn=urn))
            model.handle(step("resource_done", urn=urn))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    model.finish("succeeded")
    assert (renderer.bar.value, renderer.bar.max, renderer.bar.bar_style) == (200, 200, "success")
    assert renderer.log.value.count("<br>") == WidgetRenderer.MAX_LINES - 1


def test_callback_renderer_gets_snapshots_and_announcements():
    got = []
    renderer = CallbackRenderer(lambda snapshot, line: got.append((snapshot is None, line)))
    renderer.announce("cost")
    model = ProgressModel("up", "dev")
    model.add_listener(renderer)
    model.handle(step("resource_pre"))
    assert got == [(True, "cost"), (False, "creating gcp:storage/bucket:Bucket models")]


def test_make_renderer_choices(monkeypatch):
    assert isinstance(make_renderer(False, "t"), QuietRenderer)
    assert isinstance(make_renderer("text", "t"), TextRenderer)
    monkeypatch.setattr(render, "in_notebook", lambda: False)
    assert isinstance(make_renderer(True, "t"), TextRenderer)
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    monkeypatch.setattr(render, "in_notebook", lambda: True)
    assert isinstance(make_renderer("auto", "t"), WidgetRenderer) and len(shown) == 1
    assert isinstance(make_renderer(lambda s, line: None, "t"), CallbackRenderer)
    with pytest.raises(SpecError, match="progress: 'loud' is not allowed"):
        make_renderer("loud", "t")


def test_not_in_a_notebook_here():
    assert render.in_notebook() is False
