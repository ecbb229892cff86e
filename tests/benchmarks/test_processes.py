"""benchmarks/peers/processes.py: servers are stopped with every child they started."""

import os
import signal
import sys
import time

import pytest

from peers.processes import ServerFailed, ServerProcess, free_ports, group_cpu_s, pinned

# A "server" that starts a grandchild and then ignores SIGTERM, like a stubborn process tree.
STUBBORN = (
    "import os, signal, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
    "print(child.pid, flush=True)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "time.sleep(300)\n"
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead for our purpose
        return stat.read().split()[2] != "Z"


def test_stop_kills_the_whole_group_even_when_sigterm_is_ignored(tmp_path):
    log = tmp_path / "server.log"
    server = ServerProcess("stubborn", [sys.executable, "-c", STUBBORN], log)
    group = server.process.pid  # its own process group
    try:
        deadline = time.monotonic() + 30
        while not log.read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(log.read_text().split()[0])
        parent = server.process.pid
        assert alive(parent) and alive(child)
        server.stop(timeout_s=1)
        deadline = time.monotonic() + 30
        while (alive(parent) or alive(child)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(parent) and not alive(child)
        server.stop()  # idempotent
    finally:  # whatever happened above, leave nothing running
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_server_that_exits_before_ready_fails_with_its_log(tmp_path):
    command = [sys.executable, "-c", "import sys; print('cannot bind'); sys.exit(3)"]
    with ServerProcess("broken", command, tmp_path / "log") as server:
        with pytest.raises(ServerFailed, match="(?s)exited with 3.*cannot bind"):
            server.wait_ready("http://127.0.0.1:9/ready", timeout_s=30)


def test_a_missing_program_is_a_clear_failure(tmp_path):
    with pytest.raises(ServerFailed, match="cannot start 'no-such-server'"):
        ServerProcess("x", ["no-such-server"], tmp_path / "log")


def test_pinning_and_ports():
    assert pinned(["nginx", "-c", "x"], 1) == ["taskset", "-c", "1", "nginx", "-c", "x"]
    assert pinned(["nginx"], None) == ["nginx"]
    ports = free_ports(3)
    assert len(set(ports)) == 3 and all(1024 <= p <= 65535 for p in ports)


# A "server" that sleeps while its child burns 0.5 s of CPU in a second thread, then idles.
BUSY_CHILD = (
    "import subprocess, sys, time\n"
    "burn = ('import threading, time\\n'\n"
    "        'def spin():\\n'\n"
    "        '    start = time.thread_time()\\n'\n"
    "        '    while time.thread_time() - start < 0.5: pass\\n'\n"
    "        't = threading.Thread(target=spin); t.start(); t.join()\\n'\n"
    "        'print(\"burnt\", flush=True); time.sleep(300)\\n')\n"
    "subprocess.Popen([sys.executable, '-c', burn])\n"
    "time.sleep(300)\n"
)


def test_group_cpu_counts_every_thread_of_every_process_in_the_group(tmp_path):
    log = tmp_path / "server.log"
    with ServerProcess("busy", [sys.executable, "-c", BUSY_CHILD], log) as server:
        deadline = time.monotonic() + 60
        while "burnt" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu = group_cpu_s(server.process.pid)
    # the child's thread ran 0.5 s (10 ms ticks may round a little off); the two interpreters'
    # start-ups add a little, the leader (asleep) next to nothing, and nothing outside the group
    # (this test's own process) counts
    assert 0.45 <= cpu < 0.5 + 1.0
    assert group_cpu_s(2**22 + 12345) == 0.0  # no such group (above the kernel's pid_max)
