"""The balancer tier's traffic read through a fake Kubernetes API's pod proxy."""

import pytest

from mltoolkit.balancer.metrics import ReplicaTraffic, metrics_document
from mltoolkit.observe.kube_metrics import KubeMetricsError
from mltoolkit.observe.kube_traffic import balancer_replica_report, balancer_traffic, ready_pods
from mltoolkit.observe.traffic import latency_frame
from tests.observe.fake_balancer_pods import TIER_LABELS, FakeKubeAPIWithProxy, balancer_pod
from tests.observe.fake_kube_api import FakeCluster, pod_object

SELECTOR = {"app.kubernetes.io/name": "digits-balancer"}


def metrics(*rows):
    traffic = []
    for name, node, latencies in rows:
        replica = ReplicaTraffic(name, node)
        for latency_s in latencies:
            replica.observe(latency_s, 200)
        traffic.append(replica)
    return metrics_document(traffic)


def replicas(*rows):
    return {"policy": "ewma", "replicas": [
        {"name": n, "url": "u", "node": node, "healthy": True, "in_flight": i, "served": s, "failed": 0}
        for n, node, i, s in rows
    ]}  # fmt: skip


@pytest.fixture
def api():
    pods = [
        balancer_pod("digits-balancer-a1", "node-a"),
        balancer_pod("digits-balancer-b2", "node-b"),
        balancer_pod("digits-balancer-c3", "node-c", ready=False),  # starting: not asked
        pod_object("digits-0", namespace="mltoolkit", labels={"app.kubernetes.io/name": "digits"}, node="node-a"),
    ]
    pages = {
        ("digits-balancer-a1", "/-/metrics?format=json"): metrics(("digits-0", "node-a", [0.003] * 30),
                                                                  ("digits-1", "node-b", [0.3] * 10)),  # fmt: skip
        ("digits-balancer-b2", "/-/metrics?format=json"): metrics(("digits-0", "node-a", [0.003] * 20)),
        ("digits-balancer-a1", "/-/replicas"): replicas(("digits-0", "node-a", 2, 30), ("digits-1", "node-b", 1, 10)),
        ("digits-balancer-b2", "/-/replicas"): replicas(("digits-0", "node-a", 1, 20)),
    }
    with FakeKubeAPIWithProxy(FakeCluster(nodes=[], node_metrics=[], pods=pods), pages) as server:
        yield server


def test_the_ready_balancer_pods_are_read_through_the_pod_proxy_and_summed(api):
    snapshot = balancer_traffic(api.kubeconfig(), namespace="mltoolkit", label_selector=SELECTOR, port=8080)
    assert snapshot.balancers == 2
    frame = latency_frame(snapshot).set_index("replica")
    assert frame.loc["digits-0", "count"] == 50 and frame.loc["digits-1", "count"] == 10
    assert frame.loc["digits-1", "node"] == "node-b" and frame.loc["digits-1", "p50_ms"] > 200
    proxied = sorted(path for path, _ in api.requests if "/proxy/" in path)
    assert proxied == [
        "/api/v1/namespaces/mltoolkit/pods/digits-balancer-a1:8080/proxy/-/metrics",
        "/api/v1/namespaces/mltoolkit/pods/digits-balancer-b2:8080/proxy/-/metrics",
    ]
    listed = [query for path, query in api.requests if path == "/api/v1/namespaces/mltoolkit/pods"]
    assert listed == [{"labelSelector": ["app.kubernetes.io/name=digits-balancer"]}]


def test_the_replica_reports_merge_over_the_pods(api):
    report = balancer_replica_report(api.kubeconfig(), namespace="mltoolkit", label_selector=SELECTOR, port=8080)
    assert report["balancers"] == 2
    assert [(r["name"], r["in_flight"], r["served"]) for r in report["replicas"]] == [
        ("digits-0", 3, 50), ("digits-1", 1, 10),
    ]  # fmt: skip


def test_no_ready_balancer_pod_and_refused_credentials_are_clear_errors(api):
    with pytest.raises(KubeMetricsError, match="no balancer pod is ready in namespace 'other'"):
        balancer_traffic(api.kubeconfig(), namespace="other", label_selector=SELECTOR, port=8080)
    with pytest.raises(KubeMetricsError, match="refused"):
        balancer_traffic(api.kubeconfig(token="wrong"), namespace="mltoolkit", label_selector=SELECTOR, port=8080)
    with pytest.raises(KubeMetricsError, match="balancer pod digits-balancer-a1"):
        balancer_traffic(api.kubeconfig(), namespace="mltoolkit", label_selector=SELECTOR, port=9999)


def test_only_running_ready_pods_not_being_deleted_count():
    pods = [balancer_pod("a", "n"), balancer_pod("b", "n", ready=False), balancer_pod("c", "n")]
    pods[2]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    pending = balancer_pod("d", "n")
    pending["status"]["phase"] = "Pending"
    assert ready_pods({"items": [*pods, pending]}) == ["a"]
    assert TIER_LABELS["app.kubernetes.io/name"] == SELECTOR["app.kubernetes.io/name"]
