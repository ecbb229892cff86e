"""KubernetesAccess: the cluster's kubeconfig (exec plugin ``gke-gcloud-auth-plugin``) and the
``pulumi_kubernetes.Provider`` built from it.

The kubeconfig holds no credential — ``gke-gcloud-auth-plugin`` fetches a short-lived token from
the user's gcloud login each time — but it names the cluster's address and CA, so it is exported
as a secret all the same. Running ``up()`` for real needs the plugin on ``PATH``
(``gcloud components install gke-gcloud-auth-plugin``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

AUTH_PLUGIN = "gke-gcloud-auth-plugin"
EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"


def render_kubeconfig(context: str, endpoint: str, ca_certificate: str) -> str:
    """A kubeconfig (JSON, which kubectl and client libraries read like YAML) for one cluster."""
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": context, "cluster": {"server": f"https://{endpoint}", "certificate-authority-data": ca_certificate}}
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
        "users": [
            {
                "name": context,
                "user": {
                    "exec": {
                        "apiVersion": EXEC_API_VERSION,
                        "command": AUTH_PLUGIN,
                        "installHint": "Install gke-gcloud-auth-plugin: "
                        "gcloud components install gke-gcloud-auth-plugin",
                        "provideClusterInfo": True,
                        "interactiveMode": "IfAvailable",
                    }
                },
            }
        ],
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


class KubernetesAccess(pulumi.ComponentResource):
    TYPE = "mltoolkit:gcp:KubernetesAccess"

    def __init__(
        self, name: str, args: KubernetesAccessArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(self.TYPE, name, None, opts)

        def render(values: list[Any]) -> str:
            cluster_name, endpoint, master_auth = values
            ca = master_auth["cluster_ca_certificate"] if isinstance(master_auth, dict) else master_auth.cluster_ca_certificate
            return render_kubeconfig(context_name(args.project, args.location, cluster_name), endpoint, ca)

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
