"""Starting and stopping OS processes: own process group, logs to a file, parent-death signal.

Side effects live here; what to start is decided in ``commands``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

import psutil

from mltoolkit.local.records import PRIVATE_FILE_MODE, private_dir

MARKER_ENV = "MLTOOLKIT_DEPLOYMENT"
"""Environment variable set in every process we start: the deployment id, for finding strays."""
NAME_ENV = "MLTOOLKIT_PROCESS"
"""Environment variable naming the process within its deployment ('digits-0')."""

DEFAULT_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1
_T = TypeVar("_T")


def _parent_death_preexec() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when the thread that forked it ends.

    Best effort: None where prctl is unavailable. libc is loaded here, before the fork, so the
    child only makes the system call.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class Spawner:
    """Starts processes from one long-lived daemon thread.

    Linux sends the parent-death signal when the *thread* that forked a child ends, not the
    process. Forking from this thread means a child outlives a short-lived caller thread (a
    widget callback, a supervisor restart) and still dies with the Python process.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], _T]) -> _T:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="mltoolkit-local-spawner", daemon=True
                )
                self._thread.start()
        future: Future[_T] = Future()
        self._jobs.put((fn, future))
        return future.result()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future = job
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)

    def close(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._jobs.put(None)
                self._thread.join(timeout=5)
            self._thread = None


def start_process(
    argv: Sequence[str],
    log_path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    parent_death_signal: bool = True,
    stdin_pipe: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, stdout and stderr appended to ``log_path`` (standard
    input a pipe with ``stdin_pipe``, else /dev/null)."""
    private_dir(Path(log_path).parent)
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
            start_new_session=True,
            preexec_fn=_parent_death_preexec() if parent_death_signal else None,
        )


def create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def find_process(pid: int | None, started: float | None) -> psutil.Process | None:
    """The live process with this pid *and* create time; None if gone, a zombie or reused."""
    if pid is None or started is None:
        return None
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - started) > 0.01:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    return process


def signal_group(pid: int, sig: int) -> None:
    """Signal ``pid``'s whole process group when it leads one (ours do, so a child it started,
    such as a balancer's HAProxy, gets the signal too), else just the process."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _signal(process: psutil.Process, sig: int) -> None:
    try:
        if process.is_running():
            signal_group(process.pid, sig)
    except psutil.Error:
        pass


@dataclass(frozen=True)
class StopResult:
    pid: int
    killed: bool  # True when SIGTERM was not enough within the grace period


def stop_processes(
    processes: Iterable[psutil.Process], grace_s: float = DEFAULT_GRACE_S
) -> list[StopResult]:
    """SIGTERM every process (and its group), SIGKILL what is still running after ``grace_s``."""
    alive = [p for p in processes if _running(p)]
    for process in alive:
        _signal(process, signal.SIGTERM)
    stubborn = _wait_gone(alive, grace_s)
    for process in stubborn:
        _signal(process, signal.SIGKILL)
    _wait_gone(stubborn, grace_s)
    return [StopResult(p.pid, killed=p in stubborn) for p in alive]


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_gone(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait until the processes have exited; those still running after ``timeout_s``.

    Polls instead of ``psutil.wait_procs``: that reaps our own children, and the Popen objects
    holding them would then report exit code 0 instead of the signal that ended them.
    """
    deadline = time.monotonic() + timeout_s
    remaining = [p for p in processes if _running(p)]
    while remaining and time.monotonic() < deadline:
        time.sleep(0.05)
        remaining = [p for p in remaining if _running(p)]
    return remaining


def log_tail(path: str | os.PathLike[str], lines: int = 15, max_bytes: int = 8192) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - max_bytes))
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def processes_marked(deployment_ids: Iterable[str]) -> list[psutil.Process]:
    """Processes of this user whose environment carries one of these deployment ids."""
    wanted = set(deployment_ids)
    if not wanted:
        return []
    found = []
    me = os.getpid()
    for process in psutil.process_iter():
        if process.pid == me:
            continue
        try:
            if process.environ().get(MARKER_ENV) in wanted:
                found.append(process)
        except psutil.Error:
            continue
    return found
