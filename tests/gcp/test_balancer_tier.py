"""The balancer tier on GKE: its objects under Pulumi mocks (preview=False), schema-validated,
with the RBAC rules asserted exactly; the external Service in front of it; its capacity note."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mltoolkit.balancer.discovery import DiscoveryConfig
from mltoolkit.errors import SpecError
from mltoolkit.gcp import balancer_manifests as tier_manifests
from mltoolkit.gcp import manifests
from mltoolkit.gcp.balancer_manifests import BalancerTierSpec
from mltoolkit.gcp.balancer_tier import BalancerTier, BalancerTierArgs, capacity_note
from mltoolkit.spec import BalancerSpec, ModelSpec, NodePoolSpec
from tests.gcp.conftest import ALLOWED, PROJECT, make_cluster, make_deployment, validate

IMAGE = "us-central1-docker.pkg.dev/my-project/mltoolkit/mltoolkit-serving:0.1.0"
LABELS = {"managed-by": "mltoolkit", "owner": "alice", "expires": "20300101t0000z"}


def run_tier(deployment, tier: BalancerTierSpec | None = None, pod_monitoring: bool = False):
    """The tier alone, as the program registers it: a provider, the namespace, the component."""
    import pulumi
    import pulumi_kubernetes as k8s

    from mltoolkit.gcp.mock_runtime import run_program
    from mltoolkit.gcp.mocks import CloudMocks

    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="apiVersion: v1\nkind: Config\n")
        namespace_manifest = manifests.namespace(LABELS)
        namespace = k8s.core.v1.Namespace(
            "namespace", metadata=namespace_manifest["metadata"], opts=pulumi.ResourceOptions(provider=provider)
        )
        BalancerTier(
            "balancer-tier",
            BalancerTierArgs(
                deployment=deployment, provider=provider, image=IMAGE, serving=namespace,
                tier=tier or BalancerTierSpec(), labels=LABELS, pod_monitoring=pod_monitoring,
            ),
        )  # fmt: skip

    return run_program(program, CloudMocks(PROJECT))


@pytest.fixture(scope="module")
def tier_deployment(model):
    balancer = BalancerSpec(
        policy="least_request", retries=2, request_timeout_s=20.0, health_interval_s=0.5, data_plane="python"
    )
    return make_deployment(model, balancer=balancer)


@pytest.fixture(scope="module")
def tier_run(tier_deployment):
    return run_tier(tier_deployment)


def only(result, kind: str):
    (resource,) = [r for r in result.resources if r.type == kind]
    return resource.inputs


def test_every_tier_object_is_schema_valid_and_in_the_component(tier_run):
    (component,) = tier_run.of_type(BalancerTier.TYPE)
    children = tier_run.children_of(component)
    assert sorted(r.type.split(":")[-1] for r in children) == [
        "Deployment", "PodDisruptionBudget", "Role", "RoleBinding", "Service", "ServiceAccount",
    ]  # fmt: skip
    for resource in children:
        validate(resource.inputs)
        assert resource.inputs["metadata"]["namespace"] == "mltoolkit"
    (provider,) = tier_run.of_type("pulumi:providers:kubernetes")
    assert all(r.provider.startswith(provider.urn + "::") for r in children)
    assert tier_run.component_outputs[component.urn] == {
        "deployment": "digits-balancer", "replica_service": "digits-replicas", "replicas": 2,
    }  # fmt: skip


def test_the_role_may_only_get_list_and_watch_endpointslices_in_its_namespace(tier_run):
    role = only(tier_run, "kubernetes:rbac.authorization.k8s.io/v1:Role")
    assert role["rules"] == [
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]}
    ]
    assert role["metadata"]["namespace"] == "mltoolkit"
    binding = only(tier_run, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "digits-balancer"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "digits-balancer", "namespace": "mltoolkit"}]
    account = only(tier_run, "kubernetes:core/v1:ServiceAccount")
    assert (account["metadata"]["name"], account["automountServiceAccountToken"]) == ("digits-balancer", True)
    # nothing cluster-wide, and no annotation binding a Google identity
    assert not [r for r in tier_run.resources if "ClusterRole" in r.type]
    assert "annotations" not in account["metadata"]


def test_the_deployment_runs_the_spec_policy_over_the_replica_service(tier_run, tier_deployment):
    spec = only(tier_run, "kubernetes:apps/v1:Deployment")["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert container["command"] == ["python", "-m", "mltoolkit.balancer"]
    assert container["args"] == [
        "--port", "8080", "--host", "0.0.0.0", "--policy", "least_request", "--health-interval", "0.5",
        "--retries", "2", "--timeout", "20.0", "--max-request-bytes", str(tier_deployment.max_request_bytes),
        "--data-plane", "python",
        "--discover-service", "digits-replicas", "--discover-namespace", "mltoolkit", "--discover-port-name", "http",
    ]  # fmt: skip
    hedging = replace(tier_deployment, balancer=replace(tier_deployment.balancer, hedge=True))
    assert tier_manifests.balancer_args(hedging)[-1] == "--hedge"  # BalancerSpec(hedge=True) on GKE too
    on_haproxy = replace(tier_deployment, balancer=replace(tier_deployment.balancer, data_plane="haproxy"))
    haproxy_args = tier_manifests.balancer_args(on_haproxy)
    assert haproxy_args[haproxy_args.index("--data-plane") + 1] == "haproxy"  # the image carries HAProxy
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/-/health", "port": "http"}
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}
    }
    assert pod["serviceAccountName"] == "digits-balancer" and pod["automountServiceAccountToken"] is True
    # the in-flight requests get their timeout to finish after the preStop pause
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert pod["terminationGracePeriodSeconds"] == 5 + 20 + 5


def test_the_discovery_options_name_the_replica_service_and_its_port(tier_run):
    args = only(tier_run, "kubernetes:apps/v1:Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    option = dict(zip(args[::2], args[1::2]))
    service = [r.inputs for r in tier_run.of_type("kubernetes:core/v1:Service")][0]
    config = DiscoveryConfig(service=option["--discover-service"], port_name=option["--discover-port-name"])
    assert config.service == service["metadata"]["name"]
    assert option["--discover-namespace"] == service["metadata"]["namespace"]
    assert [p["name"] for p in service["spec"]["ports"]] == [config.port_name]


def test_pods_run_hardened(tier_run):
    pod = only(tier_run, "kubernetes:apps/v1:Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "allowPrivilegeEscalation": False,
        "privileged": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }  # fmt: skip
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


def test_pods_spread_over_nodes_and_one_may_go_at_a_time(tier_run):
    spec = only(tier_run, "kubernetes:apps/v1:Deployment")["spec"]
    pod = spec["template"]["spec"]
    tier_selector = {"app.kubernetes.io/name": "digits-balancer"}
    assert spec["selector"] == {"matchLabels": tier_selector}
    hostname = pod["topologySpreadConstraints"][0]
    assert (hostname["topologyKey"], hostname["whenUnsatisfiable"], hostname["maxSkew"]) == (
        "kubernetes.io/hostname", "DoNotSchedule", 1)
    assert hostname["labelSelector"] == {"matchLabels": tier_selector}
    (preferred,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    budget = only(tier_run, "kubernetes:policy/v1:PodDisruptionBudget")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": tier_selector}}
    # the pod template keeps only the tier's own labels: a new expiry must not restart the pods
    assert "expires" not in spec["template"]["metadata"]["labels"]
    assert only(tier_run, "kubernetes:apps/v1:Deployment")["metadata"]["labels"]["expires"] == "20300101t0000z"


def test_the_replica_service_is_internal_and_selects_only_model_servers(tier_run):
    service = only(tier_run, "kubernetes:core/v1:Service")
    assert service["metadata"]["name"] == "digits-replicas"
    assert service["spec"]["type"] == "ClusterIP"
    assert "loadBalancerSourceRanges" not in service["spec"]
    assert service["spec"]["selector"] == manifests.selector_labels("digits")
    # the model's selector does not select balancer pods (nor the tier's selector model pods)
    pod_labels = only(tier_run, "kubernetes:apps/v1:Deployment")["spec"]["template"]["metadata"]["labels"]
    assert not set(service["spec"]["selector"].items()) <= set(pod_labels.items())
    model_pod = manifests.object_labels("digits", {})
    assert not set(tier_manifests.selector_labels("digits").items()) <= set(model_pod.items())


def test_tier_size_follows_its_spec(tier_deployment):
    result = run_tier(tier_deployment, BalancerTierSpec(replicas=3, cpu="500m", memory="512Mi", memory_limit="1Gi"))
    spec = only(result, "kubernetes:apps/v1:Deployment")["spec"]
    assert spec["replicas"] == 3
    assert spec["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}
    }


def test_bad_tier_specs_and_names_are_refused_naming_the_field(model):
    with pytest.raises(SpecError, match="BalancerTierSpec.replicas"):
        BalancerTierSpec(replicas=0)
    with pytest.raises(SpecError, match="BalancerTierSpec.cpu_limit"):
        BalancerTierSpec(cpu="2", cpu_limit="1")
    with pytest.raises(SpecError, match="BalancerTierSpec.memory"):
        BalancerTierSpec(memory="lots")
    with pytest.raises(SpecError, match="ModelSpec.name.*at most 54"):
        tier_manifests.check_model_name("m" * 55)
    tier_manifests.check_model_name("m" * 54)


def test_the_front_service_keeps_source_ranges_and_selects_the_balancer_pods():
    l4 = tier_manifests.front_service("digits", make_cluster(), LABELS)
    assert l4["metadata"]["name"] == "digits"
    assert (l4["spec"]["type"], l4["spec"]["loadBalancerSourceRanges"]) == ("LoadBalancer", [ALLOWED])
    assert l4["spec"]["selector"] == {"app.kubernetes.io/name": "digits-balancer"}
    assert l4["spec"]["ports"][0]["targetPort"] == "http"  # the balancer's container port name
    l7 = tier_manifests.front_service("digits", make_cluster(load_balancer="l7"), LABELS)
    assert l7["spec"]["type"] == "ClusterIP" and "cloud.google.com/neg" in l7["metadata"]["annotations"]
    assert l7["spec"]["selector"] == {"app.kubernetes.io/name": "digits-balancer"}
    config = tier_manifests.front_backend_config("digits", LABELS, "armor-policy")
    assert config["spec"]["healthCheck"]["requestPath"] == "/-/health"
    assert config["spec"]["healthCheck"]["port"] == 8080
    for manifest in (l4, l7):
        validate(manifest)


def test_capacity_note_says_when_the_tier_needs_more_nodes(model):
    one_small = make_cluster(node_pools=(NodePoolSpec("default", machine_type="e2-standard-2", min_nodes=1, max_nodes=3),))
    # e2-standard-2: 2 vCPUs, 8 GB; about 1.8 cores usable. One 1-core replica and two 250m
    # balancer pods need 1.5 cores: they fit.
    fits = capacity_note(one_small, make_deployment(model, replicas=1, cpu="1", memory="1Gi"), BalancerTierSpec())
    assert "no line item of its own" in fits and "minimum nodes hold it" in fits
    # Two 1-core replicas and the balancer pods need 2.5 cores: more than the one node.
    crowded = capacity_note(one_small, make_deployment(model, replicas=2, cpu="1", memory="1Gi"), BalancerTierSpec())
    assert "autoscaler adds nodes" in crowded and "1 pod(s) left over" in crowded


def test_an_image_model_gets_the_same_tier(tier_run):
    image_model = make_deployment(ModelSpec.from_image("example.org/m:1", name="digits"))
    result = run_tier(image_model)
    container = only(result, "kubernetes:apps/v1:Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE  # the balancer comes from the mltoolkit image, not the model's


# -- in the whole program ---------------------------------------------------------------------------


def test_the_external_service_points_at_the_balancer_pods_and_replicas_stay_internal(sketch_run):
    front = sketch_run.named("digits-service").inputs
    assert (front["spec"]["type"], front["spec"]["loadBalancerSourceRanges"]) == ("LoadBalancer", [ALLOWED])
    tier_pods = sketch_run.named("digits-balancer-deployment").inputs["spec"]["template"]["metadata"]["labels"]
    assert front["spec"]["selector"] == {"app.kubernetes.io/name": "digits-balancer"}
    assert set(front["spec"]["selector"].items()) <= set(tier_pods.items())
    model_pods = sketch_run.named("digits-deployment").inputs["spec"]["template"]["metadata"]["labels"]
    assert not set(front["spec"]["selector"].items()) <= set(model_pods.items())
    replicas = sketch_run.named("digits-balancer-replica-service").inputs
    assert replicas["spec"]["type"] == "ClusterIP"
    assert set(replicas["spec"]["selector"].items()) <= set(model_pods.items())
    # the tier runs the stack's serving image and the default BalancerSpec policy
    container = sketch_run.named("digits-balancer-deployment").inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == sketch_run.outputs["serving_image"]  # built by up(): test_program.py
    assert container["args"][container["args"].index("--policy") + 1] == "ewma"
    # the front Service waits for the tier (a dependency on a component is one on its children),
    # and the tier for the model's namespace
    assert sketch_run.named("digits-balancer-deployment").urn in sketch_run.named("digits-service").dependencies
    assert sketch_run.named("digits-namespace").urn in sketch_run.named("digits-balancer-role").dependencies


def test_l7_ingress_reaches_the_balancer_pods(deployment):
    from tests.gcp.conftest import run

    result = run(make_cluster(load_balancer="l7"), deployment)
    ingress = result.named("digits-ingress").inputs
    assert ingress["spec"]["defaultBackend"]["service"]["name"] == "digits"
    front = result.named("digits-service").inputs
    assert front["spec"]["selector"] == {"app.kubernetes.io/name": "digits-balancer"}
    health = result.named("digits-backend-config").inputs["spec"]["healthCheck"]
    assert (health["requestPath"], health["port"]) == ("/-/health", 8080)


def test_plan_counts_the_tier_on_the_nodes_not_as_a_line_item(model):
    from mltoolkit.gcp.plan import plan

    result = plan(make_cluster(), make_deployment(model), labels={"owner": "alice"})
    tier_rows = result.resources[result.resources["parent"] == "balancer-tier"]
    assert sorted(tier_rows["name"]) == [
        "digits-balancer-deployment", "digits-balancer-disruption-budget", "digits-balancer-replica-service",
        "digits-balancer-role", "digits-balancer-role-binding", "digits-balancer-service-account",
    ]  # fmt: skip
    assert not result.costs["resource"].str.startswith("digits-balancer").any()
    assert any("balancer tier runs 2 pod(s) of 250m CPU" in note for note in result.notes)


def test_the_longest_model_name_allowed_still_names_valid_tier_objects(model_file):
    with pytest.raises(SpecError, match="ModelSpec.name"):
        ModelSpec.from_file(model_file, name="m" * 41)  # refused before any program runs
    tier_manifests.check_model_name("m" * 40)  # ModelSpec's limit leaves room for the suffixes


def test_a_pod_monitoring_has_the_balancer_pods_scraped_when_asked_and_only_then(tier_run, tier_deployment):
    assert not [r for r in tier_run.resources if r.type.endswith(":PodMonitoring")]  # off by default
    monitored = run_tier(tier_deployment, pod_monitoring=True)
    (component,) = monitored.of_type(BalancerTier.TYPE)
    (monitoring,) = [r for r in monitored.children_of(component) if r.type == "kubernetes:monitoring.googleapis.com/v1:PodMonitoring"]
    # Managed Service for Prometheus's own resource: no OpenAPI schema shipped; checked field by field
    inputs = monitoring.inputs
    assert (inputs["apiVersion"], inputs["kind"]) == ("monitoring.googleapis.com/v1", "PodMonitoring")
    assert inputs["metadata"]["name"] == "digits-balancer" and inputs["metadata"]["namespace"] == "mltoolkit"
    assert inputs["metadata"]["labels"]["expires"] == "20300101t0000z"
    assert inputs["spec"] == {
        "selector": {"matchLabels": {"app.kubernetes.io/name": "digits-balancer"}},
        "endpoints": [{"port": "http", "path": "/-/metrics", "interval": "30s"}],
    }
    # it selects exactly the balancer pods, on the port their container names
    pod = only(monitored, "kubernetes:apps/v1:Deployment")["spec"]["template"]
    assert set(inputs["spec"]["selector"]["matchLabels"].items()) <= set(pod["metadata"]["labels"].items())
    assert [p["name"] for p in pod["spec"]["containers"][0]["ports"]] == ["http"]
    with pytest.raises(SpecError, match="BalancerTierArgs.pod_monitoring"):
        BalancerTierArgs(deployment=tier_deployment, provider=None, image=IMAGE, serving=None, pod_monitoring="yes")


def test_a_cluster_with_managed_prometheus_gets_the_pod_monitoring(sketch_run, deployment):
    from tests.gcp.conftest import run

    def monitorings(result):
        return [r for r in result.resources if r.type.endswith(":PodMonitoring")]

    assert not monitorings(sketch_run)  # off by default
    (monitoring,) = monitorings(run(make_cluster(managed_prometheus=True), deployment))
    assert monitoring.inputs["spec"]["endpoints"][0]["path"] == "/-/metrics"
