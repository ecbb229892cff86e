import json
import os
import subprocess

import pytest

from mltoolkit.local.cleanup import cleanup, owner_alive
from mltoolkit.local.processes import MARKER_ENV, NAME_ENV, create_time, start_process
from mltoolkit.local.records import DeploymentRecord, ProcessRecord, RecordStore
from tests.local.conftest import SLEEPER, python, running, wait_for


def dead_owner():
    """The pid and create time of a process that has exited."""
    owner = subprocess.Popen(python("pass"))
    started = create_time(owner.pid) or 1.0
    owner.wait(timeout=30)
    return owner.pid, started


def start_recorded(tmp_path, deployment_id, name, reaper, marked=True):
    log = tmp_path / f"{name}.log"
    env = {MARKER_ENV: deployment_id, NAME_ENV: name} if marked else {}
    popen = start_process(python(SLEEPER), log, env, parent_death_signal=False)
    reaper.append(popen.pid)
    wait_for(lambda: log.exists() and "ready" in log.read_text())
    return ProcessRecord(
        "replica", name, "node-0", 0, list(popen.args), str(log), popen.pid, create_time(popen.pid)
    )


def test_processes_of_a_dead_owner_are_stopped_and_the_record_removed(tmp_path, reaper):
    store = RecordStore(tmp_path / "state")
    pid, started = dead_owner()
    processes = [start_recorded(tmp_path, "d-1", f"d-{i}", reaper) for i in range(2)]
    store.write(DeploymentRecord("d-1", pid, started, "d", processes=processes))
    store.log_dir("d-1").mkdir()
    stopped = cleanup(store.state_dir, grace_s=20)
    assert sorted((s.deployment_id, s.name, s.pid, s.killed) for s in stopped) == [
        ("d-1", "d-0", processes[0].pid, False),
        ("d-1", "d-1", processes[1].pid, False),
    ]
    assert not any(running(p.pid) for p in processes)
    assert list(store) == []
    assert not store.log_dir("d-1").exists()
    assert cleanup(store.state_dir) == []  # nothing left to do


def test_a_live_owner_keeps_its_processes_unless_forced(tmp_path, reaper):
    store = RecordStore(tmp_path)
    me = os.getpid()
    record = DeploymentRecord("d-2", me, create_time(me), "d", processes=[
        start_recorded(tmp_path, "d-2", "d-0", reaper)
    ])
    store.write(record)
    assert owner_alive(record)
    assert cleanup(tmp_path) == []
    assert running(record.processes[0].pid)
    assert [s.name for s in cleanup(tmp_path, force=True, grace_s=20)] == ["d-0"]
    assert not running(record.processes[0].pid)


def test_a_reused_owner_pid_counts_as_dead(tmp_path, reaper):
    """Our own pid with another create time: the pid was recycled, the owner is gone."""
    store = RecordStore(tmp_path)
    me = os.getpid()
    entry = start_recorded(tmp_path, "d-3", "d-0", reaper)
    store.write(DeploymentRecord("d-3", me, create_time(me) - 1000, "d", processes=[entry]))
    assert [s.pid for s in cleanup(tmp_path, grace_s=20)] == [entry.pid]


def test_a_recycled_process_pid_is_not_touched(tmp_path, reaper):
    store = RecordStore(tmp_path)
    pid, started = dead_owner()
    entry = start_recorded(tmp_path, "d-4", "x", reaper, marked=False)
    entry.create_time -= 1000  # the recorded process was another one that had this pid
    store.write(DeploymentRecord("d-4", pid, started, "d", processes=[entry]))
    assert cleanup(tmp_path) == []
    assert running(entry.pid)
    assert list(store) == []


def test_unrecorded_processes_are_found_by_their_marker(tmp_path, reaper):
    """A process started just before its owner died, before its pid reached the record."""
    store = RecordStore(tmp_path)
    pid, started = dead_owner()
    entry = start_recorded(tmp_path, "d-5", "d-0", reaper)
    unrecorded = ProcessRecord("replica", "d-0", "node-0", 0, [], entry.log_path)
    store.write(DeploymentRecord("d-5", pid, started, "d", processes=[unrecorded]))
    assert [(s.name, s.pid) for s in cleanup(tmp_path, grace_s=20)] == [("d-0", entry.pid)]
    assert not running(entry.pid)


def test_a_record_naming_a_folder_outside_the_state_folder_deletes_nothing(tmp_path):
    """A record whose id is '../victimdir' used to make cleanup() remove $MLTOOLKIT_HOME/victimdir."""
    state = tmp_path / "home" / "local"
    state.mkdir(parents=True)
    victims = [tmp_path / "home" / "victimdir", tmp_path / "victim2", tmp_path / "victim3"]
    for victim in victims:
        victim.mkdir()
        (victim / "precious.txt").write_text("keep me")
    pid, started = dead_owner()
    for i, bad_id in enumerate(["../victimdir", str(tmp_path / "victim2"), "../../victim3", "..", "."]):
        record = DeploymentRecord(bad_id, pid, started, "d").to_dict()
        (state / f"bad-{i}.json").write_text(json.dumps(record))
    assert cleanup(state) == []
    assert all((victim / "precious.txt").read_text() == "keep me" for victim in victims)
    assert state.is_dir()


def test_the_store_refuses_ids_that_are_not_plain_names(tmp_path):
    store = RecordStore(tmp_path)
    for bad_id in ["../x", "a/b", "..", "", "/abs", "x\x00"]:
        with pytest.raises(ValueError, match="deployment id"):
            store.log_dir(bad_id)
        with pytest.raises(ValueError, match="deployment id"):
            store.path(bad_id)


def test_log_folders_of_interrupted_ups_are_removed(tmp_path):
    """A failed or interrupted up() keeps its logs for reading, with no record; cleanup() removes
    them later. Folders that are not deployment log folders stay."""
    store = RecordStore(tmp_path)
    orphan = store.log_dir("digits-1a2b3c4d")
    orphan.mkdir()
    (orphan / "digits-0.log").write_text("Traceback ...")
    me = os.getpid()
    store.write(DeploymentRecord("live-0a0b0c0d", me, create_time(me), "live"))
    live_logs = store.log_dir("live-0a0b0c0d")
    live_logs.mkdir()
    unrelated = tmp_path / "Not A Deployment"
    unrelated.mkdir()
    assert cleanup(tmp_path) == []
    assert not orphan.exists()
    assert live_logs.is_dir() and unrelated.is_dir()
