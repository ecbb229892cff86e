"""A small fake Kubernetes API server on 127.0.0.1 for the metrics tests and benchmark.

It answers the read-only list calls ``node_utilization`` makes, with the JSON shapes the real
API server and metrics-server return (trimmed of fields nobody reads, but keeping the
structure): ``/apis/metrics.k8s.io/v1beta1/nodes``, ``/api/v1/nodes``, ``/api/v1/pods`` and
``/api/v1/namespaces/NS/pods``, filtering pods by equality-based ``labelSelector`` as the real
server does. It checks the bearer token (401 Status otherwise), can pretend metrics-server is
absent (404 Status, as when the ``metrics.k8s.io`` APIService is not registered) or not
ready (503), and records each request's path and query.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

TOKEN = "fake-bearer-token-3f9a1c"  # what the kubeconfig below carries; tests check it never leaks


def status_document(code: int, reason: str, message: str) -> dict[str, Any]:
    """A metav1.Status, the body of every error the real API server sends."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {},
        "code": code,
    }


# ---------------------------------------------------------------------------------------------
# Objects, shaped as the API server sends them
# ---------------------------------------------------------------------------------------------


def node_object(name: str, *, cpu: str, memory: str, allocatable_cpu: str, allocatable_memory: str,
                pool: str = "default-pool", zone: str = "europe-west1-b",
                machine: str = "e2-standard-4") -> dict[str, Any]:
    """A GKE Node: capacity ``cpu``/``memory``, allocatable as given."""
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "cloud.google.com/gke-nodepool": pool,
        "cloud.google.com/machine-family": machine.split("-")[0],
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": machine,
        "topology.kubernetes.io/region": zone.rsplit("-", 1)[0],
        "topology.kubernetes.io/zone": zone,
    }
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "48213",
            "creationTimestamp": "2024-05-01T09:41:27Z",
            "labels": labels,
            "annotations": {
                "container.googleapis.com/instance_id": "4817309911237761234",
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {
            "podCIDR": "10.52.1.0/24",
            "podCIDRs": ["10.52.1.0/24"],
            "providerID": f"gce://mlt-project/{zone}/{name}",
        },
        "status": {
            "capacity": {
                "cpu": cpu,
                "ephemeral-storage": "98831908Ki",
                "hugepages-1Gi": "0",
                "hugepages-2Mi": "0",
                "memory": memory,
                "pods": "110",
            },
            "allocatable": {
                "cpu": allocatable_cpu,
                "ephemeral-storage": "47060071478",
                "hugepages-1Gi": "0",
                "hugepages-2Mi": "0",
                "memory": allocatable_memory,
                "pods": "110",
            },
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "lastHeartbeatTime": "2024-05-01T10:00:01Z",
                    "lastTransitionTime": "2024-05-01T09:41:57Z",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status. AppArmor enabled",
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": "10.132.0.7"},
                {"type": "ExternalIP", "address": "34.76.10.20"},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "5b2f7c1e-0d3a-4a8e-9f41-2c6d8e0b7a13",
                "machineID": "9c4e1f0a7b2d4c3e8f5a6b7c8d9e0f1a",
                "systemUUID": "9c4e1f0a-7b2d-4c3e-8f5a-6b7c8d9e0f1a",
                "containerRuntimeVersion": "containerd://1.7.13",
                "kernelVersion": "6.1.75+",
                "kubeProxyVersion": "v1.29.3-gke.1282001",
                "kubeletVersion": "v1.29.3-gke.1282001",
                "operatingSystem": "linux",
                "osImage": "Container-Optimized OS from Google",
            },
        },
    }


def node_metrics_object(node: dict[str, Any], *, timestamp: str, cpu: str,
                        memory: str) -> dict[str, Any]:
    """A NodeMetrics item as metrics-server (>= 0.6) serves it: node labels copied over."""
    return {
        "metadata": {
            "name": node["metadata"]["name"],
            "creationTimestamp": "2024-05-01T10:00:12Z",
            "labels": dict(node["metadata"]["labels"]),
        },
        "timestamp": timestamp,
        "window": "20.043s",
        "usage": {"cpu": cpu, "memory": memory},
    }


def pod_object(name: str, *, namespace: str, labels: dict[str, str], node: str | None,
               phase: str = "Running", cpu: str = "500m", memory: str = "512Mi") -> dict[str, Any]:
    """A Pod; ``node`` None means not scheduled yet (no spec.nodeName)."""
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "server",
                "image": "europe-west1-docker.pkg.dev/mlt-project/models/digits:1",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": cpu, "memory": memory}},
                "imagePullPolicy": "IfNotPresent",
            }
        ],
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "serviceAccountName": "default",
    }
    if node is not None:
        spec["nodeName"] = node
    status: dict[str, Any] = {"phase": phase, "qosClass": "Burstable"}
    if node is not None:
        status.update(hostIP="10.132.0.7", podIP="10.52.1.14", startTime="2024-05-01T09:45:02Z")
    return {
        "metadata": {
            "name": name,
            "generateName": name.rsplit("-", 1)[0] + "-",
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "resourceVersion": "48377",
            "creationTimestamp": "2024-05-01T09:45:00Z",
            "labels": dict(labels),
        },
        "spec": spec,
        "status": status,
    }


