"""The one module that imports ``pulumi.automation``: select/create a stack, set its config,
preview/up/refresh/destroy/remove it, list stacks, and turn every SDK failure into a toolkit
error (via the pure :mod:`mltoolkit.stack.diagnose`).

The CLI is reached only through a ``PulumiCommand``; tests pass
:class:`mltoolkit.stack.replay.ReplayPulumiCommand` instead, which records argv and replays
CLI output and engine events.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import warnings
from datetime import timezone
from typing import Any, Callable, Mapping, TypeVar

from pulumi import automation as auto
from pulumi.automation import errors as auto_errors
from pulumi.automation.events import EngineEvent
from semver import VersionInfo

from mltoolkit.stack.diagnose import Diagnostic, classify_failure, parse_lock_holder
from mltoolkit.stack.errors import (
    PulumiCliError,
    PulumiCliIncompatibleError,
    PulumiCliMissingError,
    PulumiCliTooOldError,
)
from mltoolkit.stack.events import StackEvent, from_engine_event
from mltoolkit.stack.settings import StackSettings
from mltoolkit.stack.values import ConfigEntry, SecretOutput, StackInfo

# Re-exported for the replaying fake CLI, so that pulumi.automation stays imported here only.
PulumiCommand = auto.PulumiCommand
CommandResult = auto.CommandResult
create_command_error = auto_errors.create_command_error
CommandError = auto_errors.CommandError

# 3.181 runs inline programs for refresh/destroy (``--client``); 3.206+ streams events over gRPC.
MIN_CLI_VERSION = "3.181.0"
SECRETS_PROVIDER = "passphrase"

EventSink = Callable[[StackEvent], None]
T = TypeVar("T")


def make_command(root: str | None = None) -> auto.PulumiCommand:
    """The real CLI, checked to exist and to be recent enough (runs ``pulumi version``)."""
    minimum = VersionInfo.parse(MIN_CLI_VERSION)
    try:
        command = auto.PulumiCommand(root=root, version=minimum)
    except FileNotFoundError:
        raise PulumiCliMissingError(os.path.join(root, "bin", "pulumi") if root else "pulumi") from None
    except auto.InvalidVersionError as exc:
        text = str(exc)
        found = re.search(r"current CLI version is ([\w.+-]+?)\.?(?:\s|$)", text)
        if found:
            raise PulumiCliTooOldError(found.group(1), MIN_CLI_VERSION) from None
        raise PulumiCliIncompatibleError(text) from None
    except (subprocess.CalledProcessError, OSError) as exc:
        raise PulumiCliError(f"`pulumi version` failed ({exc}); reinstall the Pulumi CLI.") from None
    check_version(command.version)
    return command


def check_version(version: VersionInfo | None) -> None:
    """Our own minimum, enforced even when the SDK's check is switched off by env var."""
    if version is not None and version.compare(MIN_CLI_VERSION) < 0:
        raise PulumiCliTooOldError(str(version), MIN_CLI_VERSION)


def plain_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """SDK OutputMap → {name: value}, secret values wrapped in :class:`SecretOutput`."""
    return {
        name: SecretOutput(out.value) if out.secret else out.value for name, out in outputs.items()
    }


def split_command_error(text: str) -> tuple[int | None, str, str]:
    """(code, stdout, stderr) from ``str(CommandError)`` (the SDK keeps no separate fields)."""
    code_match = re.search(r"^\s*code: (-?\d+)", text, re.MULTILINE)
    head, _, stderr = text.rpartition("\n stderr: ")
    if not head:
        return (int(code_match.group(1)) if code_match else None, "", text)
    _, _, stdout = head.partition("\n stdout: ")
    return (int(code_match.group(1)) if code_match else None, stdout, stderr)


def _lock_holder_alive(text: str) -> bool | None:
    holder = parse_lock_holder(text)
    if holder is None or holder.pid is None:
        return None
    if holder.host and holder.host != socket.gethostname():
        return None
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return True


