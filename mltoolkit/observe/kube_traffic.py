"""What the balancer tier's pods report about real traffic, read through the Kubernetes API.

The balancer pods are not reachable from outside the cluster, and need not be: the API server
proxies to a pod (``GET /api/v1/namespaces/NS/pods/POD:PORT/proxy/PATH``) with the kubeconfig's
credentials. ``fetch_balancer_documents`` lists the tier's running, ready pods (by label) and
reads one JSON document from each (``/-/metrics?format=json`` for ``latency()``, ``/-/replicas``
for ``utilization()``'s counters); ``mltoolkit.observe.traffic`` sums them (pure).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from mltoolkit.errors import SpecError
from mltoolkit.observe.kube_metrics import (
    KubeMetricsError,
    _get_json,
    api_client_from_kubeconfig,
    validate_label_selector,
    validate_namespace,
)
from mltoolkit.observe.traffic import TrafficSnapshot, merge_replica_reports, traffic_snapshot

METRICS_PATH = "-/metrics"
REPLICAS_PATH = "-/replicas"


def ready_pods(pods: Mapping[str, Any]) -> list[str]:
    """Names of the pods in a PodList that are Running with condition Ready true (pure)."""
    names = []
    for pod in pods.get("items") or []:
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        if status.get("phase") == "Running" and ready and not (pod.get("metadata") or {}).get("deletionTimestamp"):
            names.append(pod["metadata"]["name"])
    return sorted(names)


def _proxy_get(
    api_client: k8s_client.ApiClient, namespace: str, pod: str, port: int, path: str,
    query: Sequence[tuple[str, str]], request_timeout: float,
) -> dict[str, Any]:  # fmt: skip
    resource = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}:{int(port)}/proxy/{path}"

    def call(_preload_content: bool = False) -> Any:
        request = api_client.param_serialize(
            "GET", resource, query_params=list(query), header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )  # fmt: skip
        response = api_client.call_api(*request, _request_timeout=request_timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    return _get_json(call, f"read /{path} of balancer pod {pod}", api_client.configuration.host)


def fetch_balancer_documents(
    api_client: k8s_client.ApiClient,
    *,
    namespace: str,
    label_selector: str,
    port: int,
    path: str,
    query: Sequence[tuple[str, str]] = (),
    request_timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """One JSON document from each ready balancer pod (``KubeMetricsError`` if none is ready)."""
    host = api_client.configuration.host
    core = k8s_client.CoreV1Api(api_client)
    pods = _get_json(
        core.list_namespaced_pod, f"list the balancer pods in namespace {namespace!r}", host,
        namespace=namespace, label_selector=label_selector, _request_timeout=request_timeout,
    )  # fmt: skip
    names = ready_pods(pods)
    if not names:
        raise KubeMetricsError(
            f"no balancer pod is ready in namespace {namespace!r} (pods labelled {label_selector}); "
            "is the model deployed?"
        )
    return [_proxy_get(api_client, namespace, name, port, path, query, request_timeout) for name in names]


def read_balancers(
    kubeconfig: str | Mapping[str, Any] | k8s_client.ApiClient,
    *,
    namespace: str,
    label_selector: str | Mapping[str, str],
    port: int,
    path: str,
    query: Sequence[tuple[str, str]] = (),
    request_timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """``fetch_balancer_documents`` from a kubeconfig (text or dict; or an ApiClient, left open),
    its arguments checked first."""
    checked_namespace = validate_namespace(namespace)
    selector = validate_label_selector(label_selector)
    if checked_namespace is None or selector is None:
        raise SpecError("namespace/label_selector", (namespace, label_selector), "a namespace and a label selector")
    settings = dict(namespace=checked_namespace, label_selector=selector, port=port, path=path, query=query,
                    request_timeout=request_timeout)  # fmt: skip
    if isinstance(kubeconfig, k8s_client.ApiClient):
        return fetch_balancer_documents(kubeconfig, **settings)
    with api_client_from_kubeconfig(kubeconfig) as api_client:
        return fetch_balancer_documents(api_client, **settings)


def balancer_traffic(kubeconfig: Any, **where: Any) -> TrafficSnapshot:
    """The balancer pods' per-replica traffic (``GET /-/metrics?format=json``), summed, now.
    ``where``: ``namespace``, ``label_selector``, ``port`` (and ``request_timeout``)."""
    documents = read_balancers(kubeconfig, path=METRICS_PATH, query=[("format", "json")], **where)
    return traffic_snapshot(documents, at=time.monotonic())


def balancer_replica_report(kubeconfig: Any, **where: Any) -> dict[str, Any]:
    """The balancer pods' ``GET /-/replicas`` merged (``in_flight``/``served`` summed per replica)."""
    return merge_replica_reports(read_balancers(kubeconfig, path=REPLICAS_PATH, **where))
