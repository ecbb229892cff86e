import os
import signal
import subprocess
import threading

import psutil

from mltoolkit.local.processes import (
    MARKER_ENV,
    Spawner,
    create_time,
    find_process,
    log_tail,
    processes_marked,
    signal_group,
    start_process,
    stop_processes,
)
from tests.local.conftest import SLEEPER, python, running, wait_for


def ready(log):
    return lambda: "ready" in log.read_text() if log.exists() else False


def test_child_gets_its_own_session_env_and_log(tmp_path, reaper):
    log = tmp_path / "logs" / "child.log"
    code = "import os, sys; print('out', os.environ['X_TEST']); print('err', file=sys.stderr)"
    popen = start_process(python(code), log, env={"X_TEST": "42"})
    reaper.append(popen.pid)
    assert popen.wait(timeout=30) == 0
    assert log.read_text() == "out 42\nerr\n"  # unbuffered, so in order

    sleeper = start_process(python(SLEEPER), tmp_path / "s.log")
    reaper.append(sleeper.pid)
    assert os.getsid(sleeper.pid) == sleeper.pid != os.getsid(0)
    assert os.getpgid(sleeper.pid) == sleeper.pid


def test_restarted_process_appends_to_its_log(tmp_path, reaper):
    log = tmp_path / "a.log"
    for word in ("first", "second"):
        popen = start_process(python(f"print('{word}')"), log)
        reaper.append(popen.pid)
        popen.wait(timeout=30)
    assert log.read_text().split() == ["first", "second"]


def test_find_process_checks_the_create_time(tmp_path, reaper):
    popen = start_process(python(SLEEPER), tmp_path / "s.log")
    reaper.append(popen.pid)
    started = create_time(popen.pid)
    assert find_process(popen.pid, started).pid == popen.pid
    assert find_process(popen.pid, started - 100) is None  # a recycled pid is not ours
    assert find_process(None, started) is None
    popen.kill()
    popen.wait(timeout=30)
    assert find_process(popen.pid, started) is None


def start_with_grandchild(tmp_path, reaper):
    """A child that starts a grandchild in its own process group; (child's Popen, grandchild pid)."""
    code = (
        "import subprocess, sys, time;"
        f"g = subprocess.Popen([sys.executable, '-c', {SLEEPER!r}]);"
        "print('grandchild', g.pid, flush=True); time.sleep(120)"
    )
    log = tmp_path / "c.log"
    popen = start_process(python(code), log)
    reaper.append(popen.pid)
    grandchild = int(wait_for(lambda: "grandchild" in log.read_text() and log.read_text().split()[1]))
    reaper.append(grandchild)
    return popen, grandchild


def test_stop_sends_sigterm_to_the_whole_group(tmp_path, reaper):
    popen, grandchild = start_with_grandchild(tmp_path, reaper)
    results = stop_processes([psutil.Process(popen.pid)], grace_s=20)
    assert [(r.pid, r.killed) for r in results] == [(popen.pid, False)]
    assert popen.wait(timeout=10) == -15
    wait_for(lambda: not running(grandchild))


def test_signal_group_kills_a_process_with_the_children_it_started(tmp_path, reaper):
    """What kill_balancer relies on: a data plane's HAProxy is a child of the balancer process."""
    popen, grandchild = start_with_grandchild(tmp_path, reaper)
    signal_group(popen.pid, signal.SIGKILL)
    assert popen.wait(timeout=10) == -9
    wait_for(lambda: not running(grandchild))
    signal_group(popen.pid, signal.SIGKILL)  # already gone: nothing to do, no error


def test_stop_kills_what_ignores_sigterm(tmp_path, reaper):
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "print('ready', flush=True); time.sleep(120)"
    )
    log = tmp_path / "stubborn.log"
    popen = start_process(python(code), log)
    reaper.append(popen.pid)
    wait_for(ready(log))
    results = stop_processes([psutil.Process(popen.pid)], grace_s=0.5)
    assert [(r.pid, r.killed) for r in results] == [(popen.pid, True)]
    assert popen.wait(timeout=10) == -9


def test_parent_death_signal_stops_children_of_a_killed_parent(tmp_path, reaper):
    """A parent python starts two sleepers (with and without the signal) and is SIGKILLed."""
    code = (
        "import sys; from mltoolkit.local.processes import start_process;"
        f"a = start_process([sys.executable, '-c', {SLEEPER!r}], {str(tmp_path / 'a.log')!r});"
        f"b = start_process([sys.executable, '-c', {SLEEPER!r}], {str(tmp_path / 'b.log')!r},"
        " parent_death_signal=False);"
        "print(a.pid, b.pid, flush=True); import time; time.sleep(120)"
    )
    parent = subprocess.Popen(python(code), stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    reaper.append(parent.pid)
    with_signal, without_signal = map(int, parent.stdout.readline().split())
    reaper.extend([with_signal, without_signal])
    wait_for(ready(tmp_path / "a.log"))
    wait_for(ready(tmp_path / "b.log"))
    parent.kill()
    parent.wait(timeout=10)
    wait_for(lambda: not running(with_signal))
    assert running(without_signal)  # what cleanup() is for


def test_spawner_children_outlive_the_calling_thread(tmp_path, reaper):
    """Linux sends the parent-death signal when the forking *thread* ends; the spawner's
    long-lived thread keeps children of short-lived callers (widget callbacks) alive."""
    spawner = Spawner()
    started = {}

    def direct():
        started["direct"] = start_process(python(SLEEPER), tmp_path / "d.log")

    def via_spawner():
        started["spawned"] = spawner.call(lambda: start_process(python(SLEEPER), tmp_path / "s.log"))

    for target in (direct, via_spawner):
        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
    reaper.extend(p.pid for p in started.values())
    assert started["direct"].wait(timeout=20) == -15  # its thread ended: SIGTERM
    assert started["spawned"].poll() is None
    spawner.close()  # the spawner's thread ends, so its children get the signal too
    assert started["spawned"].wait(timeout=20) == -15


def test_spawner_passes_exceptions_to_the_caller():
    spawner = Spawner()
    try:
        try:
            spawner.call(lambda: start_process(["/nonexistent/program"], "/dev/null"))
        except FileNotFoundError:
            pass
        else:
            raise AssertionError("expected FileNotFoundError")
        assert spawner.call(lambda: 7) == 7
    finally:
        spawner.close()


def test_processes_are_found_by_their_marker(tmp_path, reaper):
    marked = start_process(python(SLEEPER), tmp_path / "m.log", env={MARKER_ENV: "digits-x1"})
    other = start_process(python(SLEEPER), tmp_path / "o.log", env={MARKER_ENV: "digits-x2"})
    reaper.extend([marked.pid, other.pid])
    wait_for(ready(tmp_path / "m.log"))
    wait_for(ready(tmp_path / "o.log"))
    assert [p.pid for p in processes_marked(["digits-x1"])] == [marked.pid]
    assert processes_marked([]) == []


def test_log_tail(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log, lines=3) == "line 97\nline 98\nline 99"
    assert log_tail(tmp_path / "missing.log") == ""


def test_logs_are_readable_by_the_owner_only(tmp_path):
    log = tmp_path / "deployment" / "p.log"
    start_process(python("pass"), log, parent_death_signal=False).wait(timeout=30)
    assert log.stat().st_mode & 0o777 == 0o600
    assert log.parent.stat().st_mode & 0o777 == 0o700
