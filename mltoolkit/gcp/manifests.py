"""The Kubernetes objects that serve a model on GKE, as plain dicts (pure functions, no Pulumi).

``ModelServing`` and ``ModelEndpoint`` hand these dicts to ``pulumi_kubernetes``; tests validate
them against the Kubernetes OpenAPI schema. Choices worth knowing:

- Requests come from the DeploymentSpec; the memory limit is the spec's ``memory_limit`` or else
  the request (a replica that outgrows it is restarted rather than starving its neighbours); a
  CPU limit is set only when the spec gives one (CPU limits throttle latency-sensitive servers).
- Replicas spread across nodes (``maxSkew: 1`` on ``kubernetes.io/hostname``, enforced) and, best
  effort, across zones, so no node takes all replicas while others have room.
- A replica with ``DeploymentSpec.gpu`` requests ``nvidia.com/gpu`` and tolerates the taint
  GKE itself puts on GPU nodes; other replicas do not, so they never take a GPU node.
- Pods are hardened: every container runs as a non-root user with no privilege escalation, all
  capabilities dropped, the ``RuntimeDefault`` seccomp profile and (for the toolkit's own images)
  a read-only root filesystem with a writable ``/tmp``; the service-account token is not mounted
  (Workload Identity does not need it). The init image is pinned by version.
- Health checks go to the port the pod listens on (``serving_port``) and, for the probes and the
  L7 health check, to a path only where the image is known to serve it (the toolkit's own server);
  an image model gets TCP probes and the load balancer's default path.
- The HorizontalPodAutoscaler keeps between ``replicas`` and ``HPA_MAX_FACTOR × replicas`` at
  ``HPA_CPU_PERCENT`` % CPU; the PodDisruptionBudget lets one replica go at a time.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any, Mapping

from mltoolkit.spec.cluster import ClusterSpec
from mltoolkit.spec.deployment import DeploymentSpec

NAMESPACE = "mltoolkit"
CONTAINER_NAME = "model-server"
PORT_NAME = "http"
SERVING_PORT = 8080
SERVICE_PORT = 80
MODEL_DIR = "/models"
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
GPU_RESOURCE = "nvidia.com/gpu"
#: the taint GKE puts on every GPU node itself (nvidia.com/gpu=present:NoSchedule)
GPU_TAINT_KEY = "nvidia.com/gpu"
HPA_MAX_FACTOR = 2
HPA_CPU_PERCENT = 70
#: the Google Cloud CLI image (slim) that copies the model from the bucket in an init container,
#: pinned by version (a moving tag would change what runs without any change of the spec)
GCLOUD_VERSION = "500.0.0"
GCLOUD_IMAGE = f"gcr.io/google.com/cloudsdktool/google-cloud-cli:{GCLOUD_VERSION}-slim"
#: the non-root user of the serving image (mltoolkit/serving/Dockerfile) and of the init container
RUN_AS_USER = 10001
TMP_DIR = "/tmp"
WORKLOAD_IDENTITY_ANNOTATION = "iam.gke.io/gcp-service-account"
NEG_ANNOTATION = "cloud.google.com/neg"
BACKEND_CONFIG_ANNOTATION = "cloud.google.com/backend-config"
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def selector_labels(model_name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": model_name}


def object_labels(model_name: str, labels: Mapping[str, str]) -> dict[str, str]:
    """User labels plus the app labels every object of one model carries."""
    return {
        **labels,
        **selector_labels(model_name),
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": "mltoolkit",
    }


def _metadata(name: str, model_name: str, labels: Mapping[str, str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": object_labels(model_name, labels), **extra}


def service_account_name(model_name: str) -> str:
    return f"{model_name}-server"


def model_file_name(model_path: str) -> str:
    return PurePosixPath(model_path.replace("\\", "/")).name


def namespace(labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {**labels, "app.kubernetes.io/managed-by": "mltoolkit"}},
    }


def service_account(model_name: str, labels: Mapping[str, str], gsa_email: str | None) -> dict[str, Any]:
    """The pods' Kubernetes service account; bound to ``gsa_email`` by Workload Identity if given."""
    annotations = {WORKLOAD_IDENTITY_ANNOTATION: gsa_email} if gsa_email else {}
    metadata = _metadata(service_account_name(model_name), model_name, labels)
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}


