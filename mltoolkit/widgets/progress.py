"""Live progress inside a panel.

The two targets report progress differently: ``LocalTarget`` calls ``progress(line)`` with
text lines; ``GKETarget`` calls ``progress(snapshot, line)`` with snapshots of the stack layer's
``ProgressModel`` (from the SDK's worker thread) and ``progress(None, text)`` for announcements
such as the cost. :class:`SnapshotProgress` draws the latter with the stack layer's own
``WidgetRenderer`` (bar, status line, recent steps); :class:`LineProgress` shows the lines of
the former. Both place their widgets in a Box of the panel instead of displaying them in a
cell. (``mltoolkit.stack`` imports Pulumi, so the local path does not import it.)
"""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as widgets

MAX_LINES = 12


class LineProgress:
    """The latest ``MAX_LINES`` lines of a ``progress(line)`` callback, under a title."""

    def __init__(self, title: str, area: Any) -> None:
        self._lock = threading.Lock()
        self.lines: list[str] = []
        self.title = widgets.HTML(value=f"<b>{html.escape(title)}</b>")
        self.log = widgets.HTML(value="")
        area.children = (widgets.VBox([self.title, self.log]),)

    def __call__(self, line: Any, _unused: Any = None) -> None:
        with self._lock:
            self.lines = (self.lines + [str(line)])[-MAX_LINES:]
            self.log.value = "<br>".join(html.escape(t) for t in self.lines)

    @property
    def log_html(self) -> str:
        return str(self.log.value)


class SnapshotProgress:
    """A ``progress(snapshot, line)`` / ``progress(None, text)`` callback drawn by the stack
    layer's ``WidgetRenderer``."""

    def __init__(self, title: str, area: Any) -> None:
        from mltoolkit.stack.render import WidgetRenderer

        def place(box: Any) -> None:
            area.children = (box,)

        self.renderer = WidgetRenderer(title, display=place)

    def __call__(self, snapshot: Any, line: str | None = None) -> None:
        if snapshot is None:
            if line:
                self.renderer.announce(line)
        else:
            self.renderer(snapshot, line)

    @property
    def log_html(self) -> str:
        return str(self.renderer.log.value)


def panel_progress(kind: str, title: str, area: Any) -> LineProgress | SnapshotProgress:
    """The progress view for a target kind ("local" → lines, "gke" → snapshots)."""
    from mltoolkit.widgets.forms import GKE

    return SnapshotProgress(title, area) if kind == GKE else LineProgress(title, area)
