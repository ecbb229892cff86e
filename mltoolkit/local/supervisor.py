"""Restarting processes that die, from a daemon thread, with a back-off for crash loops."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

log = logging.getLogger(__name__)

STABLE_AFTER_S = 10.0  # a process that ran this long before dying is restarted at once
MAX_DELAY_S = 10.0


def restart_delay(quick_failures: int) -> float:
    """Seconds to wait before a restart, given how many restarts in a row died quickly.

    0 for the first (a one-off crash or a deliberate kill comes back at once), then 0.5, 1, 2, ...
    capped at ``MAX_DELAY_S`` so a process that cannot start does not spin the CPU.
    """
    if quick_failures <= 0:
        return 0.0
    return float(min(MAX_DELAY_S, 0.5 * 2 ** (quick_failures - 1)))


@dataclass
class Restartable:
    """What the supervisor needs of a managed process."""

    name: str
    exit_code: Callable[[], int | None]
    restart: Callable[[], None]
    started_at: float  # time.monotonic() of the last start
    quick_failures: int = 0
    died_at: float | None = None


class Supervisor:
    """Every ``interval_s``, restarts the processes whose ``exit_code()`` is not None."""

    def __init__(
        self, processes: Callable[[], Sequence[Restartable]], interval_s: float = 0.1
    ) -> None:
        self._processes = processes
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mltoolkit-local-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            for process in self._processes():
                if self._stop.is_set():
                    return
                try:
                    self.check(process)
                except Exception:  # keep supervising the others
                    log.exception("restarting %s failed", process.name)

    def check(self, process: Restartable, now: float | None = None) -> bool:
        """Restart ``process`` if it died and its back-off has passed; True if restarted."""
        if process.exit_code() is None:
            return False
        now = time.monotonic() if now is None else now
        if process.died_at is None:
            process.died_at = now
            if now - process.started_at >= STABLE_AFTER_S:
                process.quick_failures = 0
        if now - process.died_at < restart_delay(process.quick_failures):
            return False
        process.quick_failures += 1
        process.died_at = now  # if restart() raises, the next try waits a longer delay
        process.restart()
        process.died_at = None
        process.started_at = time.monotonic()
        return True
