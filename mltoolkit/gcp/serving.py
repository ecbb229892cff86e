"""ModelServing: the model's namespace, service account, Deployment, autoscaler and disruption budget.

The objects themselves are built by ``manifests`` (pure functions); this component only registers
them with the cluster's Kubernetes provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mltoolkit.gcp import manifests
from mltoolkit.spec.cluster import ClusterSpec
from mltoolkit.spec.deployment import DeploymentSpec


@dataclass(frozen=True)
class ModelServingArgs:
    cluster: ClusterSpec
    deployment: DeploymentSpec
    provider: k8s.Provider
    image: pulumi.Input[str]
    #: ``gs://`` address of the model file; None for a model given as an image
    model_url: pulumi.Input[str] | None = None
    #: Google service account the pods act as (Workload Identity); None: none
    gsa_email: pulumi.Input[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    #: resources the pods need before they start (the model object and read access to it)
    after: tuple[pulumi.Resource, ...] = ()


def _split(manifest: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for a pulumi_kubernetes resource from a full manifest."""
    return {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}


class ModelServing(pulumi.ComponentResource):
    TYPE = "mltoolkit:gcp:ModelServing"

    def __init__(self, name: str, args: ModelServingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        model = args.deployment.model.name
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider)
        self.namespace = k8s.core.v1.Namespace(
            f"{model}-namespace", **_split(manifests.namespace(args.labels)), opts=k8s_opts
        )
        in_namespace = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[self.namespace])
        gsa = pulumi.Output.from_input(args.gsa_email)
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{model}-service-account",
            metadata=gsa.apply(lambda email: manifests.service_account(model, args.labels, email)["metadata"]),
            opts=in_namespace,
        )
        manifest = pulumi.Output.all(args.image, args.model_url).apply(
            lambda values: manifests.deployment(
                args.deployment, args.cluster, args.labels, image=values[0], model_url=values[1]
            )
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{model}-deployment",
            metadata=manifest.apply(lambda m: m["metadata"]),
            spec=manifest.apply(lambda m: m["spec"]),
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.provider,
                depends_on=[self.namespace, self.service_account, *args.after],
                # the autoscaler owns the replica count once the Deployment exists: applying
                # spec.replicas again would fight it (server-side apply conflicts, replicas reset)
                ignore_changes=["spec.replicas"],
            ),
        )
        self.autoscaler = k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{model}-autoscaler",
            **_split(manifests.horizontal_pod_autoscaler(args.deployment, args.labels)),
            opts=in_namespace,
        )
        self.disruption_budget = k8s.policy.v1.PodDisruptionBudget(
            f"{model}-disruption-budget",
            **_split(manifests.pod_disruption_budget(model, args.labels)),
            opts=in_namespace,
        )
        self.namespace_name = manifests.NAMESPACE
        self.register_outputs({"namespace": self.namespace_name, "deployment": model})