class _EventRelay:
    """Adapts SDK events for a sink, keeps the diagnostics, survives a failing sink."""

    def __init__(self, sink: EventSink | None) -> None:
        self.sink = sink
        self.diagnostics: list[Diagnostic] = []
        self._lock = threading.Lock()
        self._warned = False

    def __call__(self, event: EngineEvent) -> None:
        converted = from_engine_event(event)
        if converted.kind == "diagnostic" and converted.severity in ("error", "warning"):
            with self._lock:
                self.diagnostics.append(Diagnostic(converted.urn, converted.severity, converted.message))
        if self.sink is None:
            return
        try:
            self.sink(converted)
        except Exception as exc:  # a broken display must not stop the deployment
            if not self._warned:
                self._warned = True
                warnings.warn(f"progress display failed: {exc!r}", RuntimeWarning, stacklevel=2)


def _noop_program() -> None:
    """Used for destroy/refresh of stacks whose program is not at hand (destroy never runs it)."""


class StackDriver:
    """Pulumi operations on the stacks of one project in one backend.

    ``env`` is passed to every CLI call (backend URL, passphrase *file*); ``config`` is written
    to the stack before each ``up``/``preview``. ``command`` is a ``PulumiCommand`` (made on
    first use with :func:`make_command` if None).
    """

    def __init__(
        self,
        settings: StackSettings,
        *,
        env: Mapping[str, str],
        config: Mapping[str, ConfigEntry] | None = None,
        command: auto.PulumiCommand | None = None,
    ) -> None:
        self.settings = settings
        self._env = dict(env)
        self._config = dict(config or {})
        self._command = command
        self.last_diagnostics: list[Diagnostic] = []
        #: the last ``up``'s resource changes by operation ("create", "update", "same", ...)
        self.last_changes: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"StackDriver(project={self.settings.project!r}, backend={self.settings.backend!r})"

    @property
    def command(self) -> auto.PulumiCommand:
        if self._command is None:
            self._command = make_command()
        else:
            check_version(self._command.version)
        return self._command

    # ------------------------------------------------------------------ plumbing

    def _workspace(self, program: Callable[[], None] | None) -> auto.LocalWorkspace:
        settings = self.settings
        project = auto.ProjectSettings(
            name=settings.project,
            runtime="python",
            main=str(settings.work_dir),
            backend=auto.ProjectBackend(url=settings.backend),
        )
        return auto.LocalWorkspace(
            work_dir=str(settings.work_dir),
            program=program or _noop_program,
            env_vars=self._env,
            secrets_provider=SECRETS_PROVIDER,
            project_settings=project,
            pulumi_command=self.command,
        )

    def _stack(self, name: str, program: Callable[[], None] | None, *, create: bool) -> auto.Stack:
        workspace = self._workspace(program)
        if create:
            return auto.Stack.create_or_select(name, workspace)
        return auto.Stack.select(name, workspace)

    def _translated(self, operation: str, stack: str, call: Callable[[], T], relay: _EventRelay | None = None) -> T:
        try:
            return call()
        except auto_errors.CommandError as exc:
            text = str(exc)
            _, stdout, stderr = split_command_error(text)
            diagnostics = relay.diagnostics if relay is not None else []
            self.last_diagnostics = list(diagnostics)
            raise classify_failure(
                operation=operation,
                stack=stack,
                backend=self.settings.backend,
                error_kind=type(exc).__name__,
                stdout=stdout,
                stderr=stderr,
                diagnostics=diagnostics,
                lock_holder_alive=_lock_holder_alive(text),
            ) from None
        except auto.InvalidVersionError as exc:
            raise PulumiCliIncompatibleError(str(exc)) from None
        except FileNotFoundError as exc:
            command = self.command.command
            if exc.filename == command:
                raise PulumiCliMissingError(command) from None
            raise
        finally:
            if relay is not None:
                self.last_diagnostics = list(relay.diagnostics)

    def _configure(self, stack: auto.Stack) -> None:
        if self._config:
            stack.set_all_config(
                {key: auto.ConfigValue(value=e.value, secret=e.secret) for key, e in self._config.items()}
            )

    # ------------------------------------------------------------------ operations

    def preview(self, program: Callable[[], None], sink: EventSink | None = None) -> dict[str, int]:
        name = self.settings.stack
        relay = _EventRelay(sink)

        def run() -> dict[str, int]:
            stack = self._stack(name, program, create=True)
            self._configure(stack)
            result = stack.preview(on_event=relay)
            return {str(getattr(k, "value", k)): int(v) for k, v in result.change_summary.items()}

        return self._translated("preview", name, run, relay)

    def up(self, program: Callable[[], None], sink: EventSink | None = None) -> dict[str, Any]:
        name = self.settings.stack
        relay = _EventRelay(sink)

        def run() -> dict[str, Any]:
            stack = self._stack(name, program, create=True)
            self._configure(stack)
            result = stack.up(on_event=relay)
            self.last_changes = {
                str(getattr(k, "value", k)): int(v) for k, v in (result.summary.resource_changes or {}).items()
            }
            return plain_outputs(result.outputs)

        return self._translated("up", name, run, relay)

    def refresh(
        self, sink: EventSink | None = None, *, clear_pending_creates: bool = False, stack: str | None = None
    ) -> dict[str, int]:
        name = stack or self.settings.stack
        relay = _EventRelay(sink)

        def run() -> dict[str, int]:
            selected = self._stack(name, None, create=False)
            result = selected.refresh(on_event=relay, clear_pending_creates=clear_pending_creates)
            return dict(result.summary.resource_changes or {})

        return self._translated("refresh", name, run, relay)

    def destroy(
        self, sink: EventSink | None = None, *, refresh: bool = True, stack: str | None = None
    ) -> dict[str, int]:
        """Delete every resource of the stack (``--refresh`` first re-reads the cloud, so
        resources of an interrupted run are found)."""
        name = stack or self.settings.stack
        relay = _EventRelay(sink)

        def run() -> dict[str, int]:
            selected = self._stack(name, None, create=False)
            result = selected.destroy(on_event=relay, refresh=refresh)
            return dict(result.summary.resource_changes or {})

        return self._translated("destroy", name, run, relay)

    def remove(self, stack: str | None = None) -> None:
        """``pulumi stack rm``: the stack's (empty) state and its config file."""
        name = stack or self.settings.stack
        self._translated("remove", name, lambda: self._workspace(None).remove_stack(name))

    def cancel(self, stack: str | None = None) -> None:
        """``pulumi cancel``: release the lock an interrupted operation left."""
        name = stack or self.settings.stack
        self._translated("cancel", name, lambda: self._stack(name, None, create=False).cancel())

    def outputs(self, stack: str | None = None) -> dict[str, Any]:
        name = stack or self.settings.stack
        return self._translated(
            "outputs", name, lambda: plain_outputs(self._workspace(None).stack_outputs(name))
        )

    def installed_plugins(self) -> set[tuple[str, str]]:
        """``pulumi plugin ls``: (name, version) of each installed resource plugin."""

        def run() -> set[tuple[str, str]]:
            return {
                (p.name, str(p.version)) for p in self._workspace(None).list_plugins() if p.kind == "resource"
            }

        return self._translated("list plugins", self.settings.stack, run)

    def install_plugin(self, name: str, version: str) -> None:
        """``pulumi plugin install resource NAME vVERSION`` (downloads it once per machine)."""
        self._translated(
            "install plugin", self.settings.stack, lambda: self._workspace(None).install_plugin(name, f"v{version}")
        )

    def list_stacks(self) -> list[StackInfo]:
        def run() -> list[StackInfo]:
            return [
                StackInfo(
                    name=s.name,
                    resource_count=s.resource_count,
                    last_update=s.last_update.replace(tzinfo=timezone.utc) if s.last_update else None,
                    update_in_progress=s.update_in_progress,
                    url=s.url,
                )
                for s in self._workspace(None).list_stacks()
            ]

        return self._translated("list stacks", self.settings.stack, run)

    def find(self, stack: str | None = None) -> StackInfo | None:
        name = stack or self.settings.stack
        return next((s for s in self.list_stacks() if s.name == name), None)


__all__ = [
    "CommandError",
    "CommandResult",
    "ConfigEntry",
    "EngineEvent",
    "MIN_CLI_VERSION",
    "PulumiCommand",
    "SecretOutput",
    "StackDriver",
    "StackInfo",
    "check_version",
    "create_command_error",
    "make_command",
    "plain_outputs",
    "split_command_error",
]
