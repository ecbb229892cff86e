"""The stack layer's exceptions: each says what happened and what to do next.

Messages are written for a data scientist in a notebook: the first sentence says what went
wrong in plain words, the rest names the next step (a command to run or a call to make).
None of them ever includes the secrets passphrase or a secret config value.
"""

from __future__ import annotations

from dataclasses import dataclass

from mltoolkit.errors import MltoolkitError

PULUMI_INSTALL_HELP = (
    "Install it with the project's conda environment (`conda env create -f environment.yml` "
    "includes the `pulumi` package from conda-forge; or `conda install -c conda-forge pulumi` "
    "into an existing environment), or with Pulumi's installer: "
    "`curl -fsSL https://get.pulumi.com | sh` (then restart the kernel so PATH includes "
    "~/.pulumi/bin)."
)


class StackError(MltoolkitError):
    """Base class of the errors raised while driving a Pulumi stack."""


class GcpExtraMissingError(StackError):
    def __init__(self, module: str) -> None:
        self.module = module
        super().__init__(
            "GKETarget needs the packages of the `gcp` extra (pulumi, pulumi-gcp, "
            f"pulumi-kubernetes, kubernetes), and {module!r} is not installed. "
            "Install the gcp extra: `pip install 'mltoolkit[gcp]'` (or create the conda "
            "environment: `conda env create -f environment.yml`), then restart the kernel."
        )


class PulumiCliError(StackError):
    """The Pulumi CLI cannot be used (missing, too old, incompatible, broken)."""


class PulumiCliMissingError(PulumiCliError):
    def __init__(self, command: str = "pulumi") -> None:
        self.command = command
        super().__init__(
            f"The Pulumi CLI ({command!r}) was not found on PATH; GKETarget drives Google "
            f"Cloud through it. {PULUMI_INSTALL_HELP}"
        )


class PulumiCliTooOldError(PulumiCliError):
    def __init__(self, found: str, minimum: str) -> None:
        self.found = found
        self.minimum = minimum
        super().__init__(
            f"The Pulumi CLI on PATH is version {found}; mltoolkit needs {minimum} or newer "
            "(inline programs for refresh/destroy and streamed engine events). Upgrade it: "
            "`conda update -c conda-forge pulumi`, or re-run Pulumi's installer "
            "`curl -fsSL https://get.pulumi.com | sh`, then restart the kernel."
        )


class PulumiCliIncompatibleError(PulumiCliError):
    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"The Pulumi CLI on PATH does not work with the installed `pulumi` Python package: "
            f"{detail} Install matching versions: `pip install -U pulumi` and "
            "`conda update -c conda-forge pulumi`."
        )


class GoogleCredentialsError(StackError):
    def __init__(self, detail: str = "", hint: str = "") -> None:
        self.detail = detail
        found = f" Details: {detail}" if detail else ""
        extra = f" {hint}" if hint else ""
        super().__init__(
            "No usable Google Cloud credentials were found, so nothing can be created in your "
            "project. Next step: run `gcloud auth application-default login` in a terminal "
            "(or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file), then run "
            f"target.up() again.{extra}{found}"
        )


class AuthPluginMissingError(StackError):
    """``gke-gcloud-auth-plugin`` (or ``gcloud``, which it runs for impersonation) is not on
    the kernel's PATH: the Kubernetes provider could not reach the cluster."""

    def __init__(self, command: str, path: str) -> None:
        self.command = command
        install = (
            "gcloud components install gke-gcloud-auth-plugin (or, where gcloud came from apt: "
            "apt-get install google-cloud-cli-gke-gcloud-auth-plugin)"
            if command == "gke-gcloud-auth-plugin"
            else "install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install)"
        )
        super().__init__(
            f"{command} is not on the PATH this kernel sees, and the cluster's kubeconfig runs it "
            f"to authenticate, so up() would create the cluster and then fail on the first "
            f"Kubernetes object. Nothing was created. Next step: {install}, make sure its "
            f"directory is on PATH for this kernel (restart it after installing), then run "
            f"target.up() again. PATH={path}"
        )


@dataclass(frozen=True)
class QuotaShortfall:
    """One quota the cloud refused: which resource asked, which quota, the numbers if given."""

    resource: str
    metric: str
    scope: str = ""
    requested: float | None = None
    short_by: float | None = None
    limit: float | None = None
    available: float | None = None
    project: str | None = None

    def describe(self) -> str:
        where = f" ({self.scope} quota)" if self.scope else ""
        text = f"{self.resource}: quota {self.metric}{where}"
        if self.requested is not None and self.available is not None:
            text += f" needs {_num(self.requested)} but only {_num(self.available)} are available"
            if self.limit is not None:
                text += f" (limit {_num(self.limit)})"
        elif self.limit is not None:
            text += f" is exhausted (limit {_num(self.limit)})"
        return text


def _num(value: float) -> str:
    return f"{value:g}"


