"""node_utilization against a fake Kubernetes API server on 127.0.0.1 (tests/observe/fake_kube_api.py)."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.utils import parse_quantity

from fake_kube_api import (
    LARGE_MACHINES,
    TOKEN,
    FakeKubeAPI,
    large_cluster,
    large_model_pods_on,
    large_node_name,
    large_node_usage,
    three_node_cluster,
)
from mltoolkit.errors import MltoolkitError, SpecError
from mltoolkit.observe.kube_metrics import (
    NODE_UTILIZATION_COLUMNS,
    KubeMetricsError,
    MetricsServerUnavailableError,
    node_utilization,
    parse_cpu_cores,
    parse_memory_bytes,
    parse_quantities,
    utilization_frame,
)

A, B, C = "gke-mlt-pool-a", "gke-mlt-pool-b", "gke-mlt-pool-c"
GiB, MiB, KiB = 2**30, 2**20, 2**10


@pytest.fixture
def api():
    with FakeKubeAPI(three_node_cluster()) as server:
        yield server


@pytest.fixture(scope="module")
def large_api():
    with FakeKubeAPI(large_cluster(1000)) as server:
        yield server


# ---------------------------------------------------------------------------------------------
# Three nodes: every value checked
# ---------------------------------------------------------------------------------------------


def test_three_nodes_exact_values(api):
    df = node_utilization(api.kubeconfig_yaml(), namespace="digits", label_selector="app=digits")

    assert list(df.columns) == list(NODE_UTILIZATION_COLUMNS)
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert df["cpu_cores"].dtype == np.float64 and df["cpu_percent"].dtype == np.float64
    assert str(df["memory_bytes"].dtype) == "Int64" and df["replicas"].dtype == np.int64
    assert str(df["in_flight"].dtype) == "Int64" and str(df["served"].dtype) == "Int64"
    assert df["in_flight"].isna().all() and df["served"].isna().all()
    # sorted by name; the metrics of a node no longer in the NodeList are dropped
    assert df["node"].tolist() == [A, B, C]

    a, b, c = (row for _, row in df.iterrows())
    assert a["time"] == pd.Timestamp("2024-05-01T10:00:00Z")
    assert b["time"] == pd.Timestamp("2024-05-01T10:00:03Z")
    # a: "1500m" of allocatable "4" -> 1.5 cores, 1.5 / 4 = 37.5 %
    assert a["cpu_cores"] == 1.5
    assert a["cpu_percent"] == 37.5
    # a: "3794Mi" = 3794 * 2**20 = 3,978,297,344 bytes of "16Gi" = 17,179,869,184:
    # 3794 / 16384 = 23.15673828125 %
    assert a["memory_bytes"] == 3794 * MiB == 3_978_297_344
    assert a["memory_percent"] == pytest.approx(23.15673828125, rel=1e-15)
    # b: "123456789n" = 0.123456789 cores of "3920m" = 3.92: 0.123456789 / 3.92 = 3.14940788... %
    assert b["cpu_cores"] == 0.123456789
    assert b["cpu_percent"] == pytest.approx(3.1494078826530614, rel=1e-14)
    # b: "1048576Ki" = 1 GiB = 1,073,741,824 bytes of "13470340Ki" = 13,793,628,160 bytes:
    # 1048576 / 13470340 = 7.78433209555215... % (exactly, by fractions.Fraction)
    assert b["memory_bytes"] == GiB
    assert b["memory_percent"] == pytest.approx(7.784332095552154, rel=1e-14)
    # replicas of app=digits in "digits": 2 on a, 1 on b; on c only a finished one (Succeeded)
    assert df["replicas"].tolist() == [2, 1, 0]


def test_node_without_metrics_is_reported_with_nan(api):
    df = node_utilization(api.kubeconfig(), namespace="digits").set_index("node")
    c = df.loc[C]
    assert pd.isna(c["time"])
    assert np.isnan(c["cpu_cores"]) and np.isnan(c["cpu_percent"])
    assert pd.isna(c["memory_bytes"]) and np.isnan(c["memory_percent"])
    assert c["replicas"] == 1  # the other app's pod; it is in namespace "digits" too
    # the nodes with metrics are unaffected
    assert df["cpu_cores"].notna().sum() == 2
    assert df["memory_bytes"].notna().sum() == 2


@pytest.mark.parametrize(
    ("namespace", "selector", "sent_path", "sent_selector", "replicas"),
    [
        # everything, kube-proxy included: a 2 model + 1 proxy; b 1 + 1; c other + proxy
        (None, None, "/api/v1/pods", None, [3, 2, 2]),
        ("digits", None, "/api/v1/namespaces/digits/pods", None, [2, 1, 1]),
        (None, "app=digits", "/api/v1/pods", "app=digits", [2, 1, 0]),
        ("digits", {"app": "digits"}, "/api/v1/namespaces/digits/pods", "app=digits", [2, 1, 0]),
        ("kube-system", "component=kube-proxy", "/api/v1/namespaces/kube-system/pods",
         "component=kube-proxy", [1, 1, 1]),
    ],
)
def test_replicas_count_the_chosen_pods(api, namespace, selector, sent_path, sent_selector, replicas):
    df = node_utilization(api.kubeconfig(), namespace=namespace, label_selector=selector)
    assert df["replicas"].tolist() == replicas
    paths = [path for path, _ in api.requests]
    assert paths == ["/apis/metrics.k8s.io/v1beta1/nodes", "/api/v1/nodes", sent_path]
    assert api.requests[2][1].get("labelSelector", [None])[0] == sent_selector


def test_an_api_client_is_used_and_left_open(api):
    client = k8s_config.new_client_from_config_dict(api.kubeconfig())
    try:
        first = node_utilization(client, namespace="digits", label_selector="app=digits")
        second = node_utilization(client, namespace="digits", label_selector="app=digits")
    finally:
        client.close()
    pd.testing.assert_frame_equal(first, second)
    assert first["cpu_cores"].iloc[0] == 1.5


# ---------------------------------------------------------------------------------------------
# 1,000 nodes
# ---------------------------------------------------------------------------------------------


def test_thousand_nodes_shape_and_spot_values(large_api):
    df = node_utilization(large_api.kubeconfig_yaml(), namespace="digits", label_selector="app=digits")

    assert df.shape == (1000, len(NODE_UTILIZATION_COLUMNS))
    assert df["node"].tolist() == [large_node_name(i) for i in range(1000)]
    # nodes 249, 499, 749, 999 have just joined: no metrics
    missing = df.index[df["cpu_cores"].isna()].tolist()
    assert missing == [249, 499, 749, 999]
    assert df.loc[missing, "time"].isna().all() and df.loc[missing, "memory_bytes"].isna().all()
    # 2 model pods on every 10th node
    assert df["replicas"].sum() == 200
    assert df["replicas"].tolist() == [large_model_pods_on(i) for i in range(1000)]

    # node 0 (e2-standard-4, 3920m / 13316220Ki allocatable): 50,000,000n, 400,000Ki
    row = df.iloc[0]
    assert row["time"] == pd.Timestamp("2024-05-01T10:00:00Z")
    assert row["cpu_cores"] == 0.05
    assert row["cpu_percent"] == pytest.approx(1.2755102040816326, rel=1e-14)  # 0.05 / 3.92
    assert row["memory_bytes"] == 400_000 * KiB
    assert row["memory_percent"] == pytest.approx(3.003855448468109, rel=1e-14)  # 400000 / 13316220

    # node 501 (e2-standard-2, 1930m / 5990200Ki): cpu 50e6 + 501 * 1,234,567 = 668,518,067n;
    # memory 400,000 + 501 * 7,777 = 4,296,277Ki; timestamp second 501 % 15 = 6
    assert large_node_usage(501) == ("668518067n", "4296277Ki")
    assert LARGE_MACHINES[501 % 2][3:] == ("1930m", "5990200Ki")
    row = df.iloc[501]
    assert row["time"] == pd.Timestamp("2024-05-01T10:00:06Z")
    assert row["cpu_cores"] == pytest.approx(0.668518067, rel=1e-15)
    assert row["cpu_percent"] == pytest.approx(34.6382418134715, rel=1e-14)  # 0.668518067 / 1.93
    assert row["memory_bytes"] == 4_296_277 * KiB
    assert row["memory_percent"] == pytest.approx(71.7217622116123, rel=1e-14)  # 4296277 / 5990200

    # node 998: cpu 50e6 + (998 * 1,234,567) % 1.8e9 = 50e6 + 1,232,097,866 = 1,282,097,866n;
    # memory 400,000 + (998 * 7,777 = 7,761,446) % 5,000,000 = 3,161,446Ki
    row = df.iloc[998]
    assert row["cpu_cores"] == pytest.approx(1.282097866, rel=1e-15)
    assert row["memory_bytes"] == 3_161_446 * KiB


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 503])
def test_missing_metrics_api_is_a_clear_error(status):
    with FakeKubeAPI(three_node_cluster(), metrics_status=status) as server:
        with pytest.raises(MetricsServerUnavailableError) as caught:
            node_utilization(server.kubeconfig_yaml())
        # it stops at the first call
        assert [path for path, _ in server.requests] == ["/apis/metrics.k8s.io/v1beta1/nodes"]
    assert isinstance(caught.value, MltoolkitError)
    message = str(caught.value)
    assert "metrics-server isn't available" in message
    assert f"HTTP {status}" in message and "metrics.k8s.io/v1beta1" in message


def test_refused_credentials_are_a_clear_error_without_the_token(api):
    with pytest.raises(KubeMetricsError) as caught:
        node_utilization(api.kubeconfig_yaml(token="not-the-right-token"))
    assert not isinstance(caught.value, MetricsServerUnavailableError)
    message = str(caught.value)
    assert "401" in message and "credentials" in message and api.url in message
    assert "not-the-right-token" not in message and TOKEN not in message


def test_unreachable_server_is_a_clear_error():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = {
        "clusters": [{"name": "x", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "u"}}],
        "current-context": "x",
    }
    with pytest.raises(KubeMetricsError, match=f"could not reach the Kubernetes API server at http://127.0.0.1:{port}"):
        node_utilization(kubeconfig, request_timeout=10)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"namespace": "Digits_NS"}, "namespace"),
        ({"namespace": 3}, "namespace"),
        ({"label_selector": "app in digits"}, "label_selector"),
        ({"label_selector": "=digits"}, "label_selector"),
        ({"label_selector": ""}, "label_selector"),
        ({"label_selector": {"app": "has space"}}, "label_selector"),
        ({"request_timeout": 0}, "request_timeout"),
    ],
)
def test_bad_arguments_fail_before_any_call(api, kwargs, field):
    with pytest.raises(SpecError) as caught:
        node_utilization(api.kubeconfig_yaml(), **kwargs)
    assert caught.value.field == field
    assert api.requests == []


@pytest.mark.parametrize(
    "selector", ["app=digits", "app==digits,tier!=web", "app in (digits, other)", "!canary",
                 "app.kubernetes.io/name notin (x),env", "version>3"]
)
def test_valid_label_selectors_are_accepted(api, selector):
    node_utilization(api.kubeconfig(), label_selector=selector)
    assert api.requests[-1][1]["labelSelector"] == [selector]


def test_bad_kubeconfig_is_a_spec_error_without_its_contents(api):
    with pytest.raises(SpecError) as caught:
        node_utilization(42)
    assert caught.value.field == "kubeconfig"
    for text in (f"token: {TOKEN}\n  - [unclosed", f"just-a-string-{TOKEN}"):
        with pytest.raises(SpecError) as caught:
            node_utilization(text)
        assert caught.value.field == "kubeconfig" and TOKEN not in str(caught.value)
    no_context = api.kubeconfig()
    no_context["current-context"] = "elsewhere"
    with pytest.raises(SpecError) as caught:
        node_utilization(no_context)
    assert caught.value.field == "kubeconfig" and TOKEN not in str(caught.value)
    assert api.requests == []


# ---------------------------------------------------------------------------------------------
# Quantities and assembly (pure)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cores"),
    [
        ("1500m", 1.5),
        ("123456789n", 0.123456789),
        ("250000u", 0.25),
        ("2", 2.0),
        ("0.5", 0.5),
        (".5", 0.5),
        ("3920m", 3.92),
        ("2e-3", 0.002),
    ],
)
def test_cpu_quantities(text, cores):
    assert parse_cpu_cores([text])[0] == cores


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("3794Mi", 3794 * 2**20),
        ("16Gi", 16 * 2**30),
        ("13470340Ki", 13470340 * 1024),
        ("1.5Gi", 1610612736),
        ("1Ti", 2**40),
        ("1k", 1000),
        ("128M", 128_000_000),
        ("2G", 2_000_000_000),
        ("1e3", 1000),
        ("5E2", 500),  # decimal exponent, not exa
        ("1048576", 1048576),
        ("128974848000m", 128974848),  # memory in millibytes: the API server does write this
        ("1.1k", 1100),  # not 1101 from float noise
        ("0.1Ki", 103),  # 102.4 bytes, rounded up as Kubernetes does
    ],
)
def test_memory_quantities(text, size):
    assert parse_memory_bytes([text])[0] == size


def test_quantities_agree_with_the_kubernetes_client():
    texts = ["1500m", "123456789n", "250u", "2", "0.5", "3794Mi", "16Gi", "7.5Gi", "1Pi", "2Ei",
             "1k", "3M", "4G", "5T", "6P", "2E", "1e3", "5e-3", "-1", "+2.5", "0"]
    expected = np.array([float(parse_quantity(t)) for t in texts])
    np.testing.assert_allclose(parse_quantities(texts, field="x"), expected, rtol=1e-15)


def test_missing_quantities_are_nan_and_bad_ones_name_the_node():
    values = parse_cpu_cores([None, "1"])
    assert np.isnan(values[0]) and values[1] == 1.0
    for bad in ("abc", "1.5 cores", "1ki", "1e3m", "", "Mi"):
        with pytest.raises(KubeMetricsError, match=r"usage\.cpu of 'node-2'"):
            parse_cpu_cores(["1", bad], field="usage.cpu", names=["node-1", "node-2"])


def _node(name, cpu, memory):
    return {"metadata": {"name": name}, "status": {"allocatable": {"cpu": cpu, "memory": memory}}}


def test_frame_of_an_empty_cluster_has_the_contract_columns():
    df = utilization_frame({"items": []}, {"items": []}, {"items": []})
    assert df.empty and list(df.columns) == list(NODE_UTILIZATION_COLUMNS)
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert str(df["memory_bytes"].dtype) == "Int64"


def test_frame_without_allocatable_gives_nan_percent_and_ignores_unbound_pods():
    nodes = {"items": [_node("n1", None, "0"), _node("n2", "2", "1Gi")]}
    metrics = {"items": [
        {"metadata": {"name": "n1"}, "timestamp": "2024-05-01T10:00:00Z",
         "usage": {"cpu": "1", "memory": "1Mi"}},
        {"metadata": {"name": "n2"}, "timestamp": "2024-05-01T10:00:00Z",
         "usage": {"cpu": "500m", "memory": "256Mi"}},
    ]}
    pods = {"items": [
        {"spec": {"nodeName": "n2"}, "status": {"phase": "Running"}},
        {"spec": {"nodeName": "n2"}, "status": {"phase": "Failed"}},
        {"spec": {}, "status": {"phase": "Pending"}},
        {"spec": {"nodeName": "n1"}, "status": {"phase": "Pending"}},  # scheduled, starting
    ]}
    df = utilization_frame(metrics, nodes, pods)
    assert np.isnan(df["cpu_percent"].iloc[0]) and np.isnan(df["memory_percent"].iloc[0])
    assert df["cpu_cores"].iloc[0] == 1.0
    assert df["cpu_percent"].iloc[1] == 25.0  # 0.5 of 2 cores
    assert df["memory_percent"].iloc[1] == 25.0  # 256Mi of 1Gi
    assert df["replicas"].tolist() == [1, 1]


def test_malformed_documents_are_clear_errors():
    with pytest.raises(KubeMetricsError, match="NodeList"):
        utilization_frame({"items": []}, {"kind": "Status"}, {"items": []})
    with pytest.raises(KubeMetricsError, match="metadata.name"):
        utilization_frame({"items": [{"usage": {}}]}, {"items": []}, {"items": []})


def test_fake_server_documents_fit_the_clients_typed_models(api):
    """The fake's JSON deserializes into the official client's models: its shapes are real."""
    client = k8s_config.new_client_from_config_dict(api.kubeconfig())
    try:
        core = k8s_client.CoreV1Api(client)
        nodes = core.list_node()
        pods = core.list_pod_for_all_namespaces()
        metrics = k8s_client.CustomObjectsApi(client).list_cluster_custom_object(
            "metrics.k8s.io", "v1beta1", "nodes")
    finally:
        client.close()
    assert isinstance(nodes, k8s_client.V1NodeList) and len(nodes.items) == 3
    assert nodes.items[0].status.allocatable["cpu"] == "3920m"
    assert isinstance(pods, k8s_client.V1PodList) and len(pods.items) == 9
    assert metrics["kind"] == "NodeMetricsList" and len(metrics["items"]) == 3


def test_columns_match_the_local_targets_by_node_frame():
    from mltoolkit.observe.utilization import NODE_COLUMNS

    assert NODE_UTILIZATION_COLUMNS == NODE_COLUMNS
