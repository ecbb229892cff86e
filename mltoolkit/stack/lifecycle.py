"""A stack's life from a notebook: up with live progress, refresh, down, sweep — and nothing
left billing.

* Before ``up`` a record (owner, expiry, model) is written locally, and the program is wrapped
  to export the same metadata as stack outputs, so an interrupted stack can be attributed and
  swept whether or not its outputs were saved.
* An exception or KeyboardInterrupt during ``up`` marks the record and is re-raised; the stack
  is left for :meth:`StackLifecycle.down`, which refreshes, destroys and removes it.
* :meth:`StackLifecycle.sweep` lists the project's stacks past their expiry and, with
  ``dry_run=False``, destroys and removes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping

import pandas as pd

from mltoolkit.stack.errors import (
    NotDeployedError,
    GcpExtraMissingError,
    StackError,
    StackLockedError,
    StackNotFoundError,
)
from mltoolkit.stack.labels import (
    OUTPUT_EXPIRES,
    OUTPUT_MODEL,
    OUTPUT_OWNER,
    parse_expires,
    resource_labels,
)
from mltoolkit.stack.passphrase import passphrase_env
from mltoolkit.stack.progress import ProgressModel, ProgressSnapshot
from mltoolkit.stack.records import RecordStore, StackRecord
from mltoolkit.stack.render import Renderer, make_renderer
from mltoolkit.stack.settings import StackSettings
from mltoolkit.stack.values import ConfigEntry, StackInfo

if TYPE_CHECKING:  # pulumi is an optional dependency: imported when a stack is first driven
    from mltoolkit.stack.automation import PulumiCommand, StackDriver

SWEEP_COLUMNS = (
    "stack", "owner", "expires", "expired", "resource_count", "last_update", "source", "action",
)


def automation_module() -> Any:
    """``mltoolkit.stack.automation``, or a clear error if the Pulumi SDK is not installed."""
    try:
        from mltoolkit.stack import automation
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in ("pulumi", "grpc", "semver"):
            raise GcpExtraMissingError(exc.name or "pulumi") from None
        raise
    return automation


def with_metadata(program: Callable[[], None], metadata: Mapping[str, str]) -> Callable[[], None]:
    """``program`` followed by ``pulumi.export`` of each metadata item (run in the program)."""

    def program_with_metadata() -> None:
        program()
        import pulumi

        for key, value in metadata.items():
            pulumi.export(key, value)

    program_with_metadata.__name__ = getattr(program, "__name__", "program")
    return program_with_metadata


@dataclass(frozen=True)
class StackStatus:
    """What is known about a stack: in the backend (``exists``, counts, outputs' keys) and in
    the local record (``status`` of the last run through this machine)."""

    stack: str
    backend: str
    exists: bool
    resource_count: int | None
    last_update: datetime | None
    update_in_progress: bool | None
    status: str | None
    owner: str | None
    expires: datetime | None
    outputs: tuple[str, ...]


HOURS_PER_MONTH = 730


def cost_line(
    stack: str, planned: int, cost_per_hour: float | None, owner: str, expires: str | None,
    cost_per_month: float | None = None,
) -> str:
    """The line shown before ``up`` starts: what is planned, what it costs, who owns it, until when."""
    money = "cost not estimated"
    if cost_per_hour is not None:
        month = cost_per_month if cost_per_month is not None else cost_per_hour * HOURS_PER_MONTH
        money = f"estimated ${cost_per_hour:,.2f}/hour (~${month:,.0f}/month)"
    expiry = f"expires {expires}" if expires else "no expiry (ttl=None)"
    return f"up {stack}: {planned} resources planned, {money}; owner {owner}, {expiry}"


class StackLifecycle:
    """Drive one stack (``settings``) with progress display and local records.

    ``owner``/``ttl`` feed the labels and the expiry; ``config`` is the stack configuration
    (secret entries stay encrypted); ``command`` replaces the Pulumi CLI (tests);
    ``progress``: True/'auto', 'text', 'widget', False or a callable (see ``render``).
    """

    def __init__(
        self,
        settings: StackSettings,
        *,
        owner: str,
        ttl: timedelta | None = None,
        config: Mapping[str, ConfigEntry] | None = None,
        command: PulumiCommand | None = None,
        progress: Any = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.owner = owner
        self.ttl = ttl
        self.progress = progress
        self._environ = os.environ if environ is None else environ
        self._config = dict(config or {})
        self._command = command
        self._driver: StackDriver | None = None
        self.records = RecordStore(settings.records_dir)
        self.last_progress: ProgressSnapshot | None = None
        #: the last successful ``up``'s resource changes by operation ({"same": 30} = none)
        self.last_changes: dict[str, int] = {}

    def __repr__(self) -> str:
        s = self.settings
        return f"StackLifecycle(stack={s.stack!r}, project={s.project!r}, backend={s.backend!r}, owner={self.owner!r})"

    @property
    def driver(self) -> StackDriver:
        if self._driver is None:
            driver_class = automation_module().StackDriver
            self.settings.prepare()
            env = {
                "PULUMI_BACKEND_URL": self.settings.backend,
                "PULUMI_SKIP_UPDATE_CHECK": "true",
                **passphrase_env(self.settings.state_dir, self._environ),
            }
            self._driver = driver_class(self.settings, env=env, config=self._config, command=self._command)
        return self._driver

    # ------------------------------------------------------------------ helpers

    def _renderer(self, progress: Any, title: str) -> Renderer:
        return make_renderer(self.progress if progress is None else progress, title)

    def _model(self, operation: str, renderer: Renderer, **kwargs: Any) -> ProgressModel:
        model = ProgressModel(operation, self.settings.stack, **kwargs)
        model.add_listener(renderer)
        return model

    def _record(self) -> StackRecord | None:
        s = self.settings
        return self.records.read(s.project, s.stack, s.backend)

    def _mark(self, status: str) -> None:
        record = self._record()
        if record is not None:
            record.status = status
            self.records.write(record)

    def labels(self, now: datetime | None = None) -> dict[str, str]:
        """The labels for every resource of this stack (owner, stack, expiry from now + ttl)."""
        return resource_labels(owner=self.owner, stack=self.settings.stack, ttl=self.ttl, now=now)

    def labels_for_up(self, now: datetime | None = None, *, renew_expiry: bool = False) -> dict[str, str]:
        """The labels for an ``up``: the expiry the stack already has, while it lies ahead, so a
        second ``up`` with the same spec changes nothing; a new one (now + ttl) for a new stack,
        after the old one passed, or with ``renew_expiry=True``."""
        labels = self.labels(now)
        if renew_expiry or "expires" not in labels:
            return labels
        record = self._record()
        kept = parse_expires(record.expires) if record is not None else None
        if kept is not None and kept > (now or datetime.now(timezone.utc)):
            labels["expires"] = str(record.expires)  # type: ignore[union-attr]
        return labels

    # ------------------------------------------------------------------ operations

    def ensure_plugins(self, plugins: Mapping[str, str], renderer: Renderer) -> list[str]:
        """Install the resource plugins (name -> version) the program needs that are missing,
        saying so, before the engine would fetch them silently in the middle of ``up``."""
        if not plugins:
            return []
        driver = self.driver
        present = driver.installed_plugins()
        installed = []
        for name, version in sorted(plugins.items()):
            if (name, version) in present:
                continue
            renderer.announce(f"installing the Pulumi {name} plugin v{version} (once per machine; can take a minute)")
            driver.install_plugin(name, version)
            renderer.announce(f"installed the Pulumi {name} plugin v{version}")
            installed.append(f"{name}-{version}")
        return installed

    def preview(self, program: Callable[[], None], *, progress: Any = None) -> dict[str, int]:
        renderer = self._renderer(progress, f"preview {self.settings.stack}")
        model = self._model("preview", renderer)
        try:
            changes = self.driver.preview(program, model.handle)
        except BaseException:
            self.last_progress = model.finish("failed")
            raise
        self.last_progress = model.finish("succeeded")
        return changes

    def up(
        self,
        program: Callable[[], None],
        *,
        labels: Mapping[str, str] | None = None,
        planned: int = 0,
        cost_per_hour: float | None = None,
        cost_per_month: float | None = None,
        model_name: str | None = None,
        progress: Any = None,
        plugins: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create or update the stack; returns its outputs (secrets as ``SecretOutput``).

        ``labels`` are the ones passed to the program (their ``expires`` is recorded);
        ``planned`` and the costs come from the plan and are shown before anything starts;
        ``plugins`` (name -> version) are installed first where missing, with progress.
        """
        s = self.settings
        expires = (labels if labels is not None else self.labels()).get("expires")
        renderer = self._renderer(progress, f"up {s.stack}")
        driver = self.driver
        self.ensure_plugins(plugins or {}, renderer)
        self.records.write(
            StackRecord(
                stack=s.stack, project=s.project, backend=s.backend, owner=self.owner,
                expires=expires, model_name=model_name, status="creating",
            )
        )
        renderer.announce(cost_line(s.stack, planned, cost_per_hour, self.owner, expires, cost_per_month))
        metadata = {OUTPUT_OWNER: self.owner, OUTPUT_EXPIRES: expires or ""}
        if model_name:
            metadata[OUTPUT_MODEL] = model_name
        model = self._model("up", renderer, planned=planned, cost_per_hour=cost_per_hour)
        try:
            outputs = driver.up(with_metadata(program, metadata), model.handle)
        except KeyboardInterrupt:
            self.last_progress = model.finish("interrupted")
            self._mark("interrupted")
            renderer.announce(
                f"up {s.stack} was interrupted: resources may already exist and bill. "
                "Run target.down() to remove them (target.status() shows what the stack holds)."
            )
            raise
        except BaseException:
            self.last_progress = model.finish("failed")
            self._mark("failed")
            raise
        self.last_progress = model.finish("succeeded")
        self.last_changes = dict(driver.last_changes)
        self._mark("up")
        if any("pending operations" in d.message for d in driver.last_diagnostics):
            renderer.announce(
                "warning: the stack had operations left pending by an interrupted run; check "
                "the Cloud Console for leftovers, then target.refresh(clear_pending_creates=True)."
            )
        return outputs

    def refresh(self, *, clear_pending_creates: bool = False, progress: Any = None) -> dict[str, int]:
        renderer = self._renderer(progress, f"refresh {self.settings.stack}")
        model = self._model("refresh", renderer)
        try:
            changes = self.driver.refresh(model.handle, clear_pending_creates=clear_pending_creates)
        except BaseException:
            self.last_progress = model.finish("failed")
            raise
        self.last_progress = model.finish("succeeded")
        return changes

    def cancel(self) -> None:
        self.driver.cancel()

    def down(self, *, progress: Any = None) -> bool:
        """Destroy every resource of the stack and remove the stack. Returns False if there
        was no stack (nothing to do), True once it is gone."""
        s = self.settings
        renderer = self._renderer(progress, f"down {s.stack}")
        removed = self._destroy_and_remove(s.stack, renderer, planned=None)
        self.records.remove(s.project, s.stack, s.backend)
        if not removed:
            renderer.announce(f"down {s.stack}: no such stack in {s.backend}; nothing to remove")
        return removed

    def _destroy_and_remove(self, stack: str, renderer: Renderer, planned: int | None) -> bool:
        driver = self.driver
        info = driver.find(stack)
        if info is None:
            return False
        model = ProgressModel("destroy", stack, planned=planned if planned is not None else (info.resource_count or 0))
        model.add_listener(renderer)
        if stack == self.settings.stack:
            self._mark("destroying")
        try:
            try:
                driver.destroy(model.handle, refresh=True, stack=stack)
            except StackLockedError as locked:
                if locked.pid_alive is not False:
                    raise
                # the lock's process ran on this machine and is gone: an interrupted run
                renderer.announce(
                    f"releasing the lock left by an interrupted run ({locked.holder}, no longer running)"
                )
                driver.cancel(stack)
                driver.destroy(model.handle, refresh=True, stack=stack)
            driver.remove(stack)
        except BaseException:
            self.last_progress = model.finish("failed")
            raise
        self.last_progress = model.finish("succeeded")
        return True

    def outputs(self) -> dict[str, Any]:
        try:
            return self.driver.outputs()
        except StackNotFoundError:
            raise NotDeployedError(self.settings.stack, "outputs") from None

    def status(self) -> StackStatus:
        s = self.settings
        info = self.driver.find(s.stack)
        record = self._record()
        outputs: dict[str, Any] = self.driver.outputs() if info is not None else {}
        owner, expires, _ = _metadata(outputs, record)
        return StackStatus(
            stack=s.stack,
            backend=s.backend,
            exists=info is not None,
            resource_count=info.resource_count if info else None,
            last_update=info.last_update if info else None,
            update_in_progress=info.update_in_progress if info else None,
            status=record.status if record else None,
            owner=owner,
            expires=expires,
            outputs=tuple(sorted(outputs)),
        )

    def sweep(self, *, dry_run: bool = True, now: datetime | None = None, progress: Any = None) -> pd.DataFrame:
        """Stacks of this project in this backend whose expiry has passed.

        With ``dry_run=False`` each is destroyed and removed (one failure does not stop the
        others; its ``action`` says what went wrong). Stacks without an expiry are never swept.
        """
        if not isinstance(dry_run, bool):
            from mltoolkit.errors import SpecError

            raise SpecError("sweep.dry_run", dry_run, "True or False")
        moment = now or datetime.now(timezone.utc)
        s = self.settings
        rows = []
        for info in self.driver.list_stacks():
            record = self.records.read(s.project, info.name, s.backend)
            try:
                outputs = self.driver.outputs(info.name)
            except StackError:
                outputs = {}
            owner, expires, source = _metadata(outputs, record)
            if expires is None or expires > moment:
                continue
            rows.append(self._sweep_one(info, owner, expires, source, dry_run, progress))
        return pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))

    def _sweep_one(
        self, info: StackInfo, owner: str | None, expires: datetime, source: str, dry_run: bool, progress: Any
    ) -> dict[str, Any]:
        row = {
            "stack": info.name, "owner": owner, "expires": pd.Timestamp(expires), "expired": True,
            "resource_count": info.resource_count, "last_update": info.last_update, "source": source,
        }
        if info.update_in_progress:
            return {**row, "action": "skipped: an update is in progress"}
        if dry_run:
            return {**row, "action": "would destroy"}
        renderer = self._renderer(progress, f"sweep {info.name}")
        try:
            self._destroy_and_remove(info.name, renderer, planned=info.resource_count)
        except StackError as exc:
            return {**row, "action": f"failed: {exc}"}
        self.records.remove(self.settings.project, info.name, self.settings.backend)
        return {**row, "action": "destroyed"}


def _metadata(outputs: Mapping[str, Any], record: StackRecord | None) -> tuple[str | None, datetime | None, str]:
    """(owner, expires, source): from the stack outputs if present, else the local record."""
    expires = parse_expires(outputs.get(OUTPUT_EXPIRES))
    if expires is not None or outputs.get(OUTPUT_OWNER):
        return outputs.get(OUTPUT_OWNER), expires, "outputs"
    if record is not None:
        return record.owner, parse_expires(record.expires), "record"
    return None, None, "none"