@dataclass
class FakeCluster:
    """What the fake server serves: plain JSON objects."""

    nodes: list[dict[str, Any]]
    node_metrics: list[dict[str, Any]]
    pods: list[dict[str, Any]]


# ---------------------------------------------------------------------------------------------
# Two clusters: 3 nodes with hand-checked values, and 1,000 nodes built by formula
# ---------------------------------------------------------------------------------------------

THREE_NODE_NAMES = ("gke-mlt-pool-a", "gke-mlt-pool-b", "gke-mlt-pool-c")


def three_node_cluster() -> FakeCluster:
    """a: 4 cores/16Gi allocatable, using 1500m/3794Mi; b: 3920m/13470340Ki, using
    123456789n/1048576Ki; c: just joined, no metrics yet. Pods: see the comments."""
    a, b, c = THREE_NODE_NAMES
    nodes = [
        # listed out of order: the frame is sorted by node name
        node_object(b, cpu="4", memory="16393348Ki", allocatable_cpu="3920m",
                    allocatable_memory="13470340Ki"),
        node_object(a, cpu="4", memory="16Gi", allocatable_cpu="4", allocatable_memory="16Gi"),
        node_object(c, cpu="2", memory="8Gi", allocatable_cpu="1930m", allocatable_memory="5Gi",
                    machine="e2-standard-2"),
    ]
    by_name = {n["metadata"]["name"]: n for n in nodes}
    node_metrics = [
        node_metrics_object(by_name[a], timestamp="2024-05-01T10:00:00Z", cpu="1500m",
                            memory="3794Mi"),
        node_metrics_object(by_name[b], timestamp="2024-05-01T10:00:03Z", cpu="123456789n",
                            memory="1048576Ki"),
        # c has none yet; and a node that has just been deleted still has metrics:
        node_metrics_object(node_object("gke-mlt-pool-gone", cpu="2", memory="8Gi",
                                        allocatable_cpu="1930m", allocatable_memory="5Gi"),
                            timestamp="2024-05-01T10:00:01Z", cpu="5m", memory="1Mi"),
    ]
    digits = {"app": "digits", "pod-template-hash": "7d9f8c6b5"}
    other = {"app": "other", "pod-template-hash": "5c4b3a291"}
    pods = [
        # the model, namespace "digits", app=digits: 2 on a, 1 on b
        pod_object("digits-7d9f8c6b5-aaaaa", namespace="digits", labels=digits, node=a),
        pod_object("digits-7d9f8c6b5-bbbbb", namespace="digits", labels=digits, node=a),
        pod_object("digits-7d9f8c6b5-ccccc", namespace="digits", labels=digits, node=b),
        # not counted anywhere: not scheduled yet, and finished on c
        pod_object("digits-7d9f8c6b5-ddddd", namespace="digits", labels=digits, node=None,
                   phase="Pending"),
        pod_object("digits-7d9f8c6b5-eeeee", namespace="digits", labels=digits, node=c,
                   phase="Succeeded"),
        # another app in the same namespace, on c
        pod_object("other-5c4b3a291-fffff", namespace="digits", labels=other, node=c),
        # system pods, one per node
        *(
            pod_object(f"kube-proxy-{name}", namespace="kube-system",
                       labels={"component": "kube-proxy", "tier": "node"}, node=name,
                       cpu="100m", memory="0")
            for name in (a, b, c)
        ),
    ]
    return FakeCluster(nodes=nodes, node_metrics=node_metrics, pods=pods)


LARGE_MACHINES = (
    # (machine, capacity cpu, capacity memory, allocatable cpu, allocatable memory)
    ("e2-standard-4", "4", "16393340Ki", "3920m", "13316220Ki"),
    ("e2-standard-2", "2", "8141120Ki", "1930m", "5990200Ki"),
)


def large_node_name(i: int) -> str:
    return f"gke-mlt-big-default-pool-7f3a9c2e-{i:04d}"


def large_node_usage(i: int) -> tuple[str, str] | None:
    """Node i's (cpu, memory) usage as metrics-server writes it (nanocores, KiB), or None for
    the nodes that have just joined (every 250th, from 249)."""
    if i % 250 == 249:
        return None
    return f"{50_000_000 + (i * 1_234_567) % 1_800_000_000}n", f"{400_000 + (i * 7_777) % 5_000_000}Ki"


def large_model_pods_on(i: int) -> int:
    """Pods of the model (namespace "digits", app=digits) on node i: 2 on every 10th node."""
    return 2 if i % 10 == 0 else 0


