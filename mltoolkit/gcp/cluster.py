"""GkeCluster: a GKE Standard cluster with node pools and a least-privilege node service account.

The cluster is VPC-native on the ``Network`` component's subnet, with Workload Identity, a
release channel, ``deletion_protection=False`` (so ``down()`` can destroy it) and no default node
pool. Each node pool autoscales between the spec's total min and max, may use spot VMs, and for
GPUs gets ``guest_accelerators`` with GKE-managed driver installation (GKE taints those nodes
``nvidia.com/gpu`` NoSchedule itself). Nodes run as a dedicated service account that may only read the stack's image
repository and write logs and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from mltoolkit.gcp.network import PODS_RANGE, SERVICES_RANGE
from mltoolkit.spec.cluster import ClusterSpec, NodePoolSpec

MASTER_CIDR = "172.16.0.32/28"  # control plane range for private nodes (outside the VPC ranges)
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
#: project role of the node service account: the one GKE recommends for a custom node account
#: (write logs, metrics, resource metadata, autoscaling metrics; nothing else)
NODE_PROJECT_ROLES = ("roles/container.defaultNodeServiceAccount",)
#: role on the stack's repository only: pull images
NODE_REPOSITORY_ROLE = "roles/artifactregistry.reader"


def account_id(prefix: str, suffix: str) -> str:
    """A service account ID (6-30 characters) from a cluster name and a role suffix."""
    head = prefix[: 30 - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}"


@dataclass(frozen=True)
class GkeClusterArgs:
    spec: ClusterSpec
    network: pulumi.Input[str]
    subnetwork: pulumi.Input[str]
    #: the Artifact Registry repository the nodes pull from
    repository: gcp.artifactregistry.Repository
    #: the cluster's resource labels (updated in place)
    labels: dict[str, str] = field(default_factory=dict)
    #: the node pools' node labels and VM labels: no volatile label (a change recreates nodes)
    node_labels: dict[str, str] | None = None


class GkeCluster(pulumi.ComponentResource):
    TYPE = "mltoolkit:gcp:GkeCluster"

    def __init__(self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        self.node_account = gcp.serviceaccount.Account(
            f"{spec.name}-node-sa",
            project=spec.project,
            account_id=account_id(spec.name, "nodes"),
            display_name=f"GKE nodes of {spec.name} (mltoolkit)",
            opts=child,
        )
        member = pulumi.Output.concat("serviceAccount:", self.node_account.email)
        self.node_roles = [
            gcp.projects.IAMMember(
                f"{spec.name}-node-{role.split('/')[1].replace('.', '-').lower()}",
                project=spec.project,
                role=role,
                member=member,
                opts=child,
            )
            for role in NODE_PROJECT_ROLES
        ]
        self.registry_reader = gcp.artifactregistry.RepositoryIamMember(
            f"{spec.name}-node-registry-reader",
            project=spec.project,
            location=args.repository.location,
            repository=args.repository.name,
            role=NODE_REPOSITORY_ROLE,
            member=member,
            opts=child,
        )
        self.cluster = gcp.container.Cluster(
            f"{spec.name}-cluster",
            name=spec.name,
            project=spec.project,
            location=spec.location,
            deletion_protection=False,
            remove_default_node_pool=True,
            initial_node_count=1,
            # the default pool lives only until it is removed; still no default compute account
            node_config=gcp.container.ClusterNodeConfigArgs(
                service_account=self.node_account.email, oauth_scopes=[CLOUD_PLATFORM_SCOPE]
            ),
            networking_mode="VPC_NATIVE",
            network=args.network,
            subnetwork=args.subnetwork,
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name=PODS_RANGE,
                services_secondary_range_name=SERVICES_RANGE,
            ),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{spec.project}.svc.id.goog"
            ),
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=spec.release_channel),
            addons_config=gcp.container.ClusterAddonsConfigArgs(
                http_load_balancing=gcp.container.ClusterAddonsConfigHttpLoadBalancingArgs(disabled=False),
                horizontal_pod_autoscaling=gcp.container.ClusterAddonsConfigHorizontalPodAutoscalingArgs(
                    disabled=False
                ),
            ),
            private_cluster_config=(
                gcp.container.ClusterPrivateClusterConfigArgs(
                    enable_private_nodes=True,
                    enable_private_endpoint=False,
                    master_ipv4_cidr_block=MASTER_CIDR,
                )
                if spec.private_nodes
                else None
            ),
            master_authorized_networks_config=(
                gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                    cidr_blocks=[
                        gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                            cidr_block=cidr, display_name=f"authorized-{i}"
                        )
                        for i, cidr in enumerate(spec.master_authorized_networks)
                    ]
                )
                if spec.master_authorized_networks
                else None
            ),
            resource_labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["nodeConfig"]),
        )
        self.node_pools = [
            self._node_pool(spec, pool, args.labels if args.node_labels is None else args.node_labels, depends_on=[*self.node_roles, self.registry_reader])
            for pool in spec.node_pools
        ]
        self.name: pulumi.Output[str] = self.cluster.name
        self.endpoint: pulumi.Output[str] = self.cluster.endpoint
        self.master_auth = self.cluster.master_auth
        self.register_outputs({"cluster_name": self.name, "endpoint": self.endpoint})

    def _node_pool(
        self,
        spec: ClusterSpec,
        pool: NodePoolSpec,
        labels: dict[str, str],
        depends_on: list[pulumi.Resource],
    ) -> gcp.container.NodePool:
        guest_accelerators = None
        # no taint of our own on GPU pools: GKE adds nvidia.com/gpu=present:NoSchedule itself,
        # and a second one with the same key is a duplicate the API may reject
        if pool.gpu_type is not None:
            guest_accelerators = [
                gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                    type=pool.gpu_type,
                    count=pool.gpu_count,
                    gpu_driver_installation_config=(
                        gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                            gpu_driver_version="DEFAULT"
                        )
                    ),
                )
            ]
        return gcp.container.NodePool(
            f"{spec.name}-pool-{pool.name}",
            name=pool.name,
            project=spec.project,
            location=spec.location,
            cluster=self.cluster.name,
            initial_node_count=spec.initial_nodes_per_zone(pool),
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                total_min_node_count=pool.min_nodes,
                total_max_node_count=pool.max_nodes,
                # spot capacity: take any zone that has it; on demand: keep zones balanced
                location_policy="ANY" if pool.spot else "BALANCED",
            ),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=pool.machine_type,
                disk_size_gb=pool.disk_size_gb,
                disk_type=pool.disk_type,
                spot=pool.spot,
                service_account=self.node_account.email,
                oauth_scopes=[CLOUD_PLATFORM_SCOPE],
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"
                ),
                labels=labels,  # Kubernetes node labels
                resource_labels=labels,
                guest_accelerators=guest_accelerators,
            ),
            # a changed min_nodes must not replace the pool: autoscaling bounds update in place
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on, ignore_changes=["initialNodeCount"]),
        )
