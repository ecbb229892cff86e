"""``LocalTarget``: a deployment as real processes on this machine.

Replicas (``python -m mltoolkit.serving``) are spread round-robin over labelled nodes, a
balancer (``python -m mltoolkit.balancer``) fronts them, a supervisor thread restarts the ones
that die, and a JSON record per deployment lets ``cleanup()`` stop whatever a crashed kernel left.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd
import psutil

from mltoolkit.endpoint import Endpoint
from mltoolkit.errors import SpecError
from mltoolkit.local.cleanup import StoppedProcess, cleanup as cleanup_stale
from mltoolkit.local.commands import (
    BALANCER,
    REPLICA,
    STANDBY,
    ProcessSpec,
    check_data_plane_installed,
    check_node_slowdown,
    check_nodes,
    check_runnable_locally,
    plan_frame,
    plan_processes,
    standby_argv,
    thread_env,
    ports_needed,
)
from mltoolkit.local.errors import LocalTargetError
from mltoolkit.local.ports import free_ports
from mltoolkit.local.processes import (
    DEFAULT_GRACE_S,
    MARKER_ENV,
    NAME_ENV,
    Spawner,
    create_time,
    find_process,
    log_tail,
    processes_marked,
    signal_group,
    start_process,
    stop_processes,
)
from mltoolkit.local.readiness import (
    Waiting,
    http_answers,
    http_get_json,
    wait_ready,
    wait_until,
)
from mltoolkit.local.records import (
    DeploymentRecord,
    ProcessRecord,
    RecordStore,
    default_state_dir,
    new_deployment_id,
)
from mltoolkit.local.supervisor import Liveness, Restartable, Supervisor
from mltoolkit.serving.config import check_service_ms
from mltoolkit.planning import Plan

if TYPE_CHECKING:
    from mltoolkit.observe.traffic import TrafficSnapshot

Progress = Callable[[str], None]
_PORT_CLASH = "address already in use"
_START_ATTEMPTS = 3  # a port chosen free can be taken by another program before we bind it
_PROBE_INTERVAL_S = 0.5  # liveness probes; each waits at most this long for its answer


@dataclass
class ManagedProcess:
    """A started process: what it is, its Popen handle, its record and its supervision state."""

    spec: ProcessSpec
    popen: subprocess.Popen[bytes]
    record: ProcessRecord
    supervision: Restartable

    def exit_code(self) -> int | None:
        return self.popen.poll()


def _print_progress(message: str) -> None:
    print(message, flush=True)


def _progress_function(progress: bool | Progress | None) -> Progress:
    if progress is None or progress is False:
        return lambda message: None
    if progress is True:
        return _print_progress
    if callable(progress):
        return progress
    raise SpecError("progress", progress, "True (print), False/None (quiet) or a callable(str)")


def _check_positive(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise SpecError(field, value, "a number of seconds > 0")
    return float(value)


class LocalTarget:
    """Deploy a ``DeploymentSpec`` as processes on this machine.

    ``nodes`` labelled groups ("node-0", ...) stand in for cluster nodes; replicas are spread
    over them round-robin. Process records and logs live under ``state_dir`` (default
    ``$MLTOOLKIT_HOME/local``). ``progress``: True prints one line per step, False is quiet, a
    callable receives each line. ``parent_death_signal`` asks Linux to SIGTERM the processes
    if this Python process dies (best effort; ``cleanup()`` covers the rest).

    ``liveness_timeout_s`` (with ``restart``): a process that is alive but has not answered
    its health check for longer than this is killed and restarted, as a Kubernetes liveness
    probe would (a hung or SIGSTOPped replica); None turns the check off. A (re)started process
    has ``ready_timeout_s`` to answer its first check.

    ``standby`` (with ``restart``): keep one warm spare replica process per deployment, the
    model already loaded, that takes over a replica that died or hung, so a restart costs a
    fraction of a second instead of the seconds of importing scikit-learn and unpickling
    (the spare checks the model file's hash again when it takes over); a new spare is started
    after each take-over.

    ``node_slowdown`` (e.g. ``{"node-2": 3.0}``) emulates slower machines for demos and tests of
    balancing: replicas on that node run with the server's ``--slowdown`` factor, staying busy
    (sleeping, not burning CPU) for factor - 1 times each predict call's duration after it.
    ``service_ms`` (e.g. 20) emulates service time instead: every replica serves one request at
    a time, holding it ``service_ms x`` its node's slowdown in a sleep, so replicas behave like
    separate single-core machines however many share this host (mltoolkit/serving/emulation.py).

    >>> with LocalTarget(nodes=3) as target:      # doctest: +SKIP
    ...     target.up(spec).predict(X[:3])
    """

    def __init__(
        self,
        nodes: int = 1,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        ready_timeout_s: float = 60.0,
        restart: bool = True,
        progress: bool | Progress | None = True,
        grace_s: float = DEFAULT_GRACE_S,
        parent_death_signal: bool = True,
        node_slowdown: dict[str, float] | None = None,
        service_ms: float = 0.0,
        liveness_timeout_s: float | None = 3.0,
        standby: bool = True,
    ) -> None:
        self.nodes = check_nodes(nodes)
        self.liveness_timeout_s = (
            None
            if liveness_timeout_s is None
            else _check_positive("LocalTarget.liveness_timeout_s", liveness_timeout_s)
        )
        self.node_slowdown = check_node_slowdown(node_slowdown, self.nodes)
        self.service_ms = check_service_ms("LocalTarget.service_ms", service_ms)
        self.ready_timeout_s = _check_positive("LocalTarget.ready_timeout_s", ready_timeout_s)
        if not isinstance(restart, bool):
            raise SpecError("LocalTarget.restart", restart, "True or False")
        self.restart = restart
        if not isinstance(standby, bool):
            raise SpecError("LocalTarget.standby", standby, "True or False")
        self.standby = standby
        self._standby: subprocess.Popen[bytes] | None = None
        self._spec: Any = None
        self.grace_s = _check_positive("LocalTarget.grace_s", grace_s)
        self._progress = _progress_function(progress)
        self.parent_death_signal = bool(parent_death_signal)
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self._store = RecordStore(self.state_dir)
        self._spawner = Spawner()
        self._lock = threading.RLock()
        self._processes: list[ManagedProcess] = []
        self._record: DeploymentRecord | None = None
        self._supervisor: Supervisor | None = None
        self._endpoint: Endpoint | None = None
        self._sampler = _new_sampler()

    def __repr__(self) -> str:
        state = (
            f"up: {self._record.deployment_id} at {self._endpoint.url if self._endpoint else '?'}"
            if self._record is not None
            else "down"
        )
        slower = f", node_slowdown={self.node_slowdown}" if self.node_slowdown else ""
        if self.service_ms:
            slower += f", service_ms={self.service_ms:g}"
        return f"LocalTarget(nodes={self.nodes}{slower}, {state})"

    # ---------------------------------------------------------------- describe / plan

    def plan(self, spec: Any) -> Plan:
        """What ``up(spec)`` would start: a ``Plan`` (the type ``GKETarget.plan`` returns too)
        whose ``resources`` has one row per process (ports are chosen at start); no cost."""
        processes = plan_frame(spec, self._plan_processes(spec))
        return Plan(
            title=f"{len(processes)} processes on this machine, model {spec.model.name}",
            resources=processes,
            notes=("Local processes: nothing is billed.",),
        )

    # ---------------------------------------------------------------- up / down

    @property
    def endpoint(self) -> Endpoint:
        if self._endpoint is None:
            raise LocalTargetError("LocalTarget is not up: call up(spec) first")
        return self._endpoint

    @property
    def is_up(self) -> bool:
        return self._record is not None

    @property
    def deployment_id(self) -> str | None:
        return self._record.deployment_id if self._record is not None else None

    @property
    def log_dir(self) -> Path | None:
        return self._store.log_dir(self._record.deployment_id) if self._record else None

    def up(self, spec: Any, *, progress: bool | Progress | None = None) -> Endpoint:
        """Start the replicas and the balancer, wait until they answer, return the endpoint.

        On any failure (including KeyboardInterrupt) everything started is stopped first.
        """
        say = self._progress if progress is None else _progress_function(progress)
        if self._record is not None:
            raise LocalTargetError(
                f"LocalTarget is already up (deployment {self._record.deployment_id}); "
                "call down() before up() again"
            )
        check_runnable_locally(spec)
        check_data_plane_installed(spec, shutil.which("haproxy"))
        stopped = self.cleanup(self.state_dir, grace_s=self.grace_s)
        if stopped:
            say(f"stopped {len(stopped)} process(es) left by a previous session")
        started = time.monotonic()
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._start(spec, say)
                break
            except _PortClash as clash:
                self._teardown(keep_logs=False)
                if attempt == _START_ATTEMPTS:
                    raise LocalTargetError(str(clash)) from None
                say(f"{clash.label}: port {clash.port} was taken meanwhile; retrying with new ports")
            except BaseException:
                self._teardown(keep_logs=True)
                raise
        assert self._record is not None
        balancer = self._find(BALANCER)
        self._endpoint = Endpoint(balancer.spec.url, spec.model.name)
        with self._lock:
            self._record.endpoint_url = balancer.spec.url
            self._store.write(self._record)
        self._spec = spec
        if self.restart and self.standby:
            with self._lock:
                self._start_standby()
        if self.restart:
            liveness = None
            if self.liveness_timeout_s is not None:
                liveness = Liveness(
                    timeout_s=self.liveness_timeout_s,
                    interval_s=min(_PROBE_INTERVAL_S, self.liveness_timeout_s / 2),
                    startup_s=self.ready_timeout_s,
                )
            self._supervisor = Supervisor(self._restartables, liveness=liveness)
            self._supervisor.start()
        say(
            f"endpoint {balancer.spec.url} ready: model {spec.model.name}, {spec.replicas} "
            f"replica(s) on {min(self.nodes, spec.replicas)} node(s) "
            f"({time.monotonic() - started:.1f} s)"
        )
        return self._endpoint

    def _start(self, spec: Any, say: Progress) -> None:
        """One attempt: record, start every process, wait for health. Raises on failure."""
        specs = self._plan_processes(spec, free_ports(ports_needed(spec)))
        deployment_id = new_deployment_id(spec.model.name)
        log_dir = self._store.log_dir(deployment_id)
        record = DeploymentRecord(
            deployment_id=deployment_id,
            owner_pid=os.getpid(),
            owner_create_time=create_time(os.getpid()) or 0.0,
            model_name=spec.model.name,
            processes=[
                ProcessRecord(
                    role=p.role,
                    name=p.name,
                    node=p.node,
                    port=p.port,
                    command=list(p.argv),
                    log_path=str(log_dir / f"{p.name}.log"),
                )
                for p in specs
            ],
        )
        with self._lock:
            self._record = record
            self._store.write(record)  # before anything starts
        atexit.register(self.down)
        balancers = spec.balancer.balancers
        front = "a balancer" if balancers == 1 else f"{balancers} balancers on one port"
        say(f"starting {spec.replicas} replica(s) and {front}; logs in {log_dir}")
        for process_spec, process_record in zip(specs, record.processes):
            self._launch(process_spec, process_record)

        def on_ready(name: str, elapsed: float) -> None:
            say(f"{self._by_name(name).spec.label} ready ({elapsed:.1f} s)")

        deadline = time.monotonic() + self.ready_timeout_s
        waiting = {m.spec.name: Waiting(m.spec.ready_url, m.exit_code) for m in self._processes}
        result = wait_ready(waiting, self.ready_timeout_s, on_ready)
        if not result.ok:
            self._fail(result.exited, result.pending)
        balancer = self._find(BALANCER)
        remaining = max(0.0, deadline - time.monotonic())
        if not wait_until(self._all_replicas_healthy, remaining):
            raise LocalTargetError(
                f"the balancer at {balancer.spec.url} did not report every replica healthy "
                f"within {self.ready_timeout_s} s: {self._replicas_summary()}"
            )

    def _launch(self, spec: ProcessSpec, record: ProcessRecord) -> ManagedProcess:
        popen = self._spawn(spec, record)
        managed = ManagedProcess(
            spec=spec,
            popen=popen,
            record=record,
            supervision=Restartable(
                name=spec.name,
                exit_code=lambda: managed.exit_code(),
                restart=lambda: self._restart(managed),
                started_at=time.monotonic(),
                live=lambda: http_answers(spec.live_url, timeout_s=_PROBE_INTERVAL_S),
                kill=lambda reason: self._kill_hung(managed, reason),
            ),
        )
        with self._lock:
            self._processes.append(managed)
        return managed

    def _spawn(self, spec: ProcessSpec, record: ProcessRecord) -> subprocess.Popen[bytes]:
        assert self._record is not None
        env = {**spec.env, MARKER_ENV: self._record.deployment_id, NAME_ENV: spec.name}
        popen = self._spawner.call(
            lambda: start_process(spec.argv, record.log_path, env, self.parent_death_signal)
        )
        with self._lock:
            record.pid = popen.pid
            record.create_time = create_time(popen.pid)
            self._store.write(self._record)
        return popen

    def _restart(self, managed: ManagedProcess) -> None:
        with self._lock:
            if self._record is None:
                return
            code = managed.popen.poll()
            with open(managed.record.log_path, "ab") as log:
                log.write(
                    f"\n--- mltoolkit {_now()}: exited with code {code}; restarting ---\n".encode()
                )
            taken_over = managed.spec.role == REPLICA and self._activate_standby(managed)
            if not taken_over:
                managed.popen = self._spawn(managed.spec, managed.record)
            managed.record.restarts += 1
            self._store.write(self._record)
            if taken_over:
                self._start_standby()

    def _start_standby(self) -> None:
        """Start the warm spare (under ``self._lock``); its output goes to standby.log until
        it takes over a replica."""
        assert self._record is not None and self._spec is not None
        spec = self._spec
        env = {
            **thread_env(spec.cpu_millicores),
            MARKER_ENV: self._record.deployment_id,
            NAME_ENV: STANDBY,
        }
        log_path = self._store.log_dir(self._record.deployment_id) / f"{STANDBY}.log"
        argv = standby_argv(spec)
        self._standby = self._spawner.call(
            lambda: start_process(argv, log_path, env, self.parent_death_signal, stdin_pipe=True)
        )

    def _activate_standby(self, managed: ManagedProcess) -> bool:
        """Hand ``managed``'s port, id and log to the warm spare; False if there is none."""
        standby, self._standby = self._standby, None
        if standby is None or standby.poll() is not None or standby.stdin is None:
            return False
        spec = managed.spec
        order = {
            "port": spec.port,
            "replica_id": spec.name,
            "slowdown": spec.slowdown or 1.0,
            "service_ms": self.service_ms,
            "log_path": managed.record.log_path,
        }
        try:
            standby.stdin.write((json.dumps(order) + "\n").encode())
            standby.stdin.close()
        except OSError:  # it died meanwhile
            standby.kill()
            standby.wait()
            return False
        managed.popen = standby
        managed.record.pid = standby.pid
        managed.record.create_time = create_time(standby.pid)
        with open(managed.record.log_path, "ab") as log:
            log.write(f"--- mltoolkit {_now()}: standby pid {standby.pid} takes over ---\n".encode())
        return True

    def _kill_hung(self, managed: ManagedProcess, reason: str) -> None:
        """SIGKILL a process that is alive but hung (its whole group: a balancer's HAProxy too);
        the supervisor then restarts it."""
        with self._lock:
            if self._record is None or managed.popen.poll() is not None:
                return
            with open(managed.record.log_path, "ab") as log:
                log.write(f"\n--- mltoolkit {_now()}: {reason}; killing it ---\n".encode())
            signal_group(managed.popen.pid, signal.SIGKILL)

    def _fail(self, exited: dict[str, int], pending: list[str]) -> None:
        lines = []
        for name, code in exited.items():
            managed = self._by_name(name)
            tail = log_tail(managed.record.log_path)
            if _PORT_CLASH in tail.lower():
                raise _PortClash(managed.spec.label, managed.spec.port, tail)
            lines.append(self._describe_failure(managed, f"exited with code {code}", tail))
        if exited:
            names = ", ".join(pending)
            if names:
                lines.append(f"- still starting when the wait stopped: {names}")
        else:
            for name in pending:
                managed = self._by_name(name)
                reason = f"not ready after {self.ready_timeout_s} s (GET {managed.spec.ready_url})"
                tail = log_tail(managed.record.log_path)
                lines.append(self._describe_failure(managed, reason, tail))
        failed = len(exited) or len(pending)
        raise LocalTargetError(
            f"{failed} of {len(self._processes)} process(es) did not come up; everything "
            f"started has been stopped:\n" + "\n".join(lines)
        )

    @staticmethod
    def _describe_failure(managed: ManagedProcess, reason: str, tail: str) -> str:
        spec = managed.spec
        text = f"- {spec.label} (pid {managed.popen.pid}, port {spec.port}): {reason}"
        shown = "\n".join("    " + line for line in tail.splitlines()) or "    (empty)"
        return f"{text}\n  log {managed.record.log_path}, last lines:\n{shown}"

    def down(self) -> None:
        """Stop the supervisor, then the balancer, then the replicas; remove the record.

        SIGTERM first (graceful: in-flight requests finish), SIGKILL after ``grace_s``.
        Safe to call more than once.
        """
        self._teardown(keep_logs=False)

    def _teardown(self, keep_logs: bool) -> None:
        with self._lock:
            supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.stop()
        with self._lock:
            processes, self._processes = self._processes, []
            record, self._record = self._record, None
            standby, self._standby = self._standby, None
            self._endpoint = None
        if standby is not None and standby.poll() is None:
            stop_processes([psutil.Process(standby.pid)], grace_s=self.grace_s)
            standby.wait()
        try:
            for role in (BALANCER, REPLICA):  # the balancer first, so it stops sending
                stop_processes(
                    [p for m in processes if m.spec.role == role if (p := _live(m)) is not None],
                    grace_s=self.grace_s,
                )
        finally:
            self._spawner.close()  # waits for a start still in progress (an interrupted up())
            if record is not None:  # anything started but not yet recorded carries the marker
                stop_processes(processes_marked([record.deployment_id]), grace_s=self.grace_s)
            for managed in processes:
                managed.popen.poll()  # reap
            atexit.unregister(self.down)
            if record is not None:
                self._store.remove(record.deployment_id)
                if not keep_logs:
                    shutil.rmtree(self._store.log_dir(record.deployment_id), ignore_errors=True)

    def __enter__(self) -> LocalTarget:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.down()

    @staticmethod
    def cleanup(
        state_dir: str | os.PathLike[str] | None = None,
        force: bool = False,
        grace_s: float = DEFAULT_GRACE_S,
    ) -> list[StoppedProcess]:
        """Stop processes recorded by owners that are gone (all, with ``force``); see
        ``mltoolkit.local.cleanup.cleanup``. Safe to call any time, from any process."""
        return cleanup_stale(state_dir, force=force, grace_s=grace_s)

    # ---------------------------------------------------------------- use / measure

    def status(self) -> pd.DataFrame:
        """One row per process: role, name, node, slowdown (replicas' emulated slowness), pid,
        port, alive, restarts, url (where this process alone answers: with K > 1 balancers, each
        one's admin port; ``port`` is the shared endpoint port), log."""
        columns = [
            "role", "name", "node", "slowdown", "pid", "port", "alive", "restarts", "url", "log",
        ]  # fmt: skip
        with self._lock:
            rows = [
                {
                    "role": m.spec.role,
                    "name": m.spec.name,
                    "node": m.spec.node,
                    "slowdown": m.spec.slowdown,
                    "pid": m.popen.pid,
                    "port": m.spec.port,
                    "alive": m.popen.poll() is None,
                    "restarts": m.record.restarts,
                    "url": m.spec.own_url,
                    "log": m.record.log_path,
                }
                for m in self._processes
            ]
        return pd.DataFrame(rows, columns=columns)

    def replica_stats(self) -> pd.DataFrame:
        """The balancer's counters, one row per replica (``GET /-/replicas``)."""
        answer = self._balancer_replicas()
        frame = pd.DataFrame(
            answer["replicas"],
            columns=["name", "url", "node", "healthy", "in_flight", "served", "failed"],
        )
        frame.attrs["policy"] = answer.get("policy")
        return frame

    def load_test(self, **kwargs: Any) -> pd.DataFrame:
        """``mltoolkit.observe.load_test(self.endpoint, **kwargs)``."""
        from mltoolkit.observe import load_test

        return load_test(self.endpoint, **kwargs)

    def predict_batch(self, data: Any, **options: Any) -> Any:
        """``self.endpoint.predict_batch`` (see ``Endpoint.predict_batch``), with two chunks in
        flight per replica unless ``in_flight`` is given."""
        return self.run_batch(data, **options).result

    def run_batch(self, data: Any, **options: Any) -> Any:
        """``self.endpoint.run_batch``; its ``summary()`` knows each replica's node."""
        endpoint = self.endpoint
        with self._lock:
            replicas = [m.spec for m in self._processes if m.spec.role == REPLICA]
        options.setdefault("in_flight", max(1, 2 * len(replicas)))
        options.setdefault("nodes", {r.name: str(r.node) for r in replicas})
        return endpoint.run_batch(data, **options)

    def utilization(
        self, samples: int = 1, interval_s: float = 1.0, by: str = "node"
    ) -> pd.DataFrame:
        """CPU and memory of the replica processes (read from the OS) with the balancer's
        counters: ``samples`` readings ``interval_s`` apart, one row per node (``by="node"``)
        or per replica (``by="replica"``) per reading. Columns as in docs/architecture.md."""
        from mltoolkit.observe import ProcessRef, by_node

        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise SpecError("utilization.samples", samples, "a whole number >= 1")
        interval_s = _check_positive("utilization.interval_s", interval_s)
        if by not in ("node", "replica"):
            raise SpecError("utilization.by", by, "'node' or 'replica'")
        if self._record is None:
            raise LocalTargetError("LocalTarget is not up: call up(spec) first")
        frames = []
        for i in range(samples):
            if i:
                time.sleep(interval_s)
            with self._lock:
                refs = [
                    ProcessRef(
                        node=str(m.spec.node),
                        replica=m.spec.name,
                        pid=m.popen.pid,
                        cpu_request_cores=(m.spec.cpu_millicores or 0) / 1000,
                        memory_request_bytes=m.spec.memory_bytes or 0,
                    )
                    for m in self._processes
                    if m.spec.role == REPLICA
                ]
            try:
                counters: dict[str, Any] | None = self._balancer_replicas()
            except (OSError, ValueError):
                counters = None  # the balancer is restarting: counters NA for this reading
            frames.append(self._sampler.sample(refs, counters))
        replicas = pd.concat(frames, ignore_index=True)
        return replicas if by == "replica" else by_node(replicas)

    def latency(self, window_s: float | None = None, by: str = "replica") -> pd.DataFrame:
        """Counts and latency quantiles of the real traffic the balancer(s) served, one row per
        replica (``by="node"``: per node), from ``GET /-/metrics?format=json`` of each balancer,
        summed over K balancers. ``window_s`` None: since they started; else two readings
        ``window_s`` apart. Columns in docs/architecture.md (``mltoolkit.observe.traffic``)."""
        from mltoolkit.observe.traffic import check_latency_args, read_latency

        check_latency_args(window_s, by)
        if self._record is None:
            raise LocalTargetError("LocalTarget is not up: call up(spec) first")
        return read_latency(self._traffic_snapshot, window_s, by)

    def _traffic_snapshot(self) -> TrafficSnapshot:
        from mltoolkit.observe.traffic import traffic_snapshot

        with self._lock:
            urls = [m.spec.own_url for m in self._processes if m.spec.role == BALANCER]
        documents = []
        for url in urls:
            try:
                documents.append(http_get_json(url + "/-/metrics?format=json"))
            except (OSError, ValueError):
                continue  # a balancer restarting: its counts start again from zero
        return traffic_snapshot(documents, at=time.monotonic())

    def logs(self, name: str, lines: int = 20) -> str:
        """The last ``lines`` lines of one process's log (stdout and stderr together)."""
        with self._lock:
            matches = [m for m in self._processes if m.spec.name == name]
            if not matches:
                names = [m.spec.name for m in self._processes]
                raise SpecError("name", name, f"one of the processes {names}")
            return log_tail(matches[0].record.log_path, lines=lines)

    def kill_balancer(self, name: str | None = None) -> int:
        """SIGKILL one balancer (the first without ``name``) with its process group, so that the
        HAProxy of ``data_plane="haproxy"`` does not outlive it; the supervisor restarts it. With
        ``BalancerSpec.balancers`` > 1 the others keep serving the endpoint. Returns its pid."""
        with self._lock:
            balancers = [m for m in self._processes if m.spec.role == BALANCER]
            if not balancers:
                raise LocalTargetError("LocalTarget is not up: there is no balancer to kill")
            names = [m.spec.name for m in balancers]
            if name is not None and name not in names:
                raise SpecError("name", name, f"one of the balancers {names}")
            popen = balancers[names.index(name) if name is not None else 0].popen
            if popen.poll() is None:
                signal_group(popen.pid, signal.SIGKILL)
            return popen.pid

    def kill_replica(self, name: str) -> int:
        """SIGKILL one replica (to watch failover); the supervisor restarts it. Returns its pid."""
        with self._lock:
            replicas = [m for m in self._processes if m.spec.role == REPLICA]
            if not replicas:
                raise LocalTargetError("LocalTarget is not up: there is no replica to kill")
            matches = [m for m in replicas if m.spec.name == name]
            if not matches:
                raise SpecError("name", name, f"one of the replicas {[m.spec.name for m in replicas]}")
            popen = matches[0].popen
            if popen.poll() is None:
                signal_group(popen.pid, signal.SIGKILL)
            return popen.pid

    # ---------------------------------------------------------------- helpers

    def _plan_processes(self, spec: Any, ports: list[int] | None = None) -> list[ProcessSpec]:
        return plan_processes(
            spec, self.nodes, ports, node_slowdown=self.node_slowdown, service_ms=self.service_ms
        )

    def _restartables(self) -> list[Restartable]:
        with self._lock:
            return [m.supervision for m in self._processes]

    def _find(self, role: str) -> ManagedProcess:
        return next(m for m in self._processes if m.spec.role == role)

    def _by_name(self, name: str) -> ManagedProcess:
        return next(m for m in self._processes if m.spec.name == name)

    def _balancer_replicas(self) -> dict[str, Any]:
        """``GET /-/replicas`` of every balancer, merged (counts summed over K balancers)."""
        from mltoolkit.observe.traffic import merge_replica_reports

        if self._endpoint is None and self._record is None:
            raise LocalTargetError("LocalTarget is not up: call up(spec) first")
        with self._lock:
            urls = [m.spec.own_url for m in self._processes if m.spec.role == BALANCER]
        return merge_replica_reports([http_get_json(url + "/-/replicas") for url in urls])

    def _all_replicas_healthy(self) -> bool:
        try:
            replicas = self._balancer_replicas()["replicas"]
        except (OSError, ValueError, KeyError):
            return False
        return bool(replicas) and all(r.get("healthy") for r in replicas)

    def _replicas_summary(self) -> str:
        try:
            replicas = self._balancer_replicas()["replicas"]
        except (OSError, ValueError, KeyError) as exc:
            return f"GET /-/replicas failed: {exc}"
        return ", ".join(f"{r.get('name')}: healthy={r.get('healthy')}" for r in replicas)


class _PortClash(LocalTargetError):
    def __init__(self, label: str, port: int, tail: str) -> None:
        super().__init__(f"{label} could not bind port {port}:\n{tail}")
        self.label = label
        self.port = port


def _new_sampler() -> Any:
    from mltoolkit.observe import ProcessSampler

    return ProcessSampler()


def _now() -> str:
    """Wall-clock time for the lines the target writes into process logs."""
    return time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"


def _live(managed: ManagedProcess) -> psutil.Process | None:
    return find_process(managed.record.pid, managed.record.create_time)
