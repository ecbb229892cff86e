"""Restarting processes that die, from a daemon thread, with a back-off for crash loops; and,
like a Kubernetes liveness probe, killing (then restarting) a process that is alive but has not
answered its health check for longer than a set time (hung, deadlocked or SIGSTOPped)."""

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
    """What the supervisor needs of a managed process.

    ``live`` (optional) answers whether the process answers its health check now; ``kill`` stops
    it for good (the exit is then restarted like any other). Without them, no liveness check.
    """

    name: str
    exit_code: Callable[[], int | None]
    restart: Callable[[], None]
    started_at: float  # time.monotonic() of the last start
    quick_failures: int = 0
    died_at: float | None = None
    live: Callable[[], bool] | None = None
    kill: Callable[[str], None] | None = None
    live_at: float | None = None  # the last passed health check since the last start
    probed_at: float | None = None
    hung_kills: int = 0


@dataclass(frozen=True)
class Liveness:
    """When a live process counts as hung: its health checks (every ``interval_s``) have failed
    for more than ``timeout_s`` since the last one that passed, or, if none passed since it
    started, for more than ``startup_s`` since its start (loading a model takes a while)."""

    timeout_s: float = 3.0
    interval_s: float = 0.5
    startup_s: float = 60.0


class Supervisor:
    """Every ``interval_s``, restarts the processes whose ``exit_code()`` is not None. With
    ``liveness``, a second thread probes the processes that have a ``live`` check and kills the
    hung ones (so a slow probe never delays restarting a dead process)."""

    def __init__(
        self,
        processes: Callable[[], Sequence[Restartable]],
        interval_s: float = 0.1,
        liveness: Liveness | None = None,
    ) -> None:
        self._processes = processes
        self._interval_s = interval_s
        self.liveness = liveness
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mltoolkit-local-supervisor", daemon=True)
        self._prober = threading.Thread(
            target=self._probe_loop, name="mltoolkit-local-liveness", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        if self.liveness is not None:
            self._prober.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        for thread in (self._thread, self._prober):
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() or self._prober.is_alive()

    def _probe_loop(self) -> None:
        assert self.liveness is not None
        while not self._stop.wait(min(self._interval_s, self.liveness.interval_s)):
            for process in self._processes():
                if self._stop.is_set():
                    return
                try:
                    self.check_liveness(process)
                except Exception:  # keep probing the others
                    log.exception("liveness check of %s failed", process.name)

    def check_liveness(self, process: Restartable, now: float | None = None) -> bool:
        """Probe ``process`` if its interval has passed; kill it if it counts as hung (see
        ``Liveness``). True if it was killed."""
        liveness = self.liveness
        if liveness is None or process.live is None or process.kill is None:
            return False
        now = time.monotonic() if now is None else now
        if process.probed_at is not None and now - process.probed_at < liveness.interval_s:
            return False
        if process.exit_code() is not None or process.died_at is not None:
            return False  # dead: the restart loop's job
        started_at = process.started_at
        process.probed_at = now
        if process.live():
            process.live_at = now
            return False
        if process.started_at != started_at:
            return False  # restarted while the probe ran
        if process.live_at is not None:
            failing_s, allowed_s = now - process.live_at, liveness.timeout_s
        else:
            failing_s, allowed_s = now - started_at, liveness.startup_s
        if failing_s <= allowed_s:
            return False
        process.hung_kills += 1
        process.kill(
            f"no answer to its health check for {failing_s:.1f} s (limit {allowed_s:g} s)"
        )
        return True

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
        process.live_at = None
        process.probed_at = None
        process.started_at = time.monotonic()
        return True
