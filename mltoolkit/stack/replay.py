"""A recording stand-in for the Pulumi CLI: checks argv, replays output and engine events.

``ReplayPulumiCommand`` takes the place of ``pulumi.automation.PulumiCommand`` (like httpx's
``MockTransport`` takes the place of a network): the Automation API runs unchanged on top of
it — workspace, stack selection, config, ``--event-log`` streaming, output and history parsing —
while the "CLI" is this object. It keeps a small model of the backend (stacks, their resource
counts, outputs, config, locks), so stack commands answer like the real CLI, and it replays
*scenarios* for the engine commands (``up``, ``preview``, ``refresh``, ``destroy``): stdout,
stderr, exit code and engine events, recorded in the shape of the real CLI (see
``tests/fixtures/pulumi/README.md``).

Every call is checked the way the CLI's flag parser would: an unknown flag, a missing
``--stack``/``--yes``/``--non-interactive``, or an ``--client`` address where no language
runtime answers raises :class:`UnexpectedCall` (an AssertionError, so tests fail loudly).
Engine events go where the SDK asked: to the gRPC ``Events`` service at ``tcp://host:port``
(CLI > 3.205) or appended to the event-log file (older CLIs).

Not for production use: nothing here touches a cloud.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import grpc
import yaml
from semver import VersionInfo

from mltoolkit.stack.automation import CommandResult, PulumiCommand, create_command_error


class UnexpectedCall(AssertionError):
    """The fake CLI received argv the real CLI would reject (or the test did not script)."""


@dataclass
class Scenario:
    """One replayed engine command.

    ``events`` are engine events as the CLI emits them (``apitype.EngineEvent`` JSON);
    ``interrupt_after`` raises KeyboardInterrupt after that many events (a Ctrl-C while the
    CLI runs) and leaves the stack locked with pending operations; ``outputs`` (with
    ``secret_outputs``) and ``resource_count`` become the stack's state if the command
    succeeds; ``pace_s`` waits between events.
    """

    command: str
    events: list[dict[str, Any]] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: list[str] = field(default_factory=list)
    resource_count: int | None = None
    interrupt_after: int | None = None
    pace_s: float = 0.0
    description: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        for key in ("stdout", "stderr"):
            if isinstance(values.get(key), list):
                values[key] = "\n".join(values[key])
        return cls(**values)

    @classmethod
    def load(cls, path: str | os.PathLike[str], **overrides: Any) -> Scenario:
        data = json.loads(Path(path).read_text())
        data.update(overrides)
        return cls.from_dict(data)


@dataclass
class Call:
    """One CLI invocation as the process would receive it."""

    argv: list[str]
    cwd: str
    env: dict[str, str]

    @property
    def words(self) -> list[str]:
        """The subcommand words (``['stack', 'select']``), flags and their values left out."""
        return _split(self.argv)[0]

    def flag(self, name: str) -> str | bool | None:
        return _split(self.argv)[1].get(name)

    def __str__(self) -> str:
        return "pulumi " + " ".join(self.argv)


@dataclass
class FakeStack:
    name: str
    resource_count: int = 0
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    config: dict[str, tuple[str, bool]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    locked_by: str | None = None
    pending: list[str] = field(default_factory=list)
    last_update: datetime | None = None


# flags each command accepts: name -> takes a value
_GLOBAL = {"--non-interactive": False, "--color": True, "--stack": True, "-s": True}
_ENGINE = {
    "--client": True, "--exec-kind": True, "--event-log": True, "--message": True,
    "--parallel": True, "--refresh": False, "--diff": False, "--debug": False,
    "--suppress-outputs": False, "--suppress-progress": False, "--config-file": True,
}
_FLAGS: dict[tuple[str, ...], dict[str, bool]] = {
    ("version",): {},
    ("whoami",): {"--json": False},
    ("stack", "select"): {},
    ("stack", "init"): {"--secrets-provider": True, "--no-select": False},
    ("stack", "ls"): {"--json": False, "--all": False},
    ("stack", "rm"): {"--yes": False, "--force": False, "--preserve-config": False},
    ("stack", "output"): {"--json": False, "--show-secrets": False},
    ("stack", "history"): {"--json": False, "--show-secrets": False, "--page-size": True, "--page": True},
    ("config", "set-all"): {"--plaintext": True, "--secret": True, "--path": False, "--json": True},
    ("cancel",): {"--yes": False},
    ("plugin", "ls"): {"--json": False, "--project": False},
    ("plugin", "install"): {"--server": True, "--reinstall": False, "--exact": False, "--file": True},
    ("up",): {**_ENGINE, "--yes": False, "--skip-preview": False, "--expect-no-changes": False},
    ("preview",): {**_ENGINE, "--expect-no-changes": False, "--json": False},
    ("refresh",): {
        **_ENGINE, "--yes": False, "--skip-preview": False, "--preview-only": False,
        "--clear-pending-creates": False,
    },
    ("destroy",): {
        **_ENGINE, "--yes": False, "--skip-preview": False, "--preview-only": False,
        "--remove": False, "--exclude-protected": False, "--continue-on-error": False,
    },
}
_MULTI = {"--plaintext", "--secret"}


def _command_of(argv: list[str]) -> tuple[str, ...]:
    """The subcommand: the longest known command formed by the first non-flag tokens."""
    tokens = [a for a in argv if not a.startswith("-")][:2]
    for size in (2, 1):
        if tuple(tokens[:size]) in _FLAGS:
            return tuple(tokens[:size])
    return tuple(tokens[:1])


def _split(argv: list[str]) -> tuple[list[str], dict[str, Any], list[str]]:
    """(subcommand words, flags, positional args), flags read with the arity the command's
    flag set gives them. Multi-valued flags become lists; flag-only tokens ``--x`` are True."""
    command = _command_of(argv)
    arity = {**_GLOBAL, **_FLAGS.get(command, {})}
    words: list[str] = []
    flags: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positional.extend(argv[i + 1 :])
            break
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            takes_value = arity.get(name, False)
            if takes_value and not eq:
                i += 1
                value = argv[i] if i < len(argv) else ""
            parsed: Any = value if (eq or takes_value) else True
            if name in _MULTI:
                flags.setdefault(name, []).append(parsed)
            else:
                flags[name] = parsed
        elif len(words) < len(command) and arg == command[len(words)]:
            words.append(arg)
        else:
            positional.append(arg)
        i += 1
    return words, flags, positional


def _timestamp(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class ReplayPulumiCommand(PulumiCommand):
    """A ``PulumiCommand`` whose CLI is replayed. ``version`` is what ``pulumi version`` says."""

    def __init__(self, version: str = "3.272.0", *, user: str = "alice") -> None:  # noqa: D107
        # deliberately no super().__init__(): that would run the real `pulumi version`
        self.command = "pulumi"
        self.version = VersionInfo.parse(version)
        self.user = user
        self.calls: list[Call] = []
        self.stacks: dict[str, FakeStack] = {}
        self.scripts: dict[str, deque[Scenario]] = defaultdict(deque)
        self.events_sent: list[dict[str, Any]] = []
        #: installed plugins: (kind, name, version without "v")
        self.plugins: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        self._lock_pid: int | None = None

    @property
    def lock_pid(self) -> int:
        """The pid an interrupted run's lock names: by default one of a child that has exited
        (the CLI killed with the kernel's interrupt). Set it to a live pid to model a CLI
        still running."""
        if self._lock_pid is None:
            child = subprocess.Popen([sys.executable, "-c", "pass"])
            child.wait(timeout=60)
            self._lock_pid = child.pid
        return self._lock_pid

    @lock_pid.setter
    def lock_pid(self, pid: int) -> None:
        self._lock_pid = pid

    # ---------------------------------------------------------------- scripting & queries

    def script(self, *scenarios: Scenario) -> ReplayPulumiCommand:
        for scenario in scenarios:
            self.scripts[scenario.command].append(scenario)
        return self

    def add_stack(self, name: str, **state: Any) -> FakeStack:
        stack = FakeStack(name=name, **state)
        self.stacks[name] = stack
        return stack

    def calls_of(self, *words: str) -> list[Call]:
        return [c for c in self.calls if c.words[: len(words)] == list(words)]

    # ---------------------------------------------------------------- the CLI

    def run(
        self,
        args: list[str],
        cwd: str,
        additional_env: Mapping[str, str],
        on_output: Callable[[str], Any] | None = None,
        on_error: Callable[[str], Any] | None = None,
    ) -> CommandResult:
        # as PulumiCommand.run: every command runs non-interactively
        sep = args.index("--") if "--" in args else len(args)
        if "--non-interactive" not in args[:sep]:
            args.insert(0, "--non-interactive")
        call = Call(argv=list(args), cwd=cwd, env=dict(additional_env))
        with self._lock:
            self.calls.append(call)
        words, flags, positional = _split(call.argv)
        key = tuple(words)
        if key not in _FLAGS:
            raise UnexpectedCall(f"unknown command: {call}")
        allowed = {**_GLOBAL, **_FLAGS[key]}
        unknown = sorted(set(flags) - set(allowed))
        if unknown:
            raise UnexpectedCall(f"unknown flag(s) {unknown} for `pulumi {' '.join(words)}`: {call}")
        if flags.get("--non-interactive") is not True:
            raise UnexpectedCall(f"not run with --non-interactive: {call}")
        env = {**os.environ, **call.env}
        handler = getattr(self, "_cmd_" + "_".join(w.replace("-", "_") for w in words))
        stdout, stderr, code = handler(call, flags, positional, env, on_output, on_error)
        for line in stdout.splitlines() if on_output else ():
            on_output(line)  # type: ignore[misc]
        for line in stderr.splitlines() if on_error else ():
            on_error(line)  # type: ignore[misc]
        result = CommandResult(stdout=stdout, stderr=stderr, code=code)
        if code != 0:
            raise create_command_error(result)
        return result

    # ---------------------------------------------------------------- checks shared by commands

    def _check_project(self, call: Call, env: Mapping[str, str]) -> None:
        project_file = Path(call.cwd) / "Pulumi.yaml"
        if not project_file.is_file():
            raise UnexpectedCall(f"no Pulumi.yaml in the working directory {call.cwd}: {call}")
        settings = yaml.safe_load(project_file.read_text())
        backend = (settings.get("backend") or {}).get("url")
        if backend and env.get("PULUMI_BACKEND_URL") not in (None, backend):
            raise UnexpectedCall(f"Pulumi.yaml backend {backend} != PULUMI_BACKEND_URL: {call}")

    def _stack_flag(self, call: Call, flags: Mapping[str, Any]) -> str:
        name = flags.get("--stack") or flags.get("-s")
        if not isinstance(name, str) or not name:
            raise UnexpectedCall(f"no --stack given: {call}")
        return name

    def _missing(self, name: str) -> tuple[str, str, int]:
        return "", f"error: no stack named '{name}' found", 255

    @staticmethod
    def _passphrase_problem(env: Mapping[str, str]) -> str | None:
        if "PULUMI_CONFIG_PASSPHRASE" in env:
            return None
        path = env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
        if path:
            try:
                Path(path).read_text()
            except OSError as exc:
                return f"error: unable to read PULUMI_CONFIG_PASSPHRASE_FILE: {exc.strerror}"
            return None
        return (
            "error: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or "
            "PULUMI_CONFIG_PASSPHRASE_FILE environment variables"
        )

    # ---------------------------------------------------------------- stack commands

    def _cmd_version(self, call, flags, positional, env, *_):  # type: ignore[no-untyped-def]
        return f"v{self.version}", "", 0

    def _cmd_whoami(self, call, flags, positional, env, *_):  # type: ignore[no-untyped-def]
        url = env.get("PULUMI_BACKEND_URL", "")
        if flags.get("--json"):
            return json.dumps({"user": self.user, "organizations": [], "url": url}), "", 0
        return self.user, "", 0

    def _cmd_stack_select(self, call, flags, positional, env, *_):  # type: ignore[no-untyped-def]
        self._check_project(call, env)
        name = self._stack_flag(call, flags)
        return ("", "", 0) if name in self.stacks else self._missing(name)

    def _cmd_stack_init(self, call, flags, positional, env, *_):  # type: ignore[no-untyped-def]
        self._check_project(call, env)
        if len(positional) != 1:
            raise UnexpectedCall(f"stack init takes one stack name: {call}")
        name = positional[0]
        provider = flags.get("--secrets-provider")
        if provider not in (None, "default", "passphrase"):
            raise UnexpectedCall(f"unexpected secrets provider {provider!r}: {call}")
        problem = self._passphrase_problem(env)
        if problem:
            return "", problem, 255
        if name in self.stacks:
            return "", f"error: stack '{name}' already exists", 255
        self.stacks[name] = FakeStack(name=name)
        return f"Created stack '{name}'", "", 0

    def _cmd_stack_ls(self, call, flags, positional, env, *_):  # type: ignore[no-untyped-def]
        self._check_project(call, env)
        if flags.get("--json") is not True:
            raise UnexpectedCall(f"the SDK always lists stacks with --json: {call}")
        listed = []
        for stack in sorted(self.stacks.values(), key=lambda s: s.name):
            entry: dict[str, Any] = {
                "name": stack.name,
                "current": False,
                "updateInProgress": stack.locked_by is not None,
                "resourceCount": stack.resource_count,
            }
            if stack.last_update is not None:
                entry["lastUpdate"] = _timestamp(stack.last_update)
            listed.append(entry)
        return json.dumps(listed, indent=4), "", 0

    def _cmd_stack_rm(self, call, flags, positional, env, *_):  # type: ignore[no-untyped-def]
        self._check_project(call, env)
        if flags.get("--yes") is not True or len(positional) != 1:
            raise UnexpectedCall(f"stack rm needs --yes and one stack name: {call}")
        name = positional[0]
        stack = self.stacks.get(name)
        if stack is None:
            return self._missing(name)
        if stack.resource_count and not flags.get("--force"):
            return "", (
                f"error: '{name}' still has resources; removal rejected. Possible actions:\n"
                f"- Make sure that '{name}' is the stack you want to destroy\n"
                "- Run `pulumi destroy` to delete the resources, then run `pulumi stack rm`\n"
                "- Run `pulumi stack rm --force` to override this error"
            ), 255
        del self.stacks[name]
        return f"Stack '{name}' has been removed!", "", 0

    def _cmd_stack_output(self, call, flags, positional, env, *_):  # type: ignore[no-untyped-def]
        self._check_project(call, env)
        name = self._stack_flag(call, flags)
        stack = self.stacks.get(name)
        if stack is None:
            return self._missing(name)
        if flags.get("--json") is not True:
            raise UnexpectedCall(f"the SDK reads outputs with --json: {call}")
        show = flags.get("--show-secrets") is True
        if show and self._passphrase_problem(env):
            return "", self._passphrase_problem(env) or "", 255
        shown = {
            k: (v if show or k not in stack.secret_outputs else "[secret]") for k, v in stack.outputs.items()
        }
        return json.dumps(shown, indent=4), "", 0

    def _cmd_stack_history(self, call, flags, positional, env, *_):  # type: ignore[no-untyped-def]
        self._check_project(call, env)
        name = self._stack_flag(call, flags)
        stack = self.stacks.get(name)
        if stack is None:
            return self._missing(name)
        size = int(flags.get("--page-size") or 10)
        page = int(flags.get("--page") or 1)
        newest_first = list(reversed(stack.history))
        return json.dumps(newest_first[(page - 1) * size : page * size], indent=4), "", 0

    def _cmd_config_set_all(self, call, flags, positional, env, *_):  # type: ignore[no-untyped-def]
        self._check_project(call, env)
        name = self._stack_flag(call, flags)
        stack = self.stacks.get(name)
        if stack is None:
            return self._missing(name)
        for secret, entries in ((False, flags.get("--plaintext", [])), (True, flags.get("--secret", []))):
            for entry in entries:
                key, eq, value = entry.partition("=")
                if not eq or ":" not in key:
                    raise UnexpectedCall(f"config entries are namespace:key=value, got {entry!r}: {call}")
                stack.config[key] = (value, secret)
        return "", "", 0

    def _cmd_cancel(self, call, flags, positional, env, *_):  # type: ignore[no-untyped-def]
        self._check_project(call, env)
        if flags.get("--yes") is not True:
            raise UnexpectedCall(f"cancel needs --yes: {call}")
        name = self._stack_flag(call, flags)
        stack = self.stacks.get(name)
        if stack is None:
            return self._missing(name)
        stack.locked_by = None
        return f"The currently running update for '{name}' has been canceled!", "", 0

    def _cmd_plugin_ls(self, call, flags, positional, env, *_):  # type: ignore[no-untyped-def]
        if flags.get("--json") is not True:
            raise UnexpectedCall(f"the SDK lists plugins with --json: {call}")
        stamp = _timestamp(datetime.now(timezone.utc))
        listed = [
            {"name": name, "kind": kind, "version": version, "size": 100_000_000,
             "installTime": stamp, "lastUsedTime": stamp}
            for kind, name, version in sorted(self.plugins)
        ]
        return json.dumps(listed, indent=4), "", 0

    def _cmd_plugin_install(self, call, flags, positional, env, *_):  # type: ignore[no-untyped-def]
        if len(positional) != 3 or positional[0] not in ("resource", "language", "analyzer", "converter"):
            raise UnexpectedCall(f"plugin install takes KIND NAME VERSION: {call}")
        kind, name, version = positional
        if not version.startswith("v"):
            raise UnexpectedCall(f"plugin versions are given as vX.Y.Z: {call}")
        self.plugins.add((kind, name, version[1:]))
        return "", f"[resource plugin {name}-{version[1:]}] installing", 0

    # ---------------------------------------------------------------- engine commands

    def _cmd_up(self, call, flags, positional, env, on_output, on_error):  # type: ignore[no-untyped-def]
        return self._engine("up", call, flags, env, require=("--yes", "--skip-preview"))

    def _cmd_preview(self, call, flags, positional, env, on_output, on_error):  # type: ignore[no-untyped-def]
        return self._engine("preview", call, flags, env, require=("--event-log",))

    def _cmd_refresh(self, call, flags, positional, env, on_output, on_error):  # type: ignore[no-untyped-def]
        return self._engine("refresh", call, flags, env, require=("--yes", "--skip-preview"))

    def _cmd_destroy(self, call, flags, positional, env, on_output, on_error):  # type: ignore[no-untyped-def]
        return self._engine("destroy", call, flags, env, require=("--yes", "--skip-preview"))

    def _engine(self, command: str, call: Call, flags: Mapping[str, Any], env: Mapping[str, str],
                require: tuple[str, ...]) -> tuple[str, str, int]:
        self._check_project(call, env)
        name = self._stack_flag(call, flags)
        for flag in require:
            if not flags.get(flag):
                raise UnexpectedCall(f"`pulumi {command}` without {flag}: {call}")
        if flags.get("--exec-kind") == "auto.inline":
            self._check_language_runtime(call, flags.get("--client"))
        elif flags.get("--exec-kind") != "auto.local":
            raise UnexpectedCall(f"--exec-kind must be auto.inline or auto.local: {call}")
        stack = self.stacks.get(name)
        if stack is None:
            return self._missing(name)
        problem = self._passphrase_problem(env)
        if problem:
            return "", problem, 255
        if stack.locked_by is not None:
            return "", (
                "error: the stack is currently locked by 1 lock(s). Either wait for the other "
                "process(es) to end or delete the lock file with `pulumi cancel`.\n"
                f"  {env.get('PULUMI_BACKEND_URL', 'file://~')}/.pulumi/locks/organization/"
                f"mltoolkit/{name}/3f2a1c9e-7b1d-4c55-9f0e-2d8b6a4e1c07.json: created by "
                f"{stack.locked_by}"
            ), 255
        if not self.scripts[command]:
            raise UnexpectedCall(f"no scripted scenario for `pulumi {command}`: {call}")
        scenario = self.scripts[command].popleft()
        events = self._stamped(scenario.events)
        target = flags.get("--event-log")
        if scenario.interrupt_after is not None:
            self._emit(target, events[: scenario.interrupt_after], scenario.pace_s)
            stack.locked_by = (
                f"{self.user}@{socket.gethostname()} (pid {self.lock_pid}) "
                f"at {_timestamp(datetime.now(timezone.utc))}"
            )
            if scenario.resource_count is not None:
                stack.resource_count = scenario.resource_count
            stack.pending = [e["resourcePreEvent"]["metadata"]["urn"] for e in events[: scenario.interrupt_after]
                             if "resourcePreEvent" in e]
            raise KeyboardInterrupt
        self._emit(target, events, scenario.pace_s)
        summary = next((e["summaryEvent"] for e in events if "summaryEvent" in e), None)
        if command != "preview":
            self._record(stack, command, scenario, summary)
        return scenario.stdout, scenario.stderr, scenario.exit_code

    def _record(self, stack: FakeStack, command: str, scenario: Scenario, summary: dict[str, Any] | None) -> None:
        now = datetime.now(timezone.utc)
        succeeded = scenario.exit_code == 0
        if succeeded:
            if command == "up":
                stack.outputs = copy.deepcopy(scenario.outputs)
                stack.secret_outputs = set(scenario.secret_outputs)
            if command == "destroy":
                stack.outputs = {}
                stack.secret_outputs = set()
                stack.resource_count = 0
            if command == "refresh":
                stack.pending = []
        if scenario.resource_count is not None:
            stack.resource_count = scenario.resource_count
        stack.last_update = now
        kind = {"up": "update"}.get(command, command)
        stack.history.append({
            "version": len(stack.history) + 1,
            "kind": kind,
            "startTime": _timestamp(now),
            "message": "",
            "environment": {"exec.kind": "auto.inline"},
            "config": {k: {"secret": s} if s else {"value": v, "secret": False} for k, (v, s) in stack.config.items()},
            "result": "succeeded" if succeeded else "failed",
            "endTime": _timestamp(now),
            "resourceChanges": dict((summary or {}).get("resourceChanges", {})),
        })

    @staticmethod
    def _stamped(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = int(time.time())
        stamped = []
        for sequence, event in enumerate(events, start=1):
            event = copy.deepcopy(event)
            event.setdefault("sequence", sequence)
            event.setdefault("timestamp", now)
            stamped.append(event)
        return stamped

    def _check_language_runtime(self, call: Call, address: Any) -> None:
        """The inline program's language server must answer at ``--client``."""
        from pulumi.runtime.proto import language_pb2, language_pb2_grpc

        if not isinstance(address, str) or not address.startswith("127.0.0.1:"):
            raise UnexpectedCall(f"--client must be the SDK's language server on 127.0.0.1: {call}")
        with grpc.insecure_channel(address) as channel:
            try:
                language_pb2_grpc.LanguageRuntimeStub(channel).About(language_pb2.AboutRequest(), timeout=30)
            except grpc.RpcError as exc:
                raise UnexpectedCall(f"no language runtime answers at --client {address}: {exc}") from None

    def _emit(self, target: Any, events: list[dict[str, Any]], pace_s: float) -> None:
        if not events:
            return
        if not isinstance(target, str) or not target:
            return  # the SDK asked for no events (up/refresh/destroy without on_event)
        self.events_sent.extend(events)
        if target.startswith("tcp://"):
            self._emit_grpc(target[len("tcp://") :], events, pace_s)
        else:
            with open(target, "a", encoding="utf-8") as log:
                for event in events:
                    log.write(json.dumps(event) + "\n")
                    log.flush()
                    if pace_s:
                        time.sleep(pace_s)

    @staticmethod
    def _emit_grpc(address: str, events: list[dict[str, Any]], pace_s: float) -> None:
        from pulumi.runtime.proto import events_pb2, events_pb2_grpc

        def requests() -> Iterator[Any]:
            for event in events:
                yield events_pb2.EventRequest(event=json.dumps(event))
                if pace_s:
                    time.sleep(pace_s)

        with grpc.insecure_channel(address) as channel:
            events_pb2_grpc.EventsStub(channel).StreamEvents(requests(), timeout=60)
