"""``ProvisionPanel``: choose a target and the deployment's fields, then Plan, Up and Down.

A thin view: the fields become spec dicts (``mltoolkit.widgets.forms``) validated by
``DeploymentSpec.from_dict`` / ``ClusterSpec.from_dict`` on the notebook's thread, before
anything starts; a ``SpecError`` is shown next to the field it names. Plan, Up and Down run on
a background thread (``BackgroundTask``) so the kernel stays free and progress keeps updating;
the buttons are disabled meanwhile. Failures appear in the panel with the next step their
message carries.

    panel = ProvisionPanel(ModelSpec.from_object(clf, name="digits"))
    panel                     # fill in, click Plan / Up / Down
    panel.target              # the target brought up (for MonitorPanel)
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from functools import partial
from typing import Any, Callable

import ipywidgets as widgets

from mltoolkit.balancer.policies import DEFAULT_POLICY
from mltoolkit.errors import SpecError
from mltoolkit.spec.cluster import ClusterSpec
from mltoolkit.spec.deployment import DATA_PLANES, DEFAULT_DATA_PLANE, ModelSpec
from mltoolkit.widgets import forms, render
from mltoolkit.widgets.forms import GKE, LOCAL, TARGET_KINDS
from mltoolkit.widgets.panel import DESCRIPTION_STYLE, PanelBase, close_tree, field_row
from mltoolkit.widgets.progress import panel_progress
from mltoolkit.widgets.targets import TargetFactory, TargetRequest, build_target, call_with_progress
from mltoolkit.widgets.worker import BackgroundTask


class ProvisionPanel(PanelBase):
    """Plan, Up and Down a deployment of ``model`` on the local target or GKE.

    The keyword arguments set the fields' initial values (``cluster`` fills the GKE fields from
    a ``ClusterSpec``'s first node pool). ``make_target(TargetRequest)`` builds the target for
    each action (default ``build_target``: ``LocalTarget`` or ``GKETarget``).

    Methods mirror the buttons and return at once: ``plan()``, ``up()``, ``down()`` (asks for
    confirmation; ``down(confirm=True)`` does not); ``wait()`` blocks until the work finishes.
    After ``up``: ``target`` and ``endpoint``; after ``plan``: ``last_plan``.
    """

    def __init__(
        self,
        model: ModelSpec,
        *,
        target: str = LOCAL,
        nodes: int = 1,
        replicas: int = 2,
        cpu: str = "500m",
        memory: str = "512Mi",
        policy: str = DEFAULT_POLICY,
        data_plane: str = DEFAULT_DATA_PLANE,
        cluster: ClusterSpec | None = None,
        stack: str = "dev",
        backend: str | None = None,
        make_target: TargetFactory = build_target,
    ) -> None:
        if not isinstance(model, ModelSpec):
            raise SpecError("ProvisionPanel.model", model, "a ModelSpec")
        if target not in TARGET_KINDS:
            raise SpecError("ProvisionPanel.target", target, f"one of {TARGET_KINDS}")
        if cluster is not None and not isinstance(cluster, ClusterSpec):
            raise SpecError("ProvisionPanel.cluster", cluster, "None or a ClusterSpec")
        if not callable(make_target):
            raise SpecError("ProvisionPanel.make_target", make_target, "a callable(TargetRequest)")
        self.model = model
        self.make_target = make_target
        self.target: Any = None
        self.target_kind: str | None = None
        self.endpoint: Any = None
        self.last_plan: Any = None
        self.last_error: BaseException | None = None
        self._build(
            forms.TargetFields(kind=target, nodes=nodes, stack=stack, backend=backend or ""),
            forms.DeploymentFields(replicas=replicas, cpu=cpu, memory=memory, policy=policy, data_plane=data_plane),
            forms.ClusterFields.from_spec(cluster) if cluster is not None else forms.ClusterFields(),
        )

    # ------------------------------------------------------------------ widgets

    def _build(
        self, target: forms.TargetFields, deployment: forms.DeploymentFields, cluster: forms.ClusterFields
    ) -> None:
        from mltoolkit.balancer.policies import policy_names

        def text(value: str, description: str, placeholder: str = "") -> widgets.Text:
            return widgets.Text(value=value, description=description, placeholder=placeholder, style=DESCRIPTION_STYLE)

        def number(value: int, description: str) -> widgets.IntText:
            return widgets.IntText(value=value, description=description, style=DESCRIPTION_STYLE)

        self.target_choice = widgets.ToggleButtons(
            options=[("Local", LOCAL), ("GKE", GKE)], value=target.kind, description="Target", style=DESCRIPTION_STYLE
        )
        self.fields: dict[str, Any] = {
            "nodes": number(target.nodes, "Local nodes"),
            "cluster_name": text(cluster.cluster_name, "Cluster name"),
            "project": text(cluster.project, "GCP project", "my-gcp-project"),
            "location": widgets.Combobox(
                value=cluster.location, options=forms.location_options(), ensure_option=False,
                description="Location", style=DESCRIPTION_STYLE,
            ),
            "machine_type": widgets.Dropdown(
                options=forms.machine_type_options(), value=cluster.machine_type,
                description="Machine type", style=DESCRIPTION_STYLE, layout=widgets.Layout(width="560px"),
            ),
            "min_nodes": number(cluster.min_nodes, "Min nodes"),
            "max_nodes": number(cluster.max_nodes, "Max nodes"),
            "spot": widgets.Checkbox(value=cluster.spot, description="Spot VMs", style=DESCRIPTION_STYLE),
            "gpu_type": widgets.Dropdown(
                options=forms.gpu_type_options(), value=cluster.gpu_type, description="GPU type", style=DESCRIPTION_STYLE
            ),
            "gpu_count": number(cluster.gpu_count, "GPUs per node"),
            "allowed_cidrs": text(cluster.allowed_cidrs, "Allowed CIDRs", "203.0.113.0/24, 198.51.100.7/32"),
            "allow_public": widgets.Checkbox(
                value=cluster.allow_public, description="Open to the whole internet", style=DESCRIPTION_STYLE
            ),
            "stack": text(target.stack, "Pulumi stack"),
            "backend": text(target.backend, "State backend", "empty: local directory; or gs://bucket"),
            "replicas": number(deployment.replicas, "Replicas"),
            "cpu": text(deployment.cpu, "CPU / replica"),
            "memory": text(deployment.memory, "Memory / replica"),
            "policy": widgets.Dropdown(
                options=policy_names(), value=deployment.policy, description="Balancer policy", style=DESCRIPTION_STYLE
            ),
            "data_plane": widgets.Dropdown(
                options=DATA_PLANES, value=deployment.data_plane, description="Data plane", style=DESCRIPTION_STYLE
            ),
        }
        rows: dict[str, widgets.HBox] = {}
        self.field_errors: dict[str, widgets.HTML] = {}
        for key, widget in self.fields.items():
            rows[key], self.field_errors[key] = field_row(widget)

        def section(title: str, keys: list[str]) -> widgets.VBox:
            return widgets.VBox([widgets.HTML(f"<b>{title}</b>")] + [rows[k] for k in keys])

        self.local_box = section("Local target", ["nodes"])
        self.gke_box = section(
            "GKE cluster",
            ["cluster_name", "project", "location", "machine_type", "min_nodes", "max_nodes", "spot",
             "gpu_type", "gpu_count", "allowed_cidrs", "allow_public", "stack", "backend"],
        )
        deployment_box = section(
            f"Deployment of model {self.model.name!r}", ["replicas", "cpu", "memory", "policy", "data_plane"]
        )

        self.plan_button = widgets.Button(description="Plan", icon="list", tooltip="Resources and cost per hour")
        self.up_button = widgets.Button(description="Up", button_style="primary", icon="play")
        self.down_button = widgets.Button(description="Down", button_style="danger", icon="stop")
        self.confirm_text = widgets.HTML(value="")
        self.confirm_button = widgets.Button(description="Yes, down", button_style="danger")
        self.cancel_button = widgets.Button(description="Cancel")
        self.confirm_box = widgets.HBox(
            [self.confirm_text, self.confirm_button, self.cancel_button], layout=widgets.Layout(display="none")
        )
        self.status = widgets.HTML(value="")
        self.errors = widgets.HTML(value="")
        self.progress_area = widgets.VBox([])
        self.plan_view = widgets.HTML(value="")
        self.widget = widgets.VBox(
            [
                self.target_choice, self.local_box, self.gke_box, deployment_box,
                widgets.HBox([self.plan_button, self.up_button, self.down_button]),
                self.confirm_box, self.status, self.errors, self.progress_area, self.plan_view,
            ]
        )
        self._task = BackgroundTask(
            "provision",
            controls=[self.plan_button, self.up_button, self.down_button, self.confirm_button,
                      self.cancel_button, self.target_choice],
        )
        self.plan_button.on_click(lambda _: self.plan())
        self.up_button.on_click(lambda _: self.up())
        self.down_button.on_click(lambda _: self.down())
        self.confirm_button.on_click(lambda _: self.down(confirm=True))
        self.cancel_button.on_click(lambda _: self._cancel_down())
        self.target_choice.observe(lambda _: self._show_target_fields(), names="value")
        self.fields["gpu_type"].observe(self._on_gpu_type, names="value")
        self._show_target_fields()

    def _show_target_fields(self) -> None:
        gke = self.target_choice.value == GKE
        self.gke_box.layout.display = None if gke else "none"
        self.local_box.layout.display = "none" if gke else None

    def _on_gpu_type(self, change: dict[str, Any]) -> None:
        self.fields["gpu_count"].value = forms.default_gpu_count(change["new"])

    # ------------------------------------------------------------------ fields → specs

    def _value(self, key: str) -> Any:
        return self.fields[key].value

    def deployment_fields(self) -> forms.DeploymentFields:
        return forms.DeploymentFields(
            replicas=self._value("replicas"), cpu=self._value("cpu"),
            memory=self._value("memory"), policy=self._value("policy"), data_plane=self._value("data_plane"),
        )

    def cluster_fields(self) -> forms.ClusterFields:
        return forms.ClusterFields(**{f.name: self._value(f.name) for f in dataclass_fields(forms.ClusterFields)})

    def spec(self) -> Any:
        """The ``DeploymentSpec`` the fields describe (raises SpecError naming the field)."""
        return forms.deployment_spec(self.model, self.deployment_fields())

    def request(self) -> TargetRequest:
        """The target the fields describe (for GKE, with its validated ``ClusterSpec``)."""
        kind = self.target_choice.value
        cluster = forms.cluster_spec(self.cluster_fields()) if kind == GKE else None
        return TargetRequest(
            kind=kind, nodes=self._value("nodes"), cluster=cluster,
            stack=self._value("stack"), backend=self._value("backend") or None,
        )

    # ------------------------------------------------------------------ showing results

    def _clear_messages(self) -> None:
        for label in self.field_errors.values():
            label.value = ""
        self.errors.value = ""

    def _show_error(self, error: BaseException, action: str) -> None:
        self.last_error = error
        key = forms.panel_field(error.field) if isinstance(error, SpecError) else None
        if key is not None:
            self.field_errors[key].value = render.field_error_html(error)
            self.errors.value = (
                f'<span style="{render.ERROR_STYLE}">{render.escape(action)}: fix the field marked ✗ '
                f"({render.escape(error.field)})</span>"
            )
        else:
            self.errors.value = render.error_html(error, action)
        self.status.value = f"{render.escape(action)}: failed"

    def _refuse_if_busy(self) -> bool:
        if self._task.busy:
            self.status.value = "busy: wait for the current action to finish"
            return True
        return False

    def _prepare(self, action: str, *, with_spec: bool = True) -> tuple[Any, TargetRequest] | None:
        """Validate the fields on this thread; None (with the error shown) if they are not valid."""
        self._clear_messages()
        try:
            spec = self.spec() if with_spec else None
            return spec, self.request()
        except SpecError as error:
            self._show_error(error, action)
            return None

    def _make(self, request: TargetRequest, action: str) -> Any:
        try:
            return self.make_target(request)
        except Exception as error:  # SpecError from the constructor (nodes, stack, backend), ...
            self._show_error(error, action)
            return None

    def _start(self, action: str, work: Callable[[], Any], on_done: Callable[[Any], None]) -> bool:
        self.status.value = f"{render.escape(action)}: running…"
        started = self._task.start(work, on_done, partial(self._show_error, action=action))
        if not started:
            self.status.value = "busy: wait for the current action to finish"
        return started

    # ------------------------------------------------------------------ actions

    def plan(self) -> bool:
        """Show the resources and cost per hour of the fields' deployment (Plan button)."""
        if self._refuse_if_busy():
            return False
        prepared = self._prepare("Plan")
        if prepared is None:
            return False
        spec, request = prepared
        target = self._make(request, "Plan")
        if target is None:
            return False
        return self._start("Plan", lambda: target.plan(spec), self._show_plan)

    def _show_plan(self, plan: Any) -> None:
        self.last_plan = plan
        summary = render.plan_summary(plan)
        self.plan_view.value = render.plan_html(summary)
        self.status.value = render.escape(render.cost_text(summary))

    def up(self) -> bool:
        """Bring the deployment up with live progress (Up button). While a deployment this panel
        started is up, its target is used again (a local target then asks for Down first)."""
        if self._refuse_if_busy():
            return False
        prepared = self._prepare("Up")
        if prepared is None:
            return False
        spec, request = prepared
        if self.target is not None and getattr(self.target, "is_up", False):
            target, kind = self.target, self.target_kind
        else:
            target, kind = self._make(request, "Up"), request.kind
            if target is None:
                return False
        progress = panel_progress(kind, f"up ({kind})", self.progress_area)
        self.target, self.target_kind = target, kind  # Down must reach whatever up creates

        def done(endpoint: Any) -> None:
            self.endpoint = endpoint
            where = (
                f"endpoint {render.escape(endpoint.url)}, model {render.escape(endpoint.model_name)}"
                if endpoint is not None
                else "no external endpoint (allowed CIDRs empty)"
            )
            self.status.value = f"Up: ready — {where}"

        return self._start("Up", lambda: call_with_progress(target.up, spec, progress=progress), done)

    def down(self, confirm: bool = False) -> bool:
        """Take the deployment down (Down button). Without ``confirm`` this only asks."""
        if self._refuse_if_busy():
            return False
        if not confirm:
            what = self.target_kind or self.target_choice.value
            self.confirm_text.value = (
                "<b>Stop every process of the local deployment?</b>"
                if what == LOCAL
                else f"<b>Destroy every resource of stack {render.escape(self._value('stack'))} "
                "and remove the stack?</b>"
            )
            self.confirm_box.layout.display = None
            return False
        self.confirm_box.layout.display = "none"
        if self.target is not None:
            target, kind = self.target, self.target_kind
        else:
            prepared = self._prepare("Down", with_spec=False)
            if prepared is None:
                return False
            _, request = prepared
            target, kind = self._make(request, "Down"), request.kind
            if target is None:
                return False
        self._clear_messages()
        progress = panel_progress(kind, f"down ({kind})", self.progress_area)

        def done(result: Any) -> None:
            self.target, self.target_kind, self.endpoint = None, None, None
            self.status.value = "Down: nothing to remove" if result is False else "Down: done — nothing left running"

        return self._start("Down", lambda: call_with_progress(target.down, progress=progress), done)

    def _cancel_down(self) -> None:
        self.confirm_box.layout.display = "none"
        self.status.value = "Down: cancelled"

    # ------------------------------------------------------------------ lifecycle

    @property
    def busy(self) -> bool:
        return self._task.busy

    @property
    def last_traceback(self) -> str | None:
        return self._task.last_traceback

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running action has finished; False if still running at ``timeout``."""
        return self._task.wait(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Wait for the running action, then close the widgets (the deployment stays up)."""
        self._task.wait(timeout)
        close_tree(self.widget)
