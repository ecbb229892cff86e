"""Progress of a batch run: a snapshot with rows/s and ETA, drawn as text or as a widget.

Callbacks run on the caller's thread (the one that called ``predict_batch``), so in Jupyter the
bar lands in the cell that runs it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from mltoolkit.errors import SpecError


@dataclass(frozen=True)
class BatchProgress:
    """``rows_done`` counts rows in the output, ``rows_resumed`` of them from an earlier run;
    the rate counts only this run's rows."""

    rows_done: int
    rows_total: int
    elapsed_s: float
    retries: int = 0
    rows_resumed: int = 0
    finished: bool = False

    @property
    def rows_per_s(self) -> float:
        scored = self.rows_done - self.rows_resumed
        return scored / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    @property
    def eta_s(self) -> float:
        rate = self.rows_per_s
        left = self.rows_total - self.rows_done
        if left <= 0:
            return 0.0
        return left / rate if rate > 0 else float("nan")

    @property
    def fraction(self) -> float:
        return self.rows_done / self.rows_total if self.rows_total else 1.0

    def text(self) -> str:
        eta = self.eta_s
        eta_text = "done" if self.finished else ("ETA ?" if math.isnan(eta) else f"ETA {eta:,.0f} s")
        rate = self.rows_per_s
        rate_text = "? rows/s" if math.isnan(rate) else f"{rate:,.0f} rows/s"
        parts = [
            f"batch {self.rows_done:,}/{self.rows_total:,} rows ({self.fraction:.0%})",
            rate_text,
            eta_text,
        ]
        if self.retries:
            parts.append(f"{self.retries} retries")
        if self.rows_resumed:
            parts.append(f"{self.rows_resumed:,} resumed")
        return ", ".join(parts)


BatchProgressCallback = Callable[[BatchProgress], None]


class TextBatchProgress:
    """Rewrites one line on ``stream``; a newline once finished."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout

    def __call__(self, progress: BatchProgress) -> None:
        end = "\n" if progress.finished else ""
        self.stream.write(f"\r{progress.text()}{end}")
        self.stream.flush()


class WidgetBatchProgress:
    """An ipywidgets bar with the same text under it, displayed on first use."""

    def __init__(self, display: Callable[[Any], Any] | None = None) -> None:
        import ipywidgets as widgets

        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, description="batch")
        self.label = widgets.Label(value="")
        self.box = widgets.VBox([self.bar, self.label])
        self._display = display
        self._shown = False

    def __call__(self, progress: BatchProgress) -> None:
        if not self._shown:
            show = self._display
            if show is None:
                from IPython.display import display as show
            show(self.box)
            self._shown = True
        self.bar.value = progress.fraction
        self.bar.bar_style = "success" if progress.finished else ""
        self.label.value = progress.text()


def in_notebook() -> bool:
    """True inside a Jupyter kernel. (``mltoolkit.stack.render`` has the same test, but that
    package imports Pulumi, which a batch run must not need.)"""
    shell_module = sys.modules.get("IPython")
    if shell_module is None:
        return False
    shell = shell_module.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


PROGRESS_ALLOWED = "True, False, 'text', 'widget' or a callable taking a BatchProgress"


def make_progress(progress: Any) -> BatchProgressCallback | None:
    """``False`` → none; ``True`` → a widget in Jupyter, text elsewhere; ``'text'`` /
    ``'widget'``; a callable → itself."""
    if progress is False or progress is None:
        return None
    if progress is True:
        return WidgetBatchProgress() if in_notebook() else TextBatchProgress()
    if progress == "text":
        return TextBatchProgress()
    if progress == "widget":
        return WidgetBatchProgress()
    if callable(progress):
        return progress  # type: ignore[no-any-return]
    raise SpecError("predict_batch.progress", progress, PROGRESS_ALLOWED)
