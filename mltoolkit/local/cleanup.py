"""Stop what dead owners left behind: processes of records whose ``up()`` caller is gone."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import psutil

from mltoolkit.local.processes import (
    DEFAULT_GRACE_S,
    MARKER_ENV,
    NAME_ENV,
    find_process,
    processes_marked,
    stop_processes,
)
from mltoolkit.local.records import DeploymentRecord, RecordStore, default_state_dir


@dataclass(frozen=True)
class StoppedProcess:
    """A process that ``cleanup()`` stopped."""

    deployment_id: str
    name: str
    pid: int
    killed: bool  # needed SIGKILL after the grace period


def owner_alive(record: DeploymentRecord) -> bool:
    return find_process(record.owner_pid, record.owner_create_time) is not None


def cleanup(
    state_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
    grace_s: float = DEFAULT_GRACE_S,
) -> list[StoppedProcess]:
    """Stop the processes of every record whose owner process is gone (every record if
    ``force``), remove those records and their logs, and say what was stopped.

    Processes are found by recorded pid + create time and also by the deployment id in their
    environment, which covers one started just before its owner died, before it was recorded.
    ``force=True`` also stops deployments of live owners, including this process's own.

    Log folders without a record (those an interrupted or failed ``up()`` kept) are removed too.
    Only paths inside the state folder are ever removed: a record whose id is not a plain name
    is ignored (see ``RecordStore``).
    """
    store = RecordStore(state_dir if state_dir is not None else default_state_dir())
    stale = [record for record in store if force or not owner_alive(record)]
    _remove_orphan_logs(store)
    if not stale:
        return []
    names: dict[int, tuple[str, str]] = {}
    targets: dict[int, psutil.Process] = {}
    for record in stale:
        for entry in record.processes:
            process = find_process(entry.pid, entry.create_time)
            if process is not None:
                targets[process.pid] = process
                names[process.pid] = (record.deployment_id, entry.name)
    for process in processes_marked(r.deployment_id for r in stale):
        if process.pid not in targets:
            targets[process.pid] = process
            names[process.pid] = _marked_name(process)
    results = stop_processes(targets.values(), grace_s=grace_s)
    for record in stale:
        store.remove(record.deployment_id)
        shutil.rmtree(store.log_dir(record.deployment_id), ignore_errors=True)
    return [StoppedProcess(*names[r.pid], pid=r.pid, killed=r.killed) for r in results]


def _remove_orphan_logs(store: RecordStore) -> None:
    """Remove log folders whose deployment has no record. A live ``up()`` writes its record
    before its first log and removes its logs after its record, so none of its logs go."""
    recorded = {record.deployment_id for record in store}
    for deployment_id in store.log_dirs():
        if deployment_id not in recorded and store.read(deployment_id) is None:
            shutil.rmtree(store.log_dir(deployment_id), ignore_errors=True)


def _marked_name(process: psutil.Process) -> tuple[str, str]:
    try:
        env = process.environ()
    except psutil.Error:
        return ("?", "?")
    return (env.get(MARKER_ENV, "?"), env.get(NAME_ENV, "?"))
