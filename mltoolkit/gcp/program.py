"""The inline Pulumi program a GKE target runs: ``build_program(cluster, deployment, labels=...)``.

It composes one ComponentResource per job (each in its own module): ``Registry`` (Artifact
Registry + model bucket), ``Network`` (VPC-native subnet, NAT for private nodes), ``GkeCluster``
(cluster, node pools, node service account), ``KubernetesAccess`` (kubeconfig + provider),
``ModelDelivery`` (model file → bucket, Workload Identity), ``ModelServing`` (namespace,
Deployment, HPA, PDB), ``BalancerTier`` (the model's balancer in the cluster, finding the replicas
through their ClusterIP Service's EndpointSlices) and ``ModelEndpoint`` (Service / Ingress, source
ranges, in front of the balancer pods).

Model delivery, the choice made here (no Docker engine on the user's machine):

- A model given as a file (``ModelSpec.path``) is uploaded to the stack's bucket under a
  content-hashed name; each pod's init container (the slim Google Cloud CLI image) copies it into an
  ``emptyDir`` with the pod's own identity — a Kubernetes service account bound by Workload
  Identity to a Google service account that may only read that bucket. A new model means a new
  object name, so the Deployment rolls. The model server image is ``ClusterSpec.serving_image``
  if given, else ``<registry>/mltoolkit-serving:<content hash>`` in the stack's own registry,
  built by ``up()`` itself (``ServingImage``: Cloud Build, from the installed package, with the
  model's libraries pinned; see ``mltoolkit.gcp.images``) before any pod needs it, and skipped
  when that tag exists. Models with the same libraries share one image.
- A model given as an image (``ModelSpec.image``) runs as is, on its own port.

Why not bake the model into the image: that needs a build per model (minutes of Cloud Build, an
image per version to store); and why not mount the bucket with Cloud Storage FUSE: an extra CSI
driver for a file read once at start.

Everything is checked before the program is returned, so a bad spec fails before Pulumi runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import pulumi

from mltoolkit.errors import SpecError
from mltoolkit.gcp import catalog, images, manifests
from mltoolkit.gcp.balancer_tier import BalancerTier, BalancerTierArgs
from mltoolkit.gcp.build import ServingImage, ServingImageArgs
from mltoolkit.gcp.cluster import GkeCluster, GkeClusterArgs
from mltoolkit.gcp.delivery import ModelDelivery, ModelDeliveryArgs
from mltoolkit.gcp.exposure import ModelEndpoint, ModelEndpointArgs
from mltoolkit.gcp.kubeconfig import KubernetesAccess, KubernetesAccessArgs
from mltoolkit.gcp.network import Network, NetworkArgs
from mltoolkit.gcp.registry import Registry, RegistryArgs
from mltoolkit.gcp.serving import ModelServing, ModelServingArgs
from mltoolkit.spec.cluster import ClusterSpec, check_labels
from mltoolkit.spec.deployment import DeploymentSpec, default_model_dir
from mltoolkit.stack.labels import stable_labels

MANAGED_BY = "mltoolkit"
NODE_RESERVED_FRACTION = catalog.NODE_RESERVED_FRACTION

#: the program's components, in the order it declares them (plans list resources in this order)
COMPONENTS = (
    "registry", "network", "cluster", "kubernetes", "model-delivery", "serving-image", "model-serving",
    "balancer-tier", "endpoint",
)

EXPORTS = (
    "registry_url",
    "bucket",
    "cluster_name",
    "kubeconfig",
    "endpoint_ip",
    "endpoint_url",
    "namespace",
    "model_name",
    "serving_image",
    "model_url",
)


def program_labels(cluster: ClusterSpec, labels: Mapping[str, str] | None) -> dict[str, str]:
    """The labels every resource gets: ``managed-by`` and ``mltoolkit-cluster``, then the caller's."""
    return {"managed-by": MANAGED_BY, "mltoolkit-cluster": cluster.name, **check_labels(labels)}


