"""Helpers for tests that start real child processes; nothing they start outlives the test."""

import os
import signal
import sys

import psutil
import pytest

from tests.waiting import wait_for  # noqa: F401 - re-exported to the local tests

SLEEPER = "import time; print('ready', flush=True); time.sleep(120)"


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]




def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def processes_of(home):
    """Processes other than this one started under this test's MLTOOLKIT_HOME: found by the
    environment they inherited or by the model path (under the home) in their command line."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get("MLTOOLKIT_HOME") == str(home) or any(
                str(home) in part for part in process.cmdline()
            ):
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def reaper():
    """Register pids here; whatever is still running at the end is SIGKILLed (with its group)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not any(running(pid) for pid in pids))


@pytest.fixture
def home(_isolated_home):
    return _isolated_home
