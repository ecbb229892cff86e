"""The balancer tier's Kubernetes objects, as plain dicts (pure functions, no Pulumi).

On GKE the model's own balancer runs in the cluster, so a ``BalancerSpec`` policy applies there as
it does locally:

    client -> external Service / Ingress "MODEL" -> balancer pods "MODEL-balancer"
           -> (EndpointSlices of the ClusterIP Service "MODEL-replicas") -> model-server pods

- ``MODEL-replicas`` (ClusterIP) selects the model-server pods; nothing outside the cluster
  reaches it, and only the balancer tier uses it: the balancer follows its EndpointSlices
  (``python -m mltoolkit.balancer --discover-service MODEL-replicas``, see
  ``mltoolkit.balancer.discovery``) and sends requests to the pods directly, by its policy.
- The external Service keeps the name ``MODEL`` (its type, ``loadBalancerSourceRanges`` and NEG
  annotations as ``manifests.service`` makes them) but selects the balancer pods
  (``front_service``); the L7 health check asks the balancer's ``/-/health``.
- The balancer pods (``BalancerTierSpec.replicas``, 2 by default) spread over nodes (topology
  spread on the hostname, enforced, plus preferred anti-affinity), run hardened (non-root, no
  privilege escalation, every capability dropped, seccomp ``RuntimeDefault``, read-only root
  filesystem), sleep a few seconds in ``preStop`` so load balancers stop sending before the
  process stops accepting, and have a PodDisruptionBudget letting one go at a time.
- Least privilege: the tier's ServiceAccount mounts its token (discovery needs it) and its Role
  may only get, list and watch ``endpointslices`` (``discovery.k8s.io``) in the namespace.

The pod template carries only the tier's own labels, not the caller's (an ``expires`` label that
changes on every ``up()`` would restart the pods each time).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Mapping

from mltoolkit.errors import SpecError
from mltoolkit.gcp import manifests
from mltoolkit.spec.cluster import ClusterSpec
from mltoolkit.spec.deployment import DeploymentSpec
from mltoolkit.spec.quantities import cpu_millicores, memory_bytes

CONTAINER_NAME = "balancer"
BALANCER_PORT = manifests.SERVING_PORT
HEALTH_PATH = "/-/health"
#: the Service port name of the replicas' Service, and so of its EndpointSlices' port
REPLICA_PORT_NAME = manifests.PORT_NAME
#: the user the serving image runs as (mltoolkit/serving/Dockerfile: USER 10001)
RUN_AS_USER = 10001
PRE_STOP_SLEEP_S = 5
DISCOVERY_RULES = [
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]}
]
#: what ``python -m mltoolkit.balancer`` takes to find replicas through Kubernetes
DISCOVER_SERVICE_OPTION = "--discover-service"
DISCOVER_NAMESPACE_OPTION = "--discover-namespace"
DISCOVER_PORT_NAME_OPTION = "--discover-port-name"
_SUFFIXES = ("-balancer", "-replicas")


@dataclass(frozen=True)
class BalancerTierSpec:
    """The balancer pods on GKE: how many, and what each requests (and may use at most)."""

    replicas: int = 2
    cpu: str = "250m"
    memory: str = "256Mi"
    cpu_limit: str = "1"
    memory_limit: str = "256Mi"

    def __post_init__(self) -> None:
        if isinstance(self.replicas, bool) or not isinstance(self.replicas, int) or not 1 <= self.replicas <= 32:
            raise SpecError("BalancerTierSpec.replicas", self.replicas, "a whole number from 1 to 32")
        if cpu_millicores(self.cpu_limit, "BalancerTierSpec.cpu_limit") < cpu_millicores(self.cpu, "BalancerTierSpec.cpu"):
            raise SpecError("BalancerTierSpec.cpu_limit", self.cpu_limit, f"at least the request {self.cpu!r}")
        limit = memory_bytes(self.memory_limit, "BalancerTierSpec.memory_limit")
        if limit < memory_bytes(self.memory, "BalancerTierSpec.memory"):
            raise SpecError("BalancerTierSpec.memory_limit", self.memory_limit, f"at least the request {self.memory!r}")

    @property
    def cpu_cores(self) -> float:
        return cpu_millicores(self.cpu) / 1000

    @property
    def memory_gb(self) -> float:
        return memory_bytes(self.memory) / 1e9


def check_model_name(model_name: str) -> None:
    """The tier's names are the model's plus a suffix: all must stay Kubernetes DNS labels."""
    longest = max(len(s) for s in _SUFFIXES)
    if len(model_name) + longest > 63:
        raise SpecError(
            "ModelSpec.name", model_name,
            f"at most {63 - longest} characters on GKE: the balancer tier names objects "
            f"'{model_name[:8]}...-balancer' and '...-replicas', which must stay within 63",
        )  # fmt: skip


def tier_name(model_name: str) -> str:
    return f"{model_name}-balancer"


def replica_service_name(model_name: str) -> str:
    return f"{model_name}-replicas"


def selector_labels(model_name: str) -> dict[str, str]:
    """The balancer pods' selector; distinct from the model's, so no model Service selects them."""
    return {"app.kubernetes.io/name": tier_name(model_name)}


def pod_labels(model_name: str) -> dict[str, str]:
    return {
        **selector_labels(model_name),
        "app.kubernetes.io/component": "balancer",
        "app.kubernetes.io/part-of": model_name,
        "app.kubernetes.io/managed-by": "mltoolkit",
    }


def object_labels(model_name: str, labels: Mapping[str, str]) -> dict[str, str]:
    return {**labels, **pod_labels(model_name)}


def _metadata(name: str, model_name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": manifests.NAMESPACE, "labels": object_labels(model_name, labels)}


def service_account(model_name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(tier_name(model_name), model_name, labels),
        "automountServiceAccountToken": True,
    }


def role(model_name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """get/list/watch EndpointSlices in the namespace; nothing else."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(tier_name(model_name), model_name, labels),
        "rules": copy.deepcopy(DISCOVERY_RULES),
    }


