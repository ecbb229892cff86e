"""KubernetesAccess: the cluster's kubeconfig (exec plugin ``gke-gcloud-auth-plugin``) and the
``pulumi_kubernetes.Provider`` built from it.

The kubeconfig holds no credential — ``gke-gcloud-auth-plugin`` fetches a short-lived token each
time — but it names the cluster's address and CA, so it is exported as a secret all the same.

One identity: the plugin runs with ``--use_application_default_credentials``, so it reads the
same application-default credentials as the Google provider (``GOOGLE_APPLICATION_CREDENTIALS``
or gcloud's ADC file), not gcloud's separate user login. With service-account impersonation
(``gcp:impersonateServiceAccount``), the plugin goes through gcloud instead with
``CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT`` set, the one way it impersonates. Running ``up()``
for real needs the plugin on the kernel's ``PATH`` (``GKETarget`` checks before anything is
created).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

AUTH_PLUGIN = "gke-gcloud-auth-plugin"
EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"
ADC_FLAG = "--use_application_default_credentials"
IMPERSONATE_ENV = "CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT"


def exec_credentials(impersonate_service_account: str | None = None) -> dict[str, Any]:
    """The kubeconfig's ``exec`` entry: the GKE auth plugin on the provider's identity."""
    entry: dict[str, Any] = {
        "apiVersion": EXEC_API_VERSION,
        "command": AUTH_PLUGIN,
        "installHint": "Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin",
        "provideClusterInfo": True,
        "interactiveMode": "Never",
    }
    if impersonate_service_account:
        entry["env"] = [{"name": IMPERSONATE_ENV, "value": impersonate_service_account}]
    else:
        entry["args"] = [ADC_FLAG]
    return entry


def render_kubeconfig(
    context: str, endpoint: str, ca_certificate: str, *, impersonate_service_account: str | None = None
) -> str:
    """A kubeconfig (JSON, which kubectl and client libraries read like YAML) for one cluster."""
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": context, "cluster": {"server": f"https://{endpoint}", "certificate-authority-data": ca_certificate}}
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
        "users": [{"name": context, "user": {"exec": exec_credentials(impersonate_service_account)}}],
    }
    return json.dumps(config, indent=2)


def context_name(project: str, location: str, cluster_name: str) -> str:
    """The context name ``gcloud container clusters get-credentials`` would use."""
    return f"gke_{project}_{location}_{cluster_name}"


@dataclass(frozen=True)
class KubernetesAccessArgs:
    project: str
    location: str
    cluster_name: pulumi.Input[str]
    endpoint: pulumi.Input[str]
    master_auth: pulumi.Input[Any]
    #: the provider (and so every Kubernetes object) waits for these: the node pools, without
    #: which no pod schedules and GKE's own workloads (DNS, metrics) are not up yet
    node_pools: tuple[pulumi.Resource, ...] = ()
    #: the service account the Google provider impersonates (None: none)
    impersonate_service_account: str | None = None


class KubernetesAccess(pulumi.ComponentResource):
    TYPE = "mltoolkit:gcp:KubernetesAccess"

    def __init__(
        self, name: str, args: KubernetesAccessArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(self.TYPE, name, None, opts)

        def render(values: list[Any]) -> str:
            cluster_name, endpoint, master_auth = values
            ca = master_auth["cluster_ca_certificate"] if isinstance(master_auth, dict) else master_auth.cluster_ca_certificate
            return render_kubeconfig(
                context_name(args.project, args.location, cluster_name),
                endpoint,
                ca,
                impersonate_service_account=args.impersonate_service_account,
            )

        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(args.cluster_name, args.endpoint, args.master_auth).apply(render)
        )
        self.provider = k8s.Provider(
            f"{name}-provider",
            kubeconfig=self.kubeconfig,
            # destroy still succeeds when the cluster is already gone
            delete_unreachable=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.node_pools)),
        )
        self.register_outputs({"kubeconfig": self.kubeconfig})
