import ipywidgets as widgets

from mltoolkit.stack.progress import ProgressSnapshot
from mltoolkit.widgets.progress import MAX_LINES, LineProgress, SnapshotProgress, panel_progress


def test_line_progress_shows_the_latest_lines_escaped_in_its_area():
    area = widgets.VBox([widgets.HTML("old")])
    progress = LineProgress("up (local)", area)
    assert len(area.children) == 1 and progress.log in area.children[0].children
    for i in range(MAX_LINES + 3):
        progress(f"line {i} <ok>")
    assert progress.lines[0] == "line 3 <ok>" and len(progress.lines) == MAX_LINES
    assert progress.log_html.endswith(f"line {MAX_LINES + 2} &lt;ok&gt;")


def test_snapshot_progress_draws_the_stack_renderer_in_its_area():
    area = widgets.VBox([])
    progress = SnapshotProgress("up dev", area)
    renderer = progress.renderer
    assert area.children == (renderer.box,)
    progress(None, "up dev: 4 resources planned, estimated $0.25/hour")
    progress(ProgressSnapshot("up", "dev", planned=4, created=1, current_step="creating ml"), "created ml")
    assert (renderer.bar.value, renderer.bar.max) == (1, 4)
    assert "1/4 resources — creating ml" in renderer.status.value
    assert "estimated $0.25/hour" in progress.log_html and "created ml" in progress.log_html
    progress(ProgressSnapshot("up", "dev", planned=4, created=4, result="succeeded"), None)
    assert (renderer.bar.value, renderer.bar.bar_style) == (4, "success")


def test_the_view_follows_the_target_kind():
    assert isinstance(panel_progress("local", "t", widgets.VBox()), LineProgress)
    assert isinstance(panel_progress("gke", "t", widgets.VBox()), SnapshotProgress)
