"""Run a Pulumi program in this process under mocks and record every resource it registers.

The one place that touches private names of the Pulumi SDK (``ROOT``, ``SETTINGS``,
``run_pulumi_func``, ``_sync_await``, ``_ensure_event_loop``, ``rpc.deserialize_properties``, the secret marker), the way ``pulumi.runtime.test`` uses them. Each run happens
in a copy of the current ``contextvars`` context, so it neither sees nor leaves behind Pulumi
settings: it works several times in one process with different programs, next to other users of
the SDK, and inside an already-running event loop (a Jupyter kernel).

Mocks run with ``preview=False``, so every ``apply`` runs; the mocks must return the outputs the
real providers compute. What the recorder keeps is plain data: secrets are unwrapped (their
paths noted), assets become ``{"asset": "file", "path": ...}`` and integral floats — numbers
cross the engine protocol as doubles — become ints again.
"""

from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from mltoolkit.gcp.loading import gc_paused

# The SDK's marker for secrets in serialized property values (pulumi.runtime.rpc).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


@dataclass(frozen=True)
class RegisteredResource:
    """One resource as the program registered it."""

    urn: str
    type: str
    name: str
    parent_urn: str
    custom: bool
    inputs: dict[str, Any]
    #: the state the mocks returned for it (its outputs)
    outputs: dict[str, Any]
    #: dotted paths of inputs that were secret
    secret_inputs: tuple[str, ...] = ()
    #: the provider reference ("urn::id"), "" for the default provider
    provider: str = ""
    #: URNs of the resources it explicitly depends on
    dependencies: tuple[str, ...] = ()
    ignore_changes: tuple[str, ...] = ()

    @property
    def parent_name(self) -> str:
        """The parent's name ("" for resources directly under the stack)."""
        if not self.parent_urn or self.parent_type == "pulumi:pulumi:Stack":
            return ""
        return self.parent_urn.rsplit("::", 1)[-1]

    @property
    def parent_type(self) -> str:
        if not self.parent_urn:
            return ""
        return self.parent_urn.split("::")[2].split("$")[-1]


@dataclass(frozen=True)
class MockRun:
    """Everything one program run registered, in order, and its stack outputs."""

    resources: tuple[RegisteredResource, ...]
    outputs: dict[str, Any]
    secret_outputs: frozenset[str] = field(default_factory=frozenset)
    #: URN -> the outputs a component passed to ``register_outputs``
    component_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[RegisteredResource]:
        return [r for r in self.resources if r.type == type_token]

    def named(self, name: str) -> RegisteredResource:
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r}")
        return found[0]

    def children_of(self, parent: RegisteredResource) -> list[RegisteredResource]:
        return [r for r in self.resources if r.parent_urn == parent.urn]


def plain(value: Any, path: str = "", secrets: list[str] | None = None) -> Any:
    """Turn deserialized property values into plain JSON-like data (see the module docstring)."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            if secrets is not None:
                secrets.append(path)
            return plain(value.get("value"), path, secrets)
        return {k: plain(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, pulumi.FileAsset):
        return {"asset": "file", "path": str(value.path)}
    if isinstance(value, pulumi.StringAsset):
        return {"asset": "string", "text": value.text}
    if isinstance(value, pulumi.FileArchive):
        return {"archive": "file", "path": str(value.path)}
    return value


class _Recorder(pulumi_mocks.Mocks):
    """Delegates to the caller's mocks and hands the inputs it saw back to the monitor's thread."""

    def __init__(self, inner: pulumi_mocks.Mocks) -> None:
        self.inner = inner
        self.local = threading.local()

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict]:
        resource_id, state = self.inner.new_resource(args)
        self.local.seen = (args.inputs, state)
        return resource_id, state

    def call(self, args: pulumi_mocks.MockCallArgs) -> Any:
        return self.inner.call(args)


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, recorder: _Recorder) -> None:
        super().__init__(recorder)
        self.recorder = recorder
        self.lock = threading.Lock()
        self.registered: list[RegisteredResource] = []
        self.component_outputs: dict[str, dict[str, Any]] = {}

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 (the engine's name)
        outputs = plain(rpc.deserialize_properties(request.outputs))
        with self.lock:
            self.component_outputs[request.urn] = outputs
        return super().RegisterResourceOutputs(request)

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (the engine's name)
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs, state = self.recorder.local.seen
        secrets: list[str] = []
        resource = RegisteredResource(
            urn=response.urn,
            type=request.type,
            name=request.name,
            parent_urn=request.parent,
            custom=bool(request.custom),
            inputs=plain(inputs, secrets=secrets),
            outputs=plain(state),
            secret_inputs=tuple(secrets),
            provider=request.provider,
            dependencies=tuple(request.dependencies),
            ignore_changes=tuple(request.ignoreChanges),
        )
        with self.lock:
            self.registered.append(resource)
        return response


def run_program(
    program: Callable[[], None],
    mocks: pulumi_mocks.Mocks,
    *,
    project: str = "mltoolkit",
    stack: str = "plan",
) -> MockRun:
    """Run ``program`` under ``mocks`` (``preview=False``) and return what it registered.

    The garbage collector is paused meanwhile: the first run imports the provider modules the
    program uses and evaluates their type hints (see ``mltoolkit.gcp.loading``)."""
    with gc_paused():
        return contextvars.copy_context().run(_run_in_context, program, mocks, project, stack)


def _run_in_context(
    program: Callable[[], None], mocks: pulumi_mocks.Mocks, project: str, stack: str
) -> MockRun:
    # asyncio.run() leaves the thread without an event loop; registering the stack needs one
    _ensure_event_loop()
    pulumi_settings.ROOT.set(None)  # set_mocks then creates a fresh root stack for this run
    monitor = _RecordingMonitor(_Recorder(mocks))
    pulumi_mocks.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    pulumi_settings.SETTINGS.outputs = set()
    root = pulumi_settings.get_root_resource()
    exported: dict[str, Any] = {}
    secret: set[str] = set()

    async def body() -> None:
        program()
        for key, value in list(root.outputs.items()):  # type: ignore[union-attr]
            output = pulumi.Output.from_input(value)
            exported[key] = await output.future()
            if await output.is_secret():
                secret.add(key)

    _sync_await(run_pulumi_func(body))
    return MockRun(
        resources=tuple(monitor.registered),
        outputs={k: plain(v) for k, v in exported.items()},
        secret_outputs=frozenset(secret),
        component_outputs=dict(monitor.component_outputs),
    )
