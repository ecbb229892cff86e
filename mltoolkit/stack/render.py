"""Show a :class:`ProgressModel` live: ipywidgets in a notebook, plain text lines otherwise.

Renderers are listeners of the model: ``renderer(snapshot, line)`` may be called from the
SDK's worker thread, so each renderer serialises its own updates with a lock (widget value
assignments from a worker thread are sent by ipykernel's thread-safe IOPub channel). They also
take ``announce(text)`` for lines that are not engine events (the cost before ``up``, hints).
"""

from __future__ import annotations

import html
import sys
import threading
from typing import Any, Callable, Protocol, TextIO

from mltoolkit.errors import SpecError
from mltoolkit.stack.progress import ProgressSnapshot

PROGRESS_ALLOWED = "True/'auto' (widget in a notebook, text otherwise), 'text', 'widget', False, or a callable(snapshot, line)"


class Renderer(Protocol):
    def __call__(self, snapshot: ProgressSnapshot, line: str | None) -> None: ...

    def announce(self, text: str) -> None: ...


class QuietRenderer:
    """Shows nothing (``progress=False``)."""

    def __call__(self, snapshot: ProgressSnapshot, line: str | None) -> None:
        return None

    def announce(self, text: str) -> None:
        return None


class TextRenderer:
    """One line per step: ``[  12.3s] created gcp:storage/bucket:Bucket models``.

    ``stream`` defaults to the current ``sys.stdout`` at each write (so a notebook cell or a
    test's capture sees it).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.lines: list[str] = []

    def _write(self, text: str) -> None:
        with self._lock:
            self.lines.append(text)
            stream = self._stream if self._stream is not None else sys.stdout
            stream.write(text + "\n")
            stream.flush()

    def announce(self, text: str) -> None:
        self._write(text)

    def __call__(self, snapshot: ProgressSnapshot, line: str | None) -> None:
        if line is not None:
            self._write(f"[{snapshot.elapsed_s:6.1f}s] {line}")
        elif snapshot.finished:
            self._write(snapshot.line())


class WidgetRenderer:
    """A progress bar, a status line and the latest steps, as ipywidgets.

    ``display`` (default ``IPython.display.display``) is called once, on the caller's thread,
    when the renderer is created.
    """

    MAX_LINES = 12

    def __init__(self, title: str, display: Callable[[Any], Any] | None = None) -> None:
        import ipywidgets as widgets

        self._lock = threading.Lock()
        self._recent: list[str] = []
        self.bar = widgets.IntProgress(value=0, min=0, max=1, description=title, bar_style="info")
        self.status = widgets.HTML(value="starting")
        self.log = widgets.HTML(value="")
        self.box = widgets.VBox([self.bar, self.status, self.log])
        if display is None:
            from IPython.display import display as ipython_display

            display = ipython_display
        display(self.box)

    def announce(self, text: str) -> None:
        with self._lock:
            self._push(text)

    def _push(self, text: str) -> None:
        self._recent = (self._recent + [text])[-self.MAX_LINES :]
        self.log.value = "<br>".join(html.escape(t) for t in self._recent)

    def __call__(self, snapshot: ProgressSnapshot, line: str | None) -> None:
        with self._lock:
            total = max(snapshot.planned, snapshot.done, 1)
            self.bar.max = total
            self.bar.value = min(snapshot.done, total)
            if snapshot.finished:
                self.bar.bar_style = "success" if snapshot.result == "succeeded" else "danger"
            self.status.value = html.escape(snapshot.line())
            if line is not None:
                self._push(f"[{snapshot.elapsed_s:6.1f}s] {line}")


class CallbackRenderer:
    """Wraps a user's ``callable(snapshot, line)``; announcements arrive with a None snapshot."""

    def __init__(self, callback: Callable[[ProgressSnapshot | None, str | None], Any]) -> None:
        self._callback = callback
        self._lock = threading.Lock()

    def __call__(self, snapshot: ProgressSnapshot, line: str | None) -> None:
        with self._lock:
            self._callback(snapshot, line)

    def announce(self, text: str) -> None:
        with self._lock:
            self._callback(None, text)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel attached)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def make_renderer(progress: Any, title: str) -> Renderer:
    """The renderer for a ``progress`` argument (see :data:`PROGRESS_ALLOWED`)."""
    if progress is False or progress is None:
        return QuietRenderer()
    if progress is True or progress == "auto":
        if in_notebook() and _widgets_available():
            return WidgetRenderer(title)
        return TextRenderer()
    if progress == "text":
        return TextRenderer()
    if progress == "widget":
        if not _widgets_available():
            raise SpecError("progress", progress, PROGRESS_ALLOWED + " (ipywidgets is not installed)")
        return WidgetRenderer(title)
    if callable(progress):
        return CallbackRenderer(progress)
    raise SpecError("progress", progress, PROGRESS_ALLOWED)
