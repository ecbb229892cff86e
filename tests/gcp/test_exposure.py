import pytest

from mltoolkit.gcp.exposure import DEFAULT_RULE_PRIORITY, ModelEndpoint, armor_rules
from mltoolkit.gcp.mocks import L4_IP, L7_IP
from tests.gcp.conftest import ALLOWED, make_cluster, run

SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
ARMOR = "gcp:compute/securityPolicy:SecurityPolicy"
BACKEND_CONFIG = "kubernetes:cloud.google.com/v1:BackendConfig"


def test_l4_load_balancer_admits_only_the_allowed_cidrs(sketch_run):
    service = sketch_run.named("digits-service")  # the front; the tier has its own
    assert service.inputs["spec"]["type"] == "LoadBalancer"
    assert service.inputs["spec"]["loadBalancerSourceRanges"] == [ALLOWED]
    assert service.inputs["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert sketch_run.outputs["endpoint_ip"] == L4_IP
    assert sketch_run.outputs["endpoint_url"] == f"http://{L4_IP}"
    assert sketch_run.of_type(INGRESS) == [] and sketch_run.of_type(ARMOR) == []


def test_public_only_when_asked(deployment):
    result = run(make_cluster(allowed_cidrs=(), allow_public=True), deployment)
    service = result.named("digits-service")  # the front; the tier has its own
    assert service.inputs["spec"]["loadBalancerSourceRanges"] == ["0.0.0.0/0"]


def test_nobody_allowed_means_no_external_endpoint(deployment):
    result = run(make_cluster(allowed_cidrs=()), deployment)
    service = result.named("digits-service")  # the front; the tier has its own
    assert service.inputs["spec"]["type"] == "ClusterIP"
    assert "loadBalancerSourceRanges" not in service.inputs["spec"]
    assert result.outputs["endpoint_ip"] is None and result.outputs["endpoint_url"] is None


@pytest.fixture(scope="module")
def l7_run(deployment):
    return run(make_cluster(load_balancer="l7", allowed_cidrs=(ALLOWED, "192.0.2.0/24")), deployment)


def test_l7_is_container_native_behind_an_ingress(l7_run):
    service = l7_run.named("digits-service")  # the front; the tier has its own
    assert service.inputs["spec"]["type"] == "ClusterIP"
    assert service.inputs["metadata"]["annotations"]["cloud.google.com/neg"] == '{"ingress": true}'
    (ingress,) = l7_run.of_type(INGRESS)
    assert ingress.inputs["metadata"]["annotations"] == {"kubernetes.io/ingress.class": "gce"}
    assert ingress.inputs["spec"]["defaultBackend"]["service"] == {"name": "digits", "port": {"number": 80}}
    assert l7_run.outputs["endpoint_ip"] == L7_IP
    assert l7_run.outputs["endpoint_url"] == f"http://{L7_IP}"


def test_l7_sources_are_enforced_by_cloud_armor(l7_run):
    (policy,) = l7_run.of_type(ARMOR)
    rules = policy.inputs["rules"]
    allow = [r for r in rules if r["action"] == "allow"]
    assert [r["match"]["config"]["srcIpRanges"] for r in allow] == [[ALLOWED, "192.0.2.0/24"]]
    (default,) = [r for r in rules if r["priority"] == DEFAULT_RULE_PRIORITY]
    assert default["action"] == "deny(403)" and default["match"]["config"]["srcIpRanges"] == ["*"]
    (config,) = l7_run.of_type(BACKEND_CONFIG)
    assert config.inputs["spec"]["securityPolicy"] == {"name": policy.outputs["name"]}
    assert config.inputs["spec"]["healthCheck"]["requestPath"] == "/-/health"  # the balancer tier's
    assert config.inputs["apiVersion"] == "cloud.google.com/v1"


def test_l7_public_has_no_armor_policy(deployment):
    result = run(make_cluster(load_balancer="l7", allowed_cidrs=(), allow_public=True), deployment)
    assert result.of_type(ARMOR) == []
    (config,) = result.of_type(BACKEND_CONFIG)
    assert "securityPolicy" not in config.inputs["spec"]


def test_armor_rules_take_ten_ranges_each():
    cidrs = tuple(f"10.0.{i}.0/24" for i in range(23))
    rules = armor_rules(cidrs)
    assert [len(r.match.config.src_ip_ranges) for r in rules[:-1]] == [10, 10, 3]
    assert [r.priority for r in rules] == [1000, 1001, 1002, DEFAULT_RULE_PRIORITY]


def test_component_registers_ip_and_url(sketch_run):
    (component,) = sketch_run.of_type(ModelEndpoint.TYPE)
    assert sketch_run.component_outputs[component.urn] == {"ip": L4_IP, "url": f"http://{L4_IP}"}
    assert [r.type for r in sketch_run.children_of(component)] == [SERVICE]