class QuotaExceededError(StackError):
    def __init__(self, operation: str, shortfalls: list[QuotaShortfall]) -> None:
        self.operation = operation
        self.shortfalls = shortfalls
        projects = sorted({s.project for s in shortfalls if s.project})
        link = "https://console.cloud.google.com/iam-admin/quotas"
        if projects:
            link += f"?project={projects[0]}"
        lines = "; ".join(s.describe() for s in shortfalls)
        super().__init__(
            f"{operation} stopped: Google Cloud quota exceeded — {lines}. Next step: ask for "
            "less (fewer or smaller nodes in the ClusterSpec, or another location), or request "
            f"more quota at {link}; then run target.up() again. Resources created before the "
            "failure keep running (and billing): run target.down() if you are giving up."
        )


@dataclass(frozen=True)
class PermissionProblem:
    resource: str
    permission: str | None
    on: str | None
    text: str

    def describe(self) -> str:
        if self.permission:
            where = f" on {self.on}" if self.on else ""
            return f"{self.resource}: missing permission {self.permission}{where}"
        return f"{self.resource}: {self.text}"


class PermissionDeniedError(StackError):
    def __init__(self, operation: str, problems: list[PermissionProblem]) -> None:
        self.operation = operation
        self.problems = problems
        lines = "; ".join(p.describe() for p in problems)
        super().__init__(
            f"{operation} stopped: Google Cloud denied permission — {lines}. Next step: ask a "
            "project owner to grant your account a role that includes it (for example "
            "roles/container.admin for GKE, roles/artifactregistry.admin, roles/storage.admin), "
            "or check that gcloud is logged in as the intended account "
            "(`gcloud auth application-default login`); then run target.up() again. Resources "
            "created before the failure keep running: run target.down() if you are giving up."
        )


class ApiNotEnabledError(StackError):
    def __init__(self, operation: str, services: list[str], project: str | None) -> None:
        self.operation = operation
        self.services = services
        self.project = project
        flag = f" --project {project}" if project else ""
        super().__init__(
            f"{operation} stopped: the Google Cloud API(s) {', '.join(services)} are not enabled "
            f"in the project. Next step: `gcloud services enable {' '.join(services)}{flag}`, "
            "wait a minute, then run target.up() again."
        )


class StackLockedError(StackError):
    def __init__(self, stack: str, holder: str | None = None, pid_alive: bool | None = None) -> None:
        self.stack = stack
        self.holder = holder
        self.pid_alive = pid_alive
        who = f" (lock held by {holder})" if holder else ""
        if pid_alive:
            advice = (
                "That process is still running on this machine: wait for it to finish, then "
                "try again."
            )
        else:
            advice = (
                "If no other up()/down() is running — typically the lock is left by an "
                "interrupted run — release it with target.cancel(), then target.refresh() to "
                "re-read what exists in the cloud, then retry (target.down() to remove "
                "everything)."
            )
        super().__init__(f"Stack {stack!r} is locked by another Pulumi operation{who}. {advice}")


class PendingOperationsError(StackError):
    def __init__(self, stack: str, operations: list[str]) -> None:
        self.stack = stack
        self.operations = operations
        listed = "; ".join(operations) if operations else "(not listed)"
        super().__init__(
            f"Stack {stack!r} has operations left pending by an interrupted run: {listed}. "
            "Pulumi cannot know whether they completed. Next step: "
            "target.refresh(clear_pending_creates=True) re-reads the cloud and drops the "
            "unfinished creates from the stack; whatever they did create is then unknown to "
            "Pulumi and keeps billing, so find it by its labels (e.g. `gcloud container clusters "
            f"list --filter=resourceLabels.stack={stack}`) and delete it; then run target.up() "
            "or target.down() again."
        )


class StackOperationError(StackError):
    """A Pulumi operation failed for a reason without a more specific class."""

    def __init__(self, operation: str, stack: str, details: list[str]) -> None:
        self.operation = operation
        self.stack = stack
        self.details = details
        shown = "\n".join(f"  - {d}" for d in details[:10]) or "  (Pulumi gave no details)"
        super().__init__(
            f"{operation} of stack {stack!r} failed:\n{shown}\nNext step: fix the cause above "
            "and run it again; target.status() shows what the stack holds, and target.down() "
            "removes everything created so far."
        )


class StackNotFoundError(StackError):
    def __init__(self, stack: str, backend: str) -> None:
        self.stack = stack
        self.backend = backend
        super().__init__(
            f"There is no stack {stack!r} in the state backend {backend}: nothing was deployed "
            "there (or it was already removed). Call target.up(spec) to create it."
        )


class NotDeployedError(StackError):
    def __init__(self, stack: str, what: str) -> None:
        self.stack = stack
        super().__init__(
            f"Stack {stack!r} has no {what} yet: call target.up(spec) first "
            "(target.status() shows what the stack holds)."
        )


class NoEndpointError(StackError):
    def __init__(self, stack: str) -> None:
        self.stack = stack
        super().__init__(
            f"Stack {stack!r} has no external endpoint: the model Service is internal because "
            "ClusterSpec.allowed_cidrs is empty. Give allowed_cidrs (e.g. your address as "
            "'198.51.100.7/32') and run target.up(spec) again, or reach it from inside the "
            "cluster (`kubectl port-forward`)."
        )