def check_replica_fits(cluster: ClusterSpec, deployment: DeploymentSpec) -> None:
    """Reject a replica whose CPU or memory request no listed node pool machine can hold."""
    machines = [catalog.MACHINE_TYPES.get(p.machine_type) for p in cluster.node_pools]
    if any(m is None for m in machines):
        return  # an unlisted machine type: its size is unknown, let GKE decide
    usable = 1 - NODE_RESERVED_FRACTION
    cpu = max(m.vcpus for m in machines if m is not None) * usable
    memory = max(m.memory_gb for m in machines if m is not None) * usable
    if deployment.cpu_millicores / 1000 > cpu:
        raise SpecError(
            "DeploymentSpec.cpu",
            deployment.cpu,
            f"at most about {cpu:g} cores, what the largest node of the cluster's pools can give one replica",
        )
    if deployment.memory_bytes / 1e9 > memory:
        raise SpecError(
            "DeploymentSpec.memory",
            deployment.memory,
            f"at most about {memory:g} GB, what the largest node of the cluster's pools can give one replica",
        )


def serving_build(cluster: ClusterSpec, deployment: DeploymentSpec) -> tuple[images.BuildContext, Path] | None:
    """The serving image's build context and where ``up()`` writes it, when ``up()`` builds the
    image (no ``ClusterSpec.serving_image``: the balancer tier runs from it, and so do replicas
    of a model file); None otherwise."""
    model = deployment.model
    if cluster.serving_image is not None:
        return None
    context = images.build_context(getattr(model, "library_versions", None) or {})
    return context, images.context_dir(default_model_dir().parent, context)


def check_gpu_request(cluster: ClusterSpec, deployment: DeploymentSpec) -> None:
    """Reject GPUs nothing can give, or that the image could not use."""
    if not deployment.gpu:
        return
    gpu_pools = [p for p in cluster.node_pools if p.has_gpu]
    if not gpu_pools:
        raise SpecError("DeploymentSpec.gpu", deployment.gpu, "0 on a cluster without a GPU node pool")
    most = max(p.gpu_count or 0 for p in gpu_pools)
    if deployment.gpu > most:
        raise SpecError(
            "DeploymentSpec.gpu", deployment.gpu, f"at most {most}, the GPUs of the largest GPU node of the cluster"
        )
    if deployment.model.path is not None and cluster.serving_image is None:
        raise SpecError(
            "DeploymentSpec.gpu",
            deployment.gpu,
            "0 for a model file: the toolkit's serving image (Python slim, scikit-learn) has no "
            "CUDA; serve a CUDA-capable image with ModelSpec.from_image(...) or name one with "
            "ClusterSpec(serving_image=...)",
        )