def role_binding(model_name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    name = tier_name(model_name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(name, model_name, labels),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": manifests.NAMESPACE}],
    }


def replica_service(model_name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """ClusterIP Service of the model-server pods, followed by the tier (never exposed)."""
    metadata = {
        "name": replica_service_name(model_name),
        "namespace": manifests.NAMESPACE,
        "labels": manifests.object_labels(model_name, labels),
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "type": "ClusterIP",
            "selector": manifests.selector_labels(model_name),
            "ports": [{"name": REPLICA_PORT_NAME, "port": manifests.SERVICE_PORT,
                       "targetPort": manifests.PORT_NAME, "protocol": "TCP"}],  # fmt: skip
        },
    }


def balancer_args(deployment: DeploymentSpec) -> list[str]:
    """The balancer's command line: the BalancerSpec's settings, replicas found by discovery."""
    spec, model = deployment.balancer, deployment.model.name
    hedge = ["--hedge"] if spec.hedge else []
    return [
        "--port", str(BALANCER_PORT),
        "--host", "0.0.0.0",
        "--policy", spec.policy,
        "--health-interval", repr(float(spec.health_interval_s)),
        "--retries", str(spec.retries),
        "--timeout", repr(float(spec.request_timeout_s)),
        "--max-request-bytes", str(deployment.max_request_bytes),
        "--data-plane", spec.data_plane,
        DISCOVER_SERVICE_OPTION, replica_service_name(model),
        DISCOVER_NAMESPACE_OPTION, manifests.NAMESPACE,
        DISCOVER_PORT_NAME_OPTION, REPLICA_PORT_NAME,
        *hedge,
    ]  # fmt: skip


def _probe(*, initial_delay: int, period: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": HEALTH_PATH, "port": manifests.PORT_NAME},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }


def termination_grace_s(deployment: DeploymentSpec) -> int:
    """Long enough for the preStop pause and for requests in flight to finish (their timeout)."""
    return PRE_STOP_SLEEP_S + math.ceil(deployment.balancer.request_timeout_s) + 5


def deployment(
    deployment_spec: DeploymentSpec, tier: BalancerTierSpec, labels: Mapping[str, str], *, image: str
) -> dict[str, Any]:
    model = deployment_spec.model.name
    check_model_name(model)
    name = tier_name(model)
    seccomp = {"type": "RuntimeDefault"}
    container = {
        "name": CONTAINER_NAME,
        "image": image,
        "command": ["python", "-m", "mltoolkit.balancer"],
        "args": balancer_args(deployment_spec),
        "ports": [{"name": manifests.PORT_NAME, "containerPort": BALANCER_PORT, "protocol": "TCP"}],
        "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
        "resources": {
            "requests": {"cpu": tier.cpu, "memory": tier.memory},
            "limits": {"cpu": tier.cpu_limit, "memory": tier.memory_limit},
        },
        "readinessProbe": _probe(initial_delay=1, period=5),
        "livenessProbe": _probe(initial_delay=10, period=10),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_S}}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": seccomp,
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": selector_labels(model)},
        }
        for key, when in (("kubernetes.io/hostname", "DoNotSchedule"), ("topology.kubernetes.io/zone", "ScheduleAnyway"))
    ]
    pod_spec = {
        "serviceAccountName": name,
        "automountServiceAccountToken": True,
        "terminationGracePeriodSeconds": termination_grace_s(deployment_spec),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "seccompProfile": seccomp,
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
        "topologySpreadConstraints": spread,
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": selector_labels(model)},
                        },
                    }
                ]
            }
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, model, labels),
        "spec": {
            "replicas": tier.replicas,
            "selector": {"matchLabels": selector_labels(model)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": pod_labels(model)}, "spec": pod_spec},
        },
    }


def pod_disruption_budget(model_name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(tier_name(model_name), model_name, labels),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(model_name)}},
    }


def front_service(model_name: str, cluster: ClusterSpec, labels: Mapping[str, str]) -> dict[str, Any]:
    """The external Service of ``manifests.service`` (type, source ranges, NEG annotations),
    selecting the balancer pods instead of the model-server pods."""
    return manifests.service(model_name, cluster, labels, selector=selector_labels(model_name))


def front_backend_config(
    model_name: str, labels: Mapping[str, str], security_policy: str | None
) -> dict[str, Any]:
    """``manifests.backend_config`` with the L7 health check on the balancer's health route."""
    return manifests.backend_config(
        model_name, labels, security_policy, port=BALANCER_PORT, request_path=HEALTH_PATH
    )