def _resources(deployment: DeploymentSpec) -> dict[str, Any]:
    limits = {"memory": deployment.memory_limit or deployment.memory}
    if deployment.cpu_limit is not None:
        limits["cpu"] = deployment.cpu_limit
    requests = {"cpu": deployment.cpu, "memory": deployment.memory}
    if deployment.gpu:  # an extended resource: request and limit must be equal
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(deployment.gpu)
    return {"requests": requests, "limits": limits}


def serving_port(deployment_spec: DeploymentSpec) -> int:
    """The port the model's pods listen on: the toolkit server's, or the image model's own."""
    model = deployment_spec.model
    return SERVING_PORT if model.path is not None else model.port


def health_path(deployment_spec: DeploymentSpec) -> str | None:
    """The readiness path, where the image is known to serve one (the toolkit's own server)."""
    return READY_PATH if deployment_spec.model.path is not None else None


def _probe(path: str | None, *, initial_delay: int, period: int) -> dict[str, Any]:
    check: dict[str, Any] = (
        {"httpGet": {"path": path, "port": PORT_NAME}} if path is not None else {"tcpSocket": {"port": PORT_NAME}}
    )
    return {
        **check,
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }


def _server_args(deployment: DeploymentSpec, model_path: str) -> list[str]:
    """The replica command line of docs/architecture.md, listening on all pod addresses."""
    model = deployment.model
    args = [
        "--model-path", model_path,
        "--model-name", model.name,
        "--port", str(SERVING_PORT),
        "--host", "0.0.0.0",
        "--replica-id", "$(POD_NAME)",
        "--max-request-bytes", str(deployment.max_request_bytes),
    ]
    if model.batching.enabled:
        args += [
            "--max-batch-size", str(model.batching.max_batch_size),
            "--max-wait-ms", str(model.batching.max_wait_ms),
        ]
    else:
        args.append("--no-batching")
    return args