def large_cluster(count: int = 1000) -> FakeCluster:
    nodes, node_metrics, pods = [], [], []
    for i in range(count):
        name = large_node_name(i)
        machine, cpu, memory, alloc_cpu, alloc_memory = LARGE_MACHINES[i % 2]
        node = node_object(name, cpu=cpu, memory=memory, allocatable_cpu=alloc_cpu,
                           allocatable_memory=alloc_memory, machine=machine,
                           zone=("europe-west1-b", "europe-west1-c", "europe-west1-d")[i % 3])
        nodes.append(node)
        usage = large_node_usage(i)
        if usage is not None:
            node_metrics.append(node_metrics_object(
                node, timestamp=f"2024-05-01T10:00:{i % 15:02d}Z", cpu=usage[0], memory=usage[1]))
        pods.append(pod_object(f"kube-proxy-{name}", namespace="kube-system",
                               labels={"component": "kube-proxy", "tier": "node"}, node=name,
                               cpu="100m", memory="0"))
        for k in range(large_model_pods_on(i)):
            pods.append(pod_object(f"digits-7d9f8c6b5-{i:04d}{k}", namespace="digits",
                                   labels={"app": "digits", "pod-template-hash": "7d9f8c6b5"},
                                   node=name))
    return FakeCluster(nodes=nodes, node_metrics=node_metrics, pods=pods)


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based selectors (k=v, k==v, k!=v, k, !k), as the real server applies them."""
    for requirement in filter(None, (r.strip() for r in selector.split(","))):
        if "!=" in requirement:
            key, value = (s.strip() for s in requirement.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in requirement:
            key, value = (s.strip() for s in requirement.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif requirement.startswith("!"):
            if requirement[1:].strip() in labels:
                return False
        elif requirement not in labels:
            return False
    return True


class FakeKubeAPI:
    """The fake API server, started on a free port of 127.0.0.1; use as a context manager."""

    def __init__(self, cluster: FakeCluster, *, token: str = TOKEN,
                 metrics_status: int = 200) -> None:
        self.cluster = cluster
        self.token = token
        self.metrics_status = metrics_status  # 404: metrics API not registered, 503: not ready
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = False  # so that server_close() joins the handler threads
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="fake-kube-api", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def kubeconfig(self, token: str | None = None) -> dict[str, Any]:
        """A kubeconfig for this server: plain http and a bearer token."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake-user", "user": {"token": token or self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake-user"}}],
            "current-context": "fake",
        }

    def kubeconfig_yaml(self, token: str | None = None) -> str:
        return yaml.safe_dump(self.kubeconfig(token), sort_keys=False)

    def start(self) -> FakeKubeAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and end kept-alive connections, so no handler thread outlives us."""
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()  # joins the handler threads (block_on_close)
        self._thread.join(timeout=10)

    def __enter__(self) -> FakeKubeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answering --------------------------------------------------------------------------

    def respond(self, path: str, query: dict[str, list[str]],
                authorization: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append((path, query))
        if authorization != f"Bearer {self.token}":
            return 401, status_document(401, "Unauthorized", "Unauthorized")
        selector = query.get("labelSelector", [""])[0]
        parts = path.strip("/").split("/")
        if path == "/apis/metrics.k8s.io/v1beta1/nodes":
            if self.metrics_status == 404:
                return 404, status_document(
                    404, "NotFound", "the server could not find the requested resource")
            if self.metrics_status == 503:
                return 503, status_document(
                    503, "ServiceUnavailable", "the server is currently unable to handle the request")
            return 200, {"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1",
                         "metadata": {}, "items": self.cluster.node_metrics}
        if path == "/api/v1/nodes":
            return 200, {"kind": "NodeList", "apiVersion": "v1",
                         "metadata": {"resourceVersion": "48400"}, "items": self.cluster.nodes}
        if path == "/api/v1/pods" or (len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"]
                                      and parts[4] == "pods"):
            namespace = parts[3] if len(parts) == 5 else None
            items = [
                pod for pod in self.cluster.pods
                if (namespace is None or pod["metadata"]["namespace"] == namespace)
                and _selector_matches(selector, pod["metadata"]["labels"])
            ]
            return 200, {"kind": "PodList", "apiVersion": "v1",
                         "metadata": {"resourceVersion": "48400"}, "items": items}
        return 404, status_document(404, "NotFound", "the server could not find the requested resource")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real server

            def setup(self) -> None:
                super().setup()
                with api._lock:
                    api._connections.add(self.connection)

            def finish(self) -> None:
                with api._lock:
                    api._connections.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                url = urlsplit(self.path)
                code, document = api.respond(url.path, parse_qs(url.query),
                                             self.headers.get("Authorization"))
                body = json.dumps(document, separators=(",", ":")).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler
