"""BalancerTier: the model's balancer running in the cluster, in front of the model-server pods.

Registers what ``balancer_manifests`` builds (pure): the tier's ServiceAccount, its Role (get,
list and watch EndpointSlices, nothing else) and RoleBinding, the replicas' ClusterIP Service it
follows, its Deployment and PodDisruptionBudget. The external Service / Ingress stays in
``ModelEndpoint``; it selects the balancer pods (``balancer_manifests.front_service``).

With ``BalancerTierArgs.pod_monitoring`` (off by default) it also registers a PodMonitoring
(``monitoring.googleapis.com/v1``): Google Cloud Managed Service for Prometheus then scrapes each
balancer pod's ``GET /-/metrics`` (per-replica counts and latency histograms of real traffic).
GKE clusters have managed collection on by default since 1.27; the object is only a scrape target.

Cost: the tier adds no line item of its own. Its pods' requests take node capacity; when the
pools' minimum nodes cannot hold them next to the model replicas, the autoscaler adds nodes, and
``capacity_note`` says so (``plan()`` prices the pools at min and at max nodes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from mltoolkit.gcp import balancer_manifests as tier_manifests
from mltoolkit.errors import SpecError
from mltoolkit.gcp import catalog, manifests
from mltoolkit.gcp.balancer_manifests import BalancerTierSpec
from mltoolkit.spec.cluster import ClusterSpec
from mltoolkit.spec.deployment import DeploymentSpec

#: what GKE and its system pods keep of a node, roughly (as ``program.NODE_RESERVED_FRACTION``)
NODE_RESERVED_FRACTION = 0.1


@dataclass(frozen=True)
class BalancerTierArgs:
    deployment: DeploymentSpec
    provider: k8s.Provider
    #: an image with the mltoolkit package (the serving image)
    image: pulumi.Input[str]
    #: the resource creating the namespace (``ModelServing``)
    serving: pulumi.Resource
    tier: BalancerTierSpec = field(default_factory=BalancerTierSpec)
    labels: dict[str, str] = field(default_factory=dict)
    #: register a PodMonitoring so Managed Service for Prometheus scrapes the balancers' metrics
    pod_monitoring: bool = False
    #: resources the tier's pods wait for (the image build that pushes their image)
    after: tuple[pulumi.Resource, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.pod_monitoring, bool):
            raise SpecError("BalancerTierArgs.pod_monitoring", self.pod_monitoring, "True or False")


#: how often Managed Service for Prometheus scrapes the balancer pods
SCRAPE_INTERVAL = "30s"
METRICS_PATH = "/-/metrics"


def pod_monitoring(model_name: str, labels: dict[str, str]) -> dict:
    """The PodMonitoring that has every balancer pod of the model scraped at ``/-/metrics``."""
    return {
        "apiVersion": "monitoring.googleapis.com/v1",
        "kind": "PodMonitoring",
        "metadata": {
            "name": tier_manifests.tier_name(model_name),
            "namespace": manifests.NAMESPACE,
            "labels": tier_manifests.object_labels(model_name, labels),
        },
        "spec": {
            "selector": {"matchLabels": tier_manifests.selector_labels(model_name)},
            "endpoints": [{"port": manifests.PORT_NAME, "path": METRICS_PATH, "interval": SCRAPE_INTERVAL}],
        },
    }


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", lambda m: "_" + m.group(1).lower(), name)


class BalancerTier(pulumi.ComponentResource):
    TYPE = "mltoolkit:gcp:BalancerTier"

    def __init__(self, name: str, args: BalancerTierArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        model = args.deployment.model.name
        tier_manifests.check_model_name(model)
        base = tier_manifests.tier_name(model)

        def options(*after: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.serving, *args.after, *after])

        def register(kind: type, suffix: str, manifest: dict, *after: pulumi.Resource) -> pulumi.CustomResource:
            # top-level fields are keyword arguments, in snake case (roleRef -> role_ref)
            values = {_snake(k): v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
            return kind(f"{base}-{suffix}", **values, opts=options(*after))

        self.service_account = register(
            k8s.core.v1.ServiceAccount, "service-account", tier_manifests.service_account(model, args.labels)
        )
        self.role = register(k8s.rbac.v1.Role, "role", tier_manifests.role(model, args.labels))
        self.role_binding = register(
            k8s.rbac.v1.RoleBinding, "role-binding", tier_manifests.role_binding(model, args.labels),
            self.role, self.service_account,
        )  # fmt: skip
        self.replica_service = register(
            k8s.core.v1.Service, "replica-service", tier_manifests.replica_service(model, args.labels)
        )
        manifest = pulumi.Output.from_input(args.image).apply(
            lambda image: tier_manifests.deployment(args.deployment, args.tier, args.labels, image=image)
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{base}-deployment",
            metadata=manifest.apply(lambda m: m["metadata"]),
            spec=manifest.apply(lambda m: m["spec"]),
            opts=options(self.role_binding, self.replica_service),
        )
        self.disruption_budget = register(
            k8s.policy.v1.PodDisruptionBudget, "disruption-budget", tier_manifests.pod_disruption_budget(model, args.labels)
        )
        self.pod_monitoring: pulumi.CustomResource | None = None
        if args.pod_monitoring:
            monitoring = pod_monitoring(model, args.labels)
            self.pod_monitoring = k8s.apiextensions.CustomResource(
                f"{base}-pod-monitoring",
                api_version=monitoring["apiVersion"],
                kind=monitoring["kind"],
                metadata=monitoring["metadata"],
                spec=monitoring["spec"],
                opts=options(self.deployment),
            )
        self.selector = tier_manifests.selector_labels(model)
        self.register_outputs(
            {"deployment": base, "replica_service": tier_manifests.replica_service_name(model), "replicas": args.tier.replicas}
        )


def capacity_note(cluster: ClusterSpec, deployment: DeploymentSpec, tier: BalancerTierSpec) -> str:
    """What the tier takes of the nodes, and whether the pools' minimum nodes still hold everything.

    A rough first-fit check on requests: the model replicas and the balancer pods against the
    allocatable capacity (about 90 % of each machine) of the pools at ``min_nodes`` (balancer pods
    only on pools without GPUs: they do not tolerate the GPU taint).
    """
    pods = tier.replicas
    used = (
        f"The balancer tier runs {pods} pod(s) of {tier.cpu} CPU / {tier.memory} each "
        f"({pods * tier.cpu_cores:g} cores, {pods * tier.memory_gb:.2g} GB in all) on the node pools' "
        "capacity: no line item of its own"
    )
    machines = [(p, catalog.MACHINE_TYPES.get(p.machine_type)) for p in cluster.node_pools]
    if any(m is None for _, m in machines):
        return used + "."
    usable = 1 - NODE_RESERVED_FRACTION
    nodes: list[tuple[float, float, bool]] = []  # free (cores, GB) per node, and GPU pool or not
    for pool, machine in machines:
        assert machine is not None
        nodes += [(machine.vcpus * usable, machine.memory_gb * usable, pool.has_gpu)] * pool.min_nodes
    replica = (deployment.cpu_millicores / 1000, deployment.memory_bytes / 1e9)
    balancer = (tier.cpu_cores, tier.memory_gb)
    free = [[cpu, memory, gpu] for cpu, memory, gpu in nodes]
    unplaced = 0
    # balancer pods first (they have fewer places to go), then replicas, each on the emptiest node
    for (cpu, memory), on_gpu in [(balancer, False)] * pods + [(replica, True)] * deployment.replicas:
        fits = [n for n in free if n[0] >= cpu and n[1] >= memory and (on_gpu or not n[2])]
        if not fits:
            unplaced += 1
            continue
        node = max(fits, key=lambda n: (n[0], n[1]))
        node[0] -= cpu
        node[1] -= memory
    if unplaced:
        return (
            f"{used}; but at min_nodes the pools cannot hold the {deployment.replicas} model replica(s) and "
            f"the balancer pods ({unplaced} pod(s) left over): the autoscaler adds nodes, so expect a cost "
            "between the min-nodes and max-nodes figures."
        )
    return used + "; the pools' minimum nodes hold it next to the model replicas."