def container_security(*, read_only_root: bool) -> dict[str, Any]:
    """A container that cannot gain privileges: non-root, no capabilities, seccomp on."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security(*, run_as_user: int | None) -> dict[str, Any]:
    context: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if run_as_user is not None:
        context.update(runAsUser=run_as_user, runAsGroup=run_as_user, fsGroup=run_as_user)
    return context


def deployment(
    deployment_spec: DeploymentSpec,
    cluster: ClusterSpec,
    labels: Mapping[str, str],
    *,
    image: str,
    model_url: str | None,
) -> dict[str, Any]:
    """The model server Deployment.

    With ``model_url`` (``gs://bucket/object``, a model given as a file) an init container copies
    the model into an ``emptyDir`` using the pod's Workload Identity, and the server container runs
    ``python -m mltoolkit.serving`` on it. Without it (a model given as an image) the image runs
    as built, serving on the model's port.
    """
    model = deployment_spec.model
    name = model.name
    own_server = model_url is not None
    ready = health_path(deployment_spec)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "resources": _resources(deployment_spec),
        "readinessProbe": _probe(ready, initial_delay=2, period=5),
        "livenessProbe": _probe(LIVE_PATH if ready else None, initial_delay=15, period=10),
        # an image model may write anywhere in its filesystem: read-only only for our server
        "securityContext": container_security(read_only_root=own_server),
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": service_account_name(name),
        # nothing in the pod calls the Kubernetes API; Workload Identity works without the token
        "automountServiceAccountToken": False,
        "securityContext": pod_security(run_as_user=RUN_AS_USER if own_server else None),
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": selector_labels(name)},
            },
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector_labels(name)},
            },
        ],
    }
    if model_url is not None:
        local_model = f"{MODEL_DIR}/{model_file_name(model_url)}"
        container["ports"] = [{"name": PORT_NAME, "containerPort": SERVING_PORT}]
        container["command"] = ["python", "-m", "mltoolkit.serving"]
        container["args"] = _server_args(deployment_spec, local_model)
        container["env"] = [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "MLTOOLKIT_MODEL_PATH", "value": local_model},
            {"name": "MLTOOLKIT_MODEL_NAME", "value": name},
            {"name": "PORT", "value": str(SERVING_PORT)},
            {"name": "MLTOOLKIT_HOST", "value": "0.0.0.0"},
        ]
        container["volumeMounts"] = [
            {"name": "model", "mountPath": MODEL_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": TMP_DIR},
        ]
        pod_spec["initContainers"] = [
            {
                "name": "fetch-model",
                "image": GCLOUD_IMAGE,
                "command": ["gcloud", "storage", "cp", model_url, local_model],
                # gcloud keeps its configuration and logs under CLOUDSDK_CONFIG: the writable /tmp
                "env": [{"name": "CLOUDSDK_CONFIG", "value": f"{TMP_DIR}/gcloud"}],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "256Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"},
                },
                "securityContext": container_security(read_only_root=True),
                "volumeMounts": [{"name": "model", "mountPath": MODEL_DIR}, {"name": "tmp", "mountPath": TMP_DIR}],
            }
        ]
        pod_spec["volumes"] = [{"name": "model", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    else:
        container["ports"] = [{"name": PORT_NAME, "containerPort": model.port}]
    if deployment_spec.gpu:
        pod_spec["tolerations"] = [
            {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, name, labels),
        "spec": {
            "replicas": deployment_spec.replicas,
            "selector": {"matchLabels": selector_labels(name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": object_labels(name, labels)}, "spec": pod_spec},
        },
    }


def service(
    model_name: str,
    cluster: ClusterSpec,
    labels: Mapping[str, str],
    selector: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The model's external Service: in front of the pods ``selector`` picks (default: the
    replicas; the program passes the balancer tier's).

    L4 with allowed sources: type LoadBalancer, ``loadBalancerSourceRanges`` = the allowed CIDRs
    (``0.0.0.0/0`` only with ``allow_public``). L7: ClusterIP with container-native NEGs, behind
    the Ingress. Nobody allowed: ClusterIP, no external address at all.
    """
    metadata = _metadata(model_name, model_name, labels)
    spec: dict[str, Any] = {
        "selector": dict(selector) if selector is not None else selector_labels(model_name),
        "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
    }
    if cluster.exposed and cluster.load_balancer == "l4":
        spec["type"] = "LoadBalancer"
        spec["loadBalancerSourceRanges"] = list(cluster.source_ranges)
    else:
        spec["type"] = "ClusterIP"
        if cluster.exposed:  # l7
            metadata["annotations"] = {
                NEG_ANNOTATION: json.dumps({"ingress": True}),
                BACKEND_CONFIG_ANNOTATION: json.dumps({"default": model_name}),
            }
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def ingress(model_name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """GKE Ingress (class ``gce``): a global external Application Load Balancer to the NEGs."""
    metadata = _metadata(model_name, model_name, labels, annotations={INGRESS_CLASS_ANNOTATION: "gce"})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": {"defaultBackend": {"service": {"name": model_name, "port": {"number": SERVICE_PORT}}}},
    }


def backend_config(
    model_name: str,
    labels: Mapping[str, str],
    security_policy: str | None,
    *,
    port: int = SERVING_PORT,
    request_path: str | None = READY_PATH,
) -> dict[str, Any]:
    """GKE BackendConfig: the L7 health check on the pods' port (on the ready route where the
    image serves one; else the load balancer's default ``/``), and the Cloud Armor policy."""
    health: dict[str, Any] = {"type": "HTTP", "port": port, "checkIntervalSec": 5, "timeoutSec": 3}
    if request_path is not None:
        health["requestPath"] = request_path
    spec: dict[str, Any] = {"healthCheck": health}
    if security_policy is not None:
        spec["securityPolicy"] = {"name": security_policy}
    return {
        "apiVersion": "cloud.google.com/v1",
        "kind": "BackendConfig",
        "metadata": _metadata(model_name, model_name, labels),
        "spec": spec,
    }


def horizontal_pod_autoscaler(deployment_spec: DeploymentSpec, labels: Mapping[str, str]) -> dict[str, Any]:
    name = deployment_spec.model.name
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(name, name, labels),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": deployment_spec.replicas,
            "maxReplicas": HPA_MAX_FACTOR * deployment_spec.replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": HPA_CPU_PERCENT},
                    },
                }
            ],
        },
    }


def pod_disruption_budget(model_name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(model_name, model_name, labels),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(model_name)}},
    }