def build_program(
    cluster: ClusterSpec,
    deployment: DeploymentSpec,
    *,
    labels: Mapping[str, str] = {},
    impersonate_service_account: str | None = None,
) -> Callable[[], None]:
    """The inline Pulumi program for ``cluster`` serving ``deployment``; validates everything first.

    Exports ``registry_url``, ``bucket``, ``cluster_name``, ``kubeconfig`` (secret), ``endpoint_ip``
    and ``endpoint_url`` (None while no source may reach the endpoint), plus ``namespace``,
    ``model_name``, ``serving_image`` and ``model_url`` (the model's ``gs://`` address, or None).
    """
    if not isinstance(cluster, ClusterSpec):
        raise SpecError("cluster", cluster, "a ClusterSpec")
    if not isinstance(deployment, DeploymentSpec):
        raise SpecError("deployment", deployment, "a DeploymentSpec")
    all_labels = program_labels(cluster, labels)
    # the expiry only where a new value is an in-place label update (see VOLATILE_LABELS)
    fixed_labels = stable_labels(all_labels)
    check_replica_fits(cluster, deployment)
    check_gpu_request(cluster, deployment)
    model = deployment.model
    if model.path is not None and not Path(model.path).is_file():
        raise SpecError("ModelSpec.path", model.path, "an existing model file")
    build = serving_build(cluster, deployment)

    def program() -> None:
        registry = Registry(
            "registry",
            RegistryArgs(project=cluster.project, region=cluster.region, repository_id=cluster.name, labels=all_labels),
        )
        network = Network(
            "network",
            NetworkArgs(project=cluster.project, region=cluster.region, prefix=cluster.name, nat=cluster.private_nodes),
        )
        gke = GkeCluster(
            "cluster",
            GkeClusterArgs(
                spec=cluster,
                network=network.network.id,
                subnetwork=network.subnetwork.id,
                repository=registry.repository,
                labels=all_labels,
                node_labels=fixed_labels,
            ),
        )
        access = KubernetesAccess(
            "kubernetes",
            KubernetesAccessArgs(
                project=cluster.project,
                location=cluster.location,
                cluster_name=gke.name,
                endpoint=gke.endpoint,
                master_auth=gke.master_auth,
                node_pools=tuple(gke.node_pools),
                impersonate_service_account=impersonate_service_account,
            ),
        )
        delivery = None
        if model.path is not None:
            delivery = ModelDelivery(
                "model-delivery",
                ModelDeliveryArgs(
                    project=cluster.project,
                    prefix=cluster.name,
                    bucket=registry.bucket_name,
                    model_name=model.name,
                    model_path=model.path,
                    cluster=gke.cluster,
                    labels=fixed_labels,
                ),
            )
        # the mltoolkit image: the balancer tier's, and the replicas' unless the model is an image
        toolkit_image: pulumi.Input[str] = cluster.serving_image or ""
        serving_image = None
        if build is not None:
            context, directory = build
            serving_image = ServingImage(
                "serving-image",
                ServingImageArgs(
                    project=cluster.project,
                    region=cluster.region,
                    registry_url=registry.registry_url,
                    digest=context.digest,
                    context_dir=str(directory),
                    after=(registry.repository, gke.registry_reader),
                ),
            )
            toolkit_image = serving_image.image
        image: pulumi.Input[str] = model.image if model.image is not None else toolkit_image
        pulled_after = (serving_image.build,) if serving_image else ()  # pushed before pods pull
        serving = ModelServing(
            "model-serving",
            ModelServingArgs(
                cluster=cluster,
                deployment=deployment,
                provider=access.provider,
                image=image,
                model_url=delivery.model_url if delivery else None,
                gsa_email=delivery.email if delivery else None,
                labels=fixed_labels,
                # the pods read the model at start: object uploaded, read access granted first
                after=(
                    *(delivery.ready_for_pods if delivery else ()),
                    *(pulled_after if model.image is None else ()),
                ),
            ),
        )
        # the balancer runs from the mltoolkit image, whatever image serves the model
        tier = BalancerTier(
            "balancer-tier",
            BalancerTierArgs(
                deployment=deployment,
                provider=access.provider,
                image=toolkit_image,
                serving=serving,
                labels=fixed_labels,
                after=pulled_after,
                pod_monitoring=cluster.managed_prometheus,
            ),
        )
        endpoint = ModelEndpoint(
            "endpoint",
            ModelEndpointArgs(
                cluster=cluster,
                model_name=model.name,
                provider=access.provider,
                serving=tier,
                labels=fixed_labels,
                cloud_labels=all_labels,
            ),
        )
        pulumi.export("registry_url", registry.registry_url)
        pulumi.export("bucket", registry.bucket_name)
        pulumi.export("cluster_name", gke.name)
        pulumi.export("kubeconfig", access.kubeconfig)
        pulumi.export("endpoint_ip", endpoint.ip)
        pulumi.export("endpoint_url", endpoint.url)
        pulumi.export("namespace", manifests.NAMESPACE)
        pulumi.export("model_name", model.name)
        pulumi.export("serving_image", image)
        pulumi.export("model_url", delivery.model_url if delivery else None)

    return program
