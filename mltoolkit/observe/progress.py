"""Progress of a running load test, reported on the caller's thread (safe in a notebook cell)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class LoadTestProgress:
    """A snapshot: requests sent so far, answered (any HTTP status), and errors among all done."""

    elapsed_s: float
    duration_s: float
    sent: int
    answered: int
    errors: int
    finished: bool = False

    def text(self) -> str:
        shown = min(self.elapsed_s, self.duration_s)
        state = "done" if self.finished else f"{shown:5.1f}/{self.duration_s:.1f} s"
        return (
            f"load test {state}: {self.sent} sent, {self.answered} answered, {self.errors} errors"
        )


ProgressCallback = Callable[[LoadTestProgress], None]


class TextProgress:
    """Rewrites one line (carriage return) on ``stream``; a newline once the test is finished.

    Called only from the thread that started the test, so in Jupyter the text lands in the
    cell that runs it.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout

    def __call__(self, progress: LoadTestProgress) -> None:
        end = "\n" if progress.finished else ""
        self.stream.write(f"\r{progress.text()}{end}")
        self.stream.flush()


def progress_callback(progress: bool | ProgressCallback) -> ProgressCallback | None:
    """``False`` → none, ``True`` → a ``TextProgress`` on stdout, a callable → itself."""
    if progress is False or progress is None:
        return None
    if progress is True:
        return TextProgress()
    if callable(progress):
        return progress
    from mltoolkit.errors import SpecError

    raise SpecError(
        "load_test.progress", progress, "True, False or a callable taking a LoadTestProgress"
    )
