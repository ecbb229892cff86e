"""``GKETarget``: a deployment on your own GKE cluster, with the same calls as ``LocalTarget``.

    target = GKETarget(cluster_spec, stack="dev")      # state under ~/.mltoolkit/pulumi
    target.plan(spec)          # resources and estimated cost, computed under Pulumi mocks
    target.up(spec)            # shows the cost, then live progress; returns the Endpoint
    target.endpoint.predict(X[:3])
    target.load_test(rate=50, duration=30)
    target.utilization()       # node CPU/memory from the Kubernetes metrics API
    target.down()              # destroy everything and remove the stack

Pulumi runs through the Automation API (:mod:`mltoolkit.stack`) with the inline program of
``mltoolkit.gcp.program.build_program``. Every resource is labelled with its owner, stack and
expiry (``ttl``); ``sweep()`` finds (and on request destroys) stacks past their expiry.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import pandas as pd

from mltoolkit.endpoint import Endpoint
from mltoolkit.errors import SpecError
from mltoolkit.spec.cluster import ClusterSpec
from mltoolkit.spec.deployment import DeploymentSpec
from mltoolkit.stack.errors import (
    AuthPluginMissingError,
    GoogleCredentialsError,
    NoEndpointError,
    NotDeployedError,
    GcpExtraMissingError,
)
from mltoolkit.stack.labels import OUTPUT_MODEL, check_owner, parse_ttl
from mltoolkit.stack.lifecycle import StackLifecycle, StackStatus
from mltoolkit.stack.render import PROGRESS_ALLOWED
from mltoolkit.stack.settings import StackSettings
from mltoolkit.stack.values import ConfigEntry

if TYPE_CHECKING:
    from mltoolkit.stack.automation import PulumiCommand

DEFAULT_TTL = "24h"
IMPERSONATE_CONFIG = "gcp:impersonateServiceAccount"
IMPERSONATE_ENV = "GOOGLE_IMPERSONATE_SERVICE_ACCOUNT"  # read by the Google provider too
_GCP_EXTRA = ("pulumi", "pulumi_command", "pulumi_gcp", "pulumi_kubernetes", "kubernetes", "grpc", "semver")


def google_credentials_source(environ: Mapping[str, str] | None = None) -> str | None:
    """Where Google credentials would come from on this machine (None if nowhere).

    Looks at what the gcp provider reads: ``GOOGLE_CREDENTIALS``/``GOOGLE_CLOUD_KEYFILE_JSON``/
    ``GOOGLE_OAUTH_ACCESS_TOKEN``, ``GOOGLE_APPLICATION_CREDENTIALS`` (a file that must exist),
    then gcloud's Application Default Credentials file. Credentials from a metadata server (on
    Google Cloud itself) cannot be seen from here: pass ``check_credentials=False`` there.
    """
    env = os.environ if environ is None else environ
    for name in ("GOOGLE_CREDENTIALS", "GOOGLE_CLOUD_KEYFILE_JSON", "GOOGLE_OAUTH_ACCESS_TOKEN"):
        if env.get(name):
            return name
    key_file = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file:
        if Path(key_file).expanduser().is_file():
            return f"GOOGLE_APPLICATION_CREDENTIALS ({key_file})"
        raise GoogleCredentialsError(f"GOOGLE_APPLICATION_CREDENTIALS points to {key_file}, which does not exist")
    if env.get("CLOUDSDK_CONFIG"):
        config_dir = Path(env["CLOUDSDK_CONFIG"]).expanduser()
    elif os.name == "nt" and env.get("APPDATA"):
        config_dir = Path(env["APPDATA"]) / "gcloud"
    else:
        config_dir = Path(env.get("HOME", str(Path.home()))) / ".config" / "gcloud"
    adc = config_dir / "application_default_credentials.json"
    return f"gcloud application-default credentials ({adc})" if adc.is_file() else None


def application_default_credentials_source(environ: Mapping[str, str] | None = None) -> str | None:
    """Where application-default credentials — what ``gke-gcloud-auth-plugin
    --use_application_default_credentials`` reads — would come from (None if nowhere): the
    key file of ``GOOGLE_APPLICATION_CREDENTIALS`` or gcloud's ADC file. The Google provider
    also accepts ``GOOGLE_CREDENTIALS`` or an access token; the plugin does not."""
    env = os.environ if environ is None else environ
    source = google_credentials_source({k: v for k, v in env.items() if k not in _PROVIDER_ONLY})
    return source


_PROVIDER_ONLY = ("GOOGLE_CREDENTIALS", "GOOGLE_CLOUD_KEYFILE_JSON", "GOOGLE_OAUTH_ACCESS_TOKEN")


#: the Pulumi resource plugins the program needs: plugin name -> the Python package of its SDK
PLUGIN_PACKAGES = {"command": "pulumi_command", "gcp": "pulumi_gcp", "kubernetes": "pulumi_kubernetes"}


def required_plugins() -> dict[str, str]:
    """Plugin name -> the version matching the installed SDK (``pulumi_gcp`` 10.2.0 drives the
    gcp plugin v10.2.0): what ``up()`` installs first when missing."""
    from importlib import metadata

    found = {}
    for plugin, package in PLUGIN_PACKAGES.items():
        try:
            found[plugin] = metadata.version(package)
        except metadata.PackageNotFoundError:
            raise GcpExtraMissingError(package) from None
    return found


def _gcp_extra_module(name: str) -> Any:
    """Import a module that needs the optional ``gcp`` extra; say what to install if missing."""
    import importlib

    from mltoolkit.gcp.loading import gc_paused

    try:
        with gc_paused():  # the provider SDKs are large: see mltoolkit.gcp.loading
            return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in _GCP_EXTRA:
            raise GcpExtraMissingError(exc.name or "pulumi") from None
        raise


def _check_config(name: str, values: object) -> dict[str, str]:
    if values is None:
        return {}
    if not isinstance(values, Mapping) or not all(
        isinstance(k, str) and ":" in k and isinstance(v, str) for k, v in values.items()
    ):
        raise SpecError(name, "<mapping>" if isinstance(values, Mapping) else values,
                        "a mapping of 'namespace:key' strings to string values")
    return dict(values)


class GKETarget:
    """Deploy ``DeploymentSpec``s to the GKE cluster described by ``cluster`` (a ClusterSpec).

    ``stack`` names the Pulumi stack (one deployment); ``backend`` is where its state lives:
    None for a local directory (``$MLTOOLKIT_HOME/pulumi/state``), a path, or ``gs://bucket``
    for a team (then share ``PULUMI_CONFIG_PASSPHRASE`` too). ``owner`` (default: your login
    name) and ``ttl`` (default 24 hours; None for no expiry) become labels on every resource.
    ``config``/``secret_config`` add stack configuration (``{"gcp:impersonateServiceAccount":
    ...}``); secret values are stored encrypted and never shown. ``progress``: True/'auto'
    (a widget in a notebook, text lines otherwise), 'text', 'widget', False, or a callable.
    ``check_credentials=False`` skips the local credentials check (on Google Cloud VMs).
    ``pulumi_command`` replaces the Pulumi CLI (tests use ``mltoolkit.stack.replay``).
    """

    def __init__(
        self,
        cluster: ClusterSpec,
        stack: str = "dev",
        backend: str | os.PathLike[str] | None = None,
        *,
        owner: str | None = None,
        ttl: str | timedelta | None = DEFAULT_TTL,
        state_dir: str | os.PathLike[str] | None = None,
        config: Mapping[str, str] | None = None,
        secret_config: Mapping[str, str] | None = None,
        progress: Any = True,
        check_credentials: bool = True,
        pulumi_command: PulumiCommand | None = None,
    ) -> None:
        if not isinstance(cluster, ClusterSpec):
            raise SpecError("GKETarget.cluster", cluster, "a ClusterSpec")
        if not (progress in (True, False, None, "auto", "text", "widget") or callable(progress)):
            raise SpecError("GKETarget.progress", progress, PROGRESS_ALLOWED)
        if not isinstance(check_credentials, bool):
            raise SpecError("GKETarget.check_credentials", check_credentials, "True or False")
        self.cluster = cluster
        self.settings = StackSettings.build(stack, backend, state_dir=state_dir)
        self.owner = check_owner(owner)
        self.ttl = parse_ttl(ttl)
        self.check_credentials = check_credentials
        user_config = {**(config or {}), **(secret_config or {})}
        #: the service account the Google provider impersonates, which the kubeconfig follows
        self.impersonate_service_account: str | None = (
            user_config.get(IMPERSONATE_CONFIG) or os.environ.get(IMPERSONATE_ENV) or None
        )
        entries = {key: ConfigEntry(value) for key, value in self._provider_config().items()}
        entries.update({k: ConfigEntry(v) for k, v in _check_config("GKETarget.config", config).items()})
        entries.update(
            {k: ConfigEntry(v, secret=True) for k, v in _check_config("GKETarget.secret_config", secret_config).items()}
        )
        self._lifecycle = StackLifecycle(
            self.settings, owner=self.owner, ttl=self.ttl, config=entries, command=pulumi_command,
            progress=progress,
        )
        self._outputs: dict[str, Any] | None = None
        self._model_name: str | None = None

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"GKETarget(cluster={self.cluster.name!r}, project={self.cluster.project!r}, "
            f"stack={s.stack!r}, backend={s.backend!r}, owner={self.owner!r})"
        )

    def _provider_config(self) -> dict[str, str]:
        values = {"gcp:project": self.cluster.project, "gcp:region": self.cluster.region}
        if not self.cluster.is_regional:
            values["gcp:zone"] = self.cluster.location
        return values

    @property
    def stack(self) -> str:
        return self.settings.stack

    @property
    def backend(self) -> str:
        return self.settings.backend

    # ---------------------------------------------------------------- describe / plan

    def labels(self, now: datetime | None = None) -> dict[str, str]:
        """The labels every resource gets: managed-by, owner, stack and (with a ttl) expires."""
        return self._lifecycle.labels(now)

    @staticmethod
    def _check_spec(spec: Any) -> DeploymentSpec:
        if not isinstance(spec, DeploymentSpec):
            raise SpecError("GKETarget.spec", spec, "a DeploymentSpec")
        return spec

    def plan(self, spec: Any, *, labels: Mapping[str, str] | None = None) -> Any:
        """What ``up(spec)`` would create and its estimated cost (``Plan``: ``resources`` and
        ``costs`` DataFrames, ``cost_per_hour``, ``cost_per_month``). No cloud call."""
        spec = self._check_spec(spec)
        plan_program = _gcp_extra_module("mltoolkit.gcp.plan").plan
        return plan_program(
            self.cluster, spec, labels=dict(labels or self.labels()),
            impersonate_service_account=self.impersonate_service_account,
        )

    def _program(self, spec: Any, labels: Mapping[str, str]) -> Any:
        build_program = _gcp_extra_module("mltoolkit.gcp.program").build_program
        return build_program(
            self.cluster, spec, labels=labels, impersonate_service_account=self.impersonate_service_account
        )

    def _preflight(self) -> None:
        """Before any CLI call: the auth plugin the kubeconfig runs is on PATH, and the
        credentials both the Google provider and that plugin read exist."""
        auth_plugin = _gcp_extra_module("mltoolkit.gcp.kubeconfig").AUTH_PLUGIN
        needed = [auth_plugin, "gcloud"] if self.impersonate_service_account else [auth_plugin]
        for command in needed:
            if shutil.which(command) is None:
                raise AuthPluginMissingError(command, os.environ.get("PATH", ""))
        if not self.check_credentials:
            return
        vm_hint = (
            "(On a Google Cloud VM with an attached service account, pass "
            "GKETarget(..., check_credentials=False).)"
        )
        provider_source = google_credentials_source()
        if provider_source is None:
            raise GoogleCredentialsError(hint=vm_hint)
        if not self.impersonate_service_account and application_default_credentials_source() is None:
            raise GoogleCredentialsError(
                detail=f"the Google provider would use {provider_source}, but the cluster's "
                "kubeconfig runs gke-gcloud-auth-plugin --use_application_default_credentials, "
                "which reads only application-default credentials",
                hint=vm_hint,
            )

    def preview(self, spec: Any, *, progress: Any = None) -> dict[str, int]:
        """``pulumi preview``: the changes ``up(spec)`` would make, by operation."""
        spec = self._check_spec(spec)
        self._preflight()
        labels = self._lifecycle.labels_for_up()  # what up(spec) would pass: the kept expiry
        return self._lifecycle.preview(self._program(spec, labels), progress=progress)

    # ---------------------------------------------------------------- up / down

    def up(self, spec: Any, *, progress: Any = None, renew_expiry: bool = False) -> Endpoint | None:
        """Create or update the deployment; returns its Endpoint (None if it is internal).

        Shows the plan's estimated cost per hour first, then live progress. On an error or a
        KeyboardInterrupt the stack keeps whatever was created: ``down()`` removes it. The expiry
        is set by the first ``up`` (now + ttl) and kept by later ones, so that an ``up`` with an
        unchanged spec changes nothing; ``renew_expiry=True`` moves it to now + ttl.
        ``last_changes`` holds the resource changes of the last ``up`` by operation.
        """
        spec = self._check_spec(spec)
        if not isinstance(renew_expiry, bool):
            raise SpecError("up.renew_expiry", renew_expiry, "True or False")
        self._preflight()
        labels = self._lifecycle.labels_for_up(renew_expiry=renew_expiry)
        plan = self.plan(spec, labels=labels)
        self._write_build_context(spec)
        outputs = self._lifecycle.up(
            self._program(spec, labels),
            labels=labels,
            planned=_planned_resources(plan),
            cost_per_hour=getattr(plan, "cost_per_hour", None),
            cost_per_month=getattr(plan, "cost_per_month", None),
            model_name=spec.model.name,
            progress=progress,
            plugins=required_plugins(),
        )
        self._outputs = outputs
        self._model_name = spec.model.name
        return self.endpoint if outputs.get("endpoint_url") else None

    def _write_build_context(self, spec: DeploymentSpec) -> None:
        """Put the serving image's build context where the program's build step reads it."""
        program = _gcp_extra_module("mltoolkit.gcp.program")
        build = program.serving_build(self.cluster, spec)
        if build is not None:
            context, directory = build
            program.images.write_context(context, directory)

    @property
    def last_changes(self) -> dict[str, int]:
        """The last ``up``'s resource changes by operation: ``{"same": 30}`` means none."""
        return dict(self._lifecycle.last_changes)

    def refresh(self, *, clear_pending_creates: bool = False, progress: Any = None) -> dict[str, int]:
        """Re-read the stack's resources from the cloud (``clear_pending_creates=True`` drops
        creates an interrupted run left pending)."""
        if not isinstance(clear_pending_creates, bool):
            raise SpecError("refresh.clear_pending_creates", clear_pending_creates, "True or False")
        self._preflight()
        self._outputs = None
        return self._lifecycle.refresh(clear_pending_creates=clear_pending_creates, progress=progress)

    def cancel(self) -> None:
        """Release the stack's lock after an interrupted ``up``/``down`` (then ``refresh()``)."""
        self._lifecycle.cancel()

    def down(self, *, progress: Any = None) -> bool:
        """Destroy every resource and remove the stack; False if there was nothing to remove."""
        self._preflight()
        removed = self._lifecycle.down(progress=progress)
        self._outputs = None
        return removed

    def sweep(self, *, dry_run: bool = True, now: datetime | None = None, progress: Any = None) -> pd.DataFrame:
        """Stacks in this backend past their expiry (``dry_run=False`` destroys and removes them)."""
        if dry_run is False:
            self._preflight()
        return self._lifecycle.sweep(dry_run=dry_run, now=now, progress=progress)

    # ---------------------------------------------------------------- use / measure

    def outputs(self) -> dict[str, Any]:
        """The stack's outputs (secret ones, like ``kubeconfig``, as ``SecretOutput``)."""
        if self._outputs is None:
            self._outputs = self._lifecycle.outputs()
        return self._outputs

    def status(self) -> StackStatus:
        return self._lifecycle.status()

    def _model(self, outputs: Mapping[str, Any]) -> str:
        name = outputs.get("model_name") or outputs.get(OUTPUT_MODEL) or self._model_name
        if not name:
            record = self._lifecycle.records.read(self.settings.project, self.stack, self.backend)
            name = record.model_name if record else None
        if not name:
            raise NotDeployedError(self.stack, "model name recorded")
        return str(name)

    @property
    def endpoint(self) -> Endpoint:
        outputs = self.outputs()
        if not outputs:
            raise NotDeployedError(self.stack, "outputs")
        url = outputs.get("endpoint_url")
        if not url:
            raise NoEndpointError(self.stack)
        return Endpoint(url=str(url), model_name=self._model(outputs))

    def load_test(self, **kwargs: Any) -> pd.DataFrame:
        """``mltoolkit.observe.load_test(self.endpoint, **kwargs)`` against the load balancer."""
        from mltoolkit.observe.loadtest import load_test

        return load_test(self.endpoint, **kwargs)

    def predict_batch(self, data: Any, **options: Any) -> Any:
        """``self.endpoint.predict_batch`` through the cloud load balancer (see
        ``Endpoint.predict_batch``)."""
        return self.endpoint.predict_batch(data, **options)

    def run_batch(self, data: Any, **options: Any) -> Any:
        """``self.endpoint.run_batch``."""
        return self.endpoint.run_batch(data, **options)

    def utilization(self, *, request_timeout: float = 30.0) -> pd.DataFrame:
        """Node CPU/memory now (Kubernetes metrics API, kubeconfig from the stack outputs), with
        ``in_flight`` and ``served`` per node from the balancer tier's pods (``GET /-/replicas``
        through the API server's pod proxy, summed over the pods; NA if no balancer answers)."""
        from mltoolkit.gcp.manifests import NAMESPACE, selector_labels

        kube_metrics = _gcp_extra_module("mltoolkit.observe.kube_metrics")
        kube_traffic = _gcp_extra_module("mltoolkit.observe.kube_traffic")
        from mltoolkit.observe.traffic import fill_node_counters

        kubeconfig, namespace, model = self._cluster_access()
        frame = kube_metrics.node_utilization(
            kubeconfig,
            namespace=namespace,
            label_selector=selector_labels(model),
            request_timeout=request_timeout,
        )
        try:
            report = kube_traffic.balancer_replica_report(
                kubeconfig, request_timeout=request_timeout, **self._balancer_pods(namespace, model)
            )
        except kube_metrics.KubeMetricsError:
            report = None  # no balancer pod answers (yet): the counters stay NA
        return fill_node_counters(frame, report)

    def latency(
        self, window_s: float | None = None, by: str = "replica", *, request_timeout: float = 30.0
    ) -> pd.DataFrame:
        """Counts and latency quantiles of the real traffic the balancer tier served, one row
        per replica (pod; ``by="node"``: per node), read from every balancer pod's
        ``GET /-/metrics?format=json`` through the Kubernetes API and summed. ``window_s`` None:
        since the pods started; else two readings ``window_s`` apart. Columns as
        ``LocalTarget.latency`` (docs/architecture.md)."""
        from mltoolkit.observe.traffic import check_latency_args, read_latency

        check_latency_args(window_s, by)
        kube_traffic = _gcp_extra_module("mltoolkit.observe.kube_traffic")
        kubeconfig, namespace, model = self._cluster_access()
        pods = self._balancer_pods(namespace, model)
        return read_latency(
            lambda: kube_traffic.balancer_traffic(kubeconfig, request_timeout=request_timeout, **pods),
            window_s,
            by,
        )

    def _cluster_access(self) -> tuple[Any, str, str]:
        """The kubeconfig (text), namespace and model name from the stack outputs."""
        from mltoolkit.gcp.manifests import NAMESPACE

        outputs = self.outputs()
        kubeconfig = outputs.get("kubeconfig")
        if kubeconfig is None:
            raise NotDeployedError(self.stack, "kubeconfig output")
        return getattr(kubeconfig, "value", kubeconfig), outputs.get("namespace") or NAMESPACE, self._model(outputs)

    @staticmethod
    def _balancer_pods(namespace: str, model: str) -> dict[str, Any]:
        from mltoolkit.gcp.balancer_manifests import BALANCER_PORT
        from mltoolkit.gcp.balancer_manifests import selector_labels as tier_selector

        return {"namespace": namespace, "label_selector": tier_selector(model), "port": BALANCER_PORT}


def _planned_resources(plan: Any) -> int:
    """Cloud resources in a plan, counted as the progress display counts them (components,
    the stack and default providers left out)."""
    run = getattr(plan, "run", None)
    resources = getattr(run, "resources", None)
    if resources is None:
        frame = getattr(plan, "resources", None)
        return len(frame) if isinstance(frame, pd.DataFrame) else 0
    return sum(
        1
        for r in resources
        if r.custom and not (r.type.startswith("pulumi:providers:") and r.name.startswith("default"))
    )
