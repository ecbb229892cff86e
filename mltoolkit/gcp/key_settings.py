"""One line of the settings that matter for each kind of resource the program registers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # plain data in, no Pulumi needed to price or summarise it
    from mltoolkit.gcp.mock_runtime import RegisteredResource


def _get(data: Any, path: str, default: Any = None) -> Any:
    for key in path.split("."):
        if isinstance(data, list):
            try:
                data = data[int(key)]
            except (ValueError, IndexError):
                return default
        elif isinstance(data, dict) and key in data:
            data = data[key]
        else:
            return default
    return data


def _pairs(**values: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items() if v not in (None, "", [], {}))


def _node_pool(i: dict[str, Any]) -> str:
    config = i.get("nodeConfig", {})
    gpus = [f"{a.get('count')}x{a.get('type')}" for a in config.get("guestAccelerators") or []]
    return _pairs(
        machine=config.get("machineType"),
        nodes=f"{_get(i, 'autoscaling.totalMinNodeCount')}-{_get(i, 'autoscaling.totalMaxNodeCount')}",
        spot=config.get("spot", False),
        disk=f"{config.get('diskSizeGb')}GB {config.get('diskType')}",
        gpu=",".join(gpus),
        taints=",".join(f"{t.get('key')}:{t.get('effect')}" for t in config.get("taints") or []),
    )


def _cluster(i: dict[str, Any]) -> str:
    return _pairs(
        location=i.get("location"),
        channel=_get(i, "releaseChannel.channel"),
        mode=i.get("networkingMode"),
        workload_pool=_get(i, "workloadIdentityConfig.workloadPool"),
        private_nodes=bool(_get(i, "privateClusterConfig.enablePrivateNodes")),
        authorized_networks=",".join(
            b.get("cidrBlock", "") for b in _get(i, "masterAuthorizedNetworksConfig.cidrBlocks", []) or []
        ),
        deletion_protection=i.get("deletionProtection"),
    )


def _option(args: Any, option: str) -> Any:
    """The value after ``option`` in a container's ``args`` (None when absent)."""
    if not isinstance(args, list) or option not in args[:-1]:
        return None
    return args[args.index(option) + 1]


def _deployment(i: dict[str, Any]) -> str:
    container = _get(i, "spec.template.spec.containers.0", {}) or {}
    args = container.get("args")
    return _pairs(
        replicas=_get(i, "spec.replicas"),
        image=container.get("image"),
        cpu=_get(container, "resources.requests.cpu"),
        memory=_get(container, "resources.requests.memory"),
        gpu=_get(container, "resources.limits", {}).get("nvidia.com/gpu"),
        policy=_option(args, "--policy"),  # the balancer tier's BalancerSpec
        data_plane=_option(args, "--data-plane"),
    )


def _service(i: dict[str, Any]) -> str:
    return _pairs(
        type=_get(i, "spec.type"),
        source_ranges=",".join(_get(i, "spec.loadBalancerSourceRanges", []) or []),
        neg=bool(_get(i, "metadata.annotations", {}) or {}),
    )


_EXTRACTORS: dict[str, Callable[[dict[str, Any]], str]] = {
    "gcp:artifactregistry/repository:Repository": lambda i: _pairs(
        id=i.get("repositoryId"),
        format=i.get("format"),
        cleanup=",".join(p.get("id", "") for p in i.get("cleanupPolicies") or []),
    ),
    "gcp:storage/bucket:Bucket": lambda i: _pairs(
        location=i.get("location"),
        uniform_access=i.get("uniformBucketLevelAccess"),
        public_access_prevention=i.get("publicAccessPrevention"),
    ),
    "gcp:storage/bucketObject:BucketObject": lambda i: _pairs(object=i.get("name")),
    "gcp:compute/network:Network": lambda i: _pairs(auto_subnets=i.get("autoCreateSubnetworks")),
    "gcp:compute/subnetwork:Subnetwork": lambda i: _pairs(
        range=i.get("ipCidrRange"),
        secondary=",".join(f"{r.get('rangeName')}:{r.get('ipCidrRange')}" for r in i.get("secondaryIpRanges") or []),
        private_google_access=i.get("privateIpGoogleAccess"),
    ),
    "gcp:compute/routerNat:RouterNat": lambda i: _pairs(ranges=i.get("sourceSubnetworkIpRangesToNat")),
    "gcp:compute/securityPolicy:SecurityPolicy": lambda i: _pairs(
        allow=",".join(
            ",".join(_get(r, "match.config.srcIpRanges", []) or [])
            for r in i.get("rules") or []
            if r.get("action") == "allow"
        ),
        default="deny(403)",
    ),
    "gcp:serviceaccount/account:Account": lambda i: _pairs(account_id=i.get("accountId")),
    "gcp:projects/iAMMember:IAMMember": lambda i: _pairs(role=i.get("role")),
    "gcp:serviceaccount/iAMMember:IAMMember": lambda i: _pairs(role=i.get("role"), member=i.get("member")),
    "gcp:storage/bucketIAMMember:BucketIAMMember": lambda i: _pairs(role=i.get("role")),
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": lambda i: _pairs(role=i.get("role")),
    "gcp:container/cluster:Cluster": _cluster,
    "gcp:container/nodePool:NodePool": _node_pool,
    "pulumi:providers:kubernetes": lambda i: _pairs(kubeconfig="[secret]"),
    "kubernetes:core/v1:Namespace": lambda i: _pairs(name=_get(i, "metadata.name")),
    "kubernetes:core/v1:ServiceAccount": lambda i: _pairs(
        workload_identity=_get(i, "metadata.annotations", {}).get("iam.gke.io/gcp-service-account")
        if _get(i, "metadata.annotations")
        else None
    ),
    "kubernetes:apps/v1:Deployment": _deployment,
    "kubernetes:core/v1:Service": _service,
    "kubernetes:networking.k8s.io/v1:Ingress": lambda i: _pairs(
        ingress_class=_get(i, "metadata.annotations", {}).get("kubernetes.io/ingress.class")
    ),
    "kubernetes:cloud.google.com/v1:BackendConfig": lambda i: _pairs(
        health=_get(i, "spec.healthCheck.requestPath"), armor=_get(i, "spec.securityPolicy.name")
    ),
    "command:local:Command": lambda i: _pairs(
        build="Cloud Build, skipped when the tag exists", tag=",".join(str(t) for t in i.get("triggers") or [])
    ),
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": lambda i: _pairs(
        replicas=f"{_get(i, 'spec.minReplicas')}-{_get(i, 'spec.maxReplicas')}",
        cpu_target=f"{_get(i, 'spec.metrics.0.resource.target.averageUtilization')}%",
    ),
    "kubernetes:policy/v1:PodDisruptionBudget": lambda i: _pairs(max_unavailable=_get(i, "spec.maxUnavailable")),
}


def key_settings(resource: RegisteredResource) -> str:
    extract = _EXTRACTORS.get(resource.type)
    return extract(resource.inputs) if extract else ""
