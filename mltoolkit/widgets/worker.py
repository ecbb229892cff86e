"""Long work off the notebook's thread: one piece at a time, its buttons disabled meanwhile.

A click handler runs on the kernel's thread; if it ran ``up()`` itself, the notebook would
freeze and no progress would reach the browser until it returned. :class:`BackgroundTask`
starts the work on a daemon thread and returns at once; widget updates made from that thread
are sent by ipykernel's thread-safe IOPub channel.
"""

from __future__ import annotations

import threading
import traceback
from typing import Any, Callable, Sequence


class BackgroundTask:
    """Runs ``work`` on a thread; ``controls`` are disabled while it runs, ``busy_controls``
    enabled only while it runs (a Stop button), each put back as it was afterwards.

    ``on_done(result)`` or ``on_error(exception)`` run on the worker thread before the controls
    are restored. ``last_error`` / ``last_traceback`` keep the latest failure.
    """

    def __init__(
        self,
        name: str,
        controls: Sequence[Any] = (),
        busy_controls: Sequence[Any] = (),
    ) -> None:
        self.name = name
        self.controls = list(controls)
        self.busy_controls = list(busy_controls)
        self.last_error: BaseException | None = None
        self.last_traceback: str | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(
        self,
        work: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
    ) -> bool:
        """Start ``work``; False (and nothing started) if the previous work is still running."""
        with self._lock:
            if self.busy:
                return False
            before = [(c, c.disabled) for c in self.controls + self.busy_controls]
            for control in self.controls:
                control.disabled = True
            for control in self.busy_controls:
                control.disabled = False
            thread = threading.Thread(
                target=self._run, args=(work, on_done, on_error, before),
                name=f"mltoolkit-{self.name}", daemon=True,
            )
            self._thread = thread
            thread.start()
            return True

    def _run(
        self,
        work: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        before: list[tuple[Any, bool]],
    ) -> None:
        try:
            try:
                on_done(work())
            except BaseException as exc:  # shown in the panel; a thread has nowhere to raise to
                self.last_error = exc
                self.last_traceback = traceback.format_exc()
                on_error(exc)
        except BaseException as exc:  # on_error itself failed: keep it for the user to read
            self.last_error = exc
            self.last_traceback = traceback.format_exc()
        finally:
            for control, disabled in before:
                control.disabled = disabled

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current work has finished; False if it is still running at timeout."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()
