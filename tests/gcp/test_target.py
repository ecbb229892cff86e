"""GKETarget over the replaying Pulumi CLI, with the real GKE program and plan.

The CLI is ``mltoolkit.stack.replay.ReplayPulumiCommand`` (argv checked, output and engine
events replayed from tests/fixtures/pulumi); the program and the plan are the package's own.
Cloud observation runs against local servers: a model endpoint for ``load_test`` and the fake
Kubernetes API of tests/observe for ``utilization``. The last test needs a real cloud.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from mltoolkit.errors import SpecError
from mltoolkit.gcp.target import GKETarget, google_credentials_source
from mltoolkit.spec import ClusterSpec, DeploymentSpec, ModelSpec
from mltoolkit.stack.errors import GoogleCredentialsError, NoEndpointError, NotDeployedError
from mltoolkit.stack.replay import ReplayPulumiCommand, Scenario

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures" / "pulumi"
ALLOWED = "198.51.100.0/24"


def load_scenario(name: str, **overrides) -> Scenario:
    return Scenario.load(FIXTURES / f"{name}.json", **overrides)


def _fake_kube_api():
    spec = importlib.util.spec_from_file_location("fake_kube_api", TESTS / "observe" / "fake_kube_api.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fake_kube_api", module)  # dataclasses look their module up there
    spec.loader.exec_module(sys.modules["fake_kube_api"])
    return sys.modules["fake_kube_api"]


@pytest.fixture(autouse=True)
def _environment(request, monkeypatch, tmp_path):
    """No user passphrase, and Google credentials only where a test puts them (the real-cloud
    test keeps the real environment)."""
    if request.node.get_closest_marker("gcp"):
        return
    for name in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_BACKEND_URL",
                 "GOOGLE_CREDENTIALS", "GOOGLE_CLOUD_KEYFILE_JSON", "GOOGLE_OAUTH_ACCESS_TOKEN",
                 "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_IMPERSONATE_SERVICE_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    # the kubeconfig's auth plugin (and gcloud) as the kernel would find them; never run here
    tools = tmp_path / "bin"
    tools.mkdir()
    for command in ("gke-gcloud-auth-plugin", "gcloud"):
        (tools / command).write_text("#!/bin/sh\nexit 1\n")
        (tools / command).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture
def adc(tmp_path):
    """gcloud's Application Default Credentials file, as `gcloud auth application-default login` leaves it."""
    path = tmp_path / "gcloud" / "application_default_credentials.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"type": "authorized_user", "client_id": "x", "client_secret": "y", "refresh_token": "z"}))
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A real fitted (tiny) scikit-learn model saved to a file: planning only needs the file."""
    from sklearn.dummy import DummyClassifier

    model = DummyClassifier(strategy="most_frequent").fit(np.zeros((4, 64)), [0, 1, 1, 2])
    return ModelSpec.from_object(model, name="digits", directory=tmp_path_factory.mktemp("m")).path


@pytest.fixture
def spec(model_path):
    return DeploymentSpec(model=ModelSpec.from_file(model_path, name="digits"), replicas=3, cpu="1", memory="2Gi")


@pytest.fixture
def cluster():
    return ClusterSpec(name="ml", project="my-proj", location="us-central1-a", allowed_cidrs=(ALLOWED,))


@pytest.fixture
def fake():
    return ReplayPulumiCommand()


def target_for(cluster, fake, **kwargs):
    kwargs.setdefault("progress", "text")
    kwargs.setdefault("owner", "alice")
    return GKETarget(cluster, "dev", pulumi_command=fake, **kwargs)


def events_for_plan(plan) -> list[dict]:
    """Engine events creating every resource of a plan, in the shape of the replayed up_success
    sample (one of its resourcePreEvent/resOutputsEvent pairs is the template)."""
    sample = load_scenario("up_success").events
    pre = next(e for e in sample if "resourcePreEvent" in e and e["resourcePreEvent"]["metadata"]["new"].get("custom"))
    out = next(e for e in sample if "resOutputsEvent" in e and e["resOutputsEvent"]["metadata"]["new"].get("custom"))
    events = [sample[0]]
    for resource in plan.run.resources:
        urn = "urn:pulumi:dev::" + resource.urn.split("::", 1)[1]
        for template, key in ((pre, "resourcePreEvent"), (out, "resOutputsEvent")):
            event = copy.deepcopy(template)
            meta = event[key]["metadata"]
            meta.update(urn=urn, type=resource.type)
            meta["new"].update(urn=urn, type=resource.type, inputs={}, outputs={})
            if not resource.custom:
                meta["new"].pop("custom", None)
            events.append(event)
    return events + [e for e in sample if "summaryEvent" in e or "cancelEvent" in e]


# ---------------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"stack": "Dev"}, "stack"),
        ({"backend": "s3://bucket"}, "backend"),
        ({"ttl": "forever"}, "ttl"),
        ({"owner": "Alice Smith"}, "owner"),
        ({"progress": "loud"}, "GKETarget.progress"),
        ({"config": {"token": "x"}}, "GKETarget.config"),
        ({"check_credentials": "no"}, "GKETarget.check_credentials"),
    ],
)
def test_bad_arguments_fail_before_any_cli_call(cluster, fake, kwargs, field):
    stack = kwargs.pop("stack", "dev")
    with pytest.raises(SpecError) as info:
        GKETarget(cluster, stack, pulumi_command=fake, **kwargs)
    assert info.value.field == field
    assert fake.calls == []


def test_cluster_must_be_a_cluster_spec(fake):
    with pytest.raises(SpecError, match="GKETarget.cluster"):
        GKETarget({"name": "ml"}, pulumi_command=fake)


def test_every_planned_resource_carries_owner_and_stack_labels_and_the_expiry_where_in_place(cluster, spec, fake):
    target = target_for(cluster, fake, ttl="8h")
    labels = target.labels()
    assert labels["owner"] == "alice" and labels["stack"] == "dev" and labels["expires"].endswith("z")
    plan = target.plan(spec)
    labelled = 0
    for resource in plan.run.resources:
        inputs = resource.inputs
        for key in ("labels", "resourceLabels"):
            if isinstance(inputs.get(key), dict):
                assert {k: inputs[key].get(k) for k in ("owner", "stack", "expires")} == {
                    "owner": "alice", "stack": "dev", "expires": labels["expires"]}, resource.name
                labelled += 1
        node_config = inputs.get("nodeConfig") or {}
        if "resourceLabels" in node_config:  # a new expiry must not recreate the nodes
            assert node_config["resourceLabels"]["owner"] == "alice"
            assert "expires" not in node_config["resourceLabels"]
    assert labelled >= 3  # registry, bucket and cluster at least
    assert fake.calls == []  # planning runs under mocks, no CLI


# ---------------------------------------------------------------------------------- credentials


def test_up_without_credentials_stops_before_the_cli(cluster, spec, fake):
    target = target_for(cluster, fake)
    with pytest.raises(GoogleCredentialsError, match="gcloud auth application-default login"):
        target.up(spec)
    assert fake.calls == []


def _without_tool(monkeypatch, tmp_path, command):
    (tmp_path / "bin" / command).unlink()
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / command).exists()
                           or p == str(tmp_path / "bin"))
    monkeypatch.setenv("PATH", path)


def test_a_missing_auth_plugin_stops_up_before_the_cli(cluster, spec, fake, adc, monkeypatch, tmp_path):
    from mltoolkit.stack.errors import AuthPluginMissingError

    _without_tool(monkeypatch, tmp_path, "gke-gcloud-auth-plugin")
    target = target_for(cluster, fake)
    for call in (lambda: target.up(spec), lambda: target.preview(spec), target.down):
        with pytest.raises(AuthPluginMissingError, match="gcloud components install gke-gcloud-auth-plugin"):
            call()
    assert fake.calls == []  # nothing created, not even a stack


def test_impersonation_needs_gcloud_and_reaches_the_kubeconfig(cluster, spec, fake, adc, monkeypatch, tmp_path):
    from mltoolkit.stack.errors import AuthPluginMissingError

    account = "deployer@my-proj.iam.gserviceaccount.com"
    target = target_for(cluster, fake, config={"gcp:impersonateServiceAccount": account})
    kubeconfig = json.loads(target.plan(spec).run.outputs["kubeconfig"])
    exec_entry = kubeconfig["users"][0]["user"]["exec"]
    assert exec_entry["env"] == [{"name": "CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT", "value": account}]
    assert "args" not in exec_entry  # not the caller's own ADC identity
    _without_tool(monkeypatch, tmp_path, "gcloud")
    with pytest.raises(AuthPluginMissingError, match="gcloud is not on the PATH"):
        target.up(spec)
    assert fake.calls == []


def test_provider_only_credentials_do_not_satisfy_the_auth_plugin(cluster, spec, fake, monkeypatch):
    monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.token")  # the provider reads it, the plugin not
    with pytest.raises(GoogleCredentialsError, match="reads only application-default credentials"):
        target_for(cluster, fake).up(spec)
    assert fake.calls == []


def test_credentials_sources(adc, tmp_path, monkeypatch):
    assert "application-default credentials" in google_credentials_source()
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(GoogleCredentialsError, match="missing.json, which does not exist"):
        google_credentials_source()
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    assert google_credentials_source().startswith("GOOGLE_APPLICATION_CREDENTIALS")


# ---------------------------------------------------------------------------------- up / down


def test_up_shows_cost_then_progress_to_the_last_planned_resource(cluster, spec, fake, adc, capsys):
    from mltoolkit.gcp.target import required_plugins

    fake.plugins |= {("resource", name, version) for name, version in required_plugins().items()}
    target = target_for(cluster, fake)
    plan = target.plan(spec)
    planned = sum(1 for r in plan.run.resources if r.custom)
    outputs = dict(load_scenario("up_success").outputs, model_name="digits", namespace="mltoolkit")
    fake.script(Scenario(command="up", events=events_for_plan(plan), outputs=outputs,
                         secret_outputs=["kubeconfig"], resource_count=len(plan.run.resources) + 2))
    capsys.readouterr()
    endpoint = target.up(spec)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"up dev: {planned} resources planned, estimated ${plan.cost_per_hour:,.2f}/hour")
    assert "owner alice, expires " in lines[0]
    assert lines[-1].startswith(f"up dev: succeeded — {planned} created")
    assert target._lifecycle.last_progress.done == target._lifecycle.last_progress.planned == planned
    assert (endpoint.url, endpoint.model_name) == ("http://34.118.20.7", "digits")
    config = fake.calls_of("config", "set-all")[0]
    assert config.flag("--plaintext") == ["gcp:project=my-proj", "gcp:region=us-central1", "gcp:zone=us-central1-a"]
    assert "kubeconfig" in target.outputs() and "[secret]" in repr(target.outputs())


def _unchanged_up_events(count):
    """The up_success sample with its summary saying every resource stayed the same."""
    events = copy.deepcopy(load_scenario("up_success").events)
    for event in events:
        if "summaryEvent" in event:
            event["summaryEvent"]["resourceChanges"] = {"same": count}
    return [e for e in events if "resourcePreEvent" not in e and "resOutputsEvent" not in e]


def test_a_second_up_keeps_the_expiry_and_reports_no_changes(cluster, spec, fake, adc, monkeypatch):
    target = target_for(cluster, fake, progress=False, ttl="8h")
    seen = []
    build = target._program
    monkeypatch.setattr(target, "_program", lambda s, labels: seen.append(dict(labels)) or build(s, labels))
    outputs = dict(load_scenario("up_success").outputs, model_name="digits")
    fake.script(load_scenario("up_success"),
                Scenario(command="up", events=_unchanged_up_events(12), outputs=outputs, resource_count=12),
                Scenario(command="up", events=_unchanged_up_events(12), outputs=outputs, resource_count=12))
    target.up(spec)
    assert target.last_changes == {"create": 12}
    record = target._lifecycle._record()
    record.expires = "20991231t2359z"  # as if the first up() ran long ago with a long ttl
    target._lifecycle.records.write(record)
    target.up(spec)
    assert seen[1]["expires"] == "20991231t2359z"  # kept: the labels, so the inputs, do not move
    assert target.last_changes == {"same": 12}
    target.up(spec, renew_expiry=True)
    assert seen[2]["expires"] != "20991231t2359z"
    with pytest.raises(SpecError, match="up.renew_expiry"):
        target.up(spec, renew_expiry="yes")


def test_down_destroys_and_removes(cluster, fake, adc, capsys):
    fake.add_stack("dev", resource_count=12, outputs={"endpoint_url": "http://34.118.20.7"})
    fake.script(load_scenario("destroy"))
    target = target_for(cluster, fake)
    assert target.down() is True
    assert [" ".join(c.words) for c in fake.calls if c.words != ["stack", "select"]] == [
        "stack ls", "destroy", "stack history", "stack rm",
    ]
    assert fake.calls_of("destroy")[0].flag("--refresh") is True  # finds what an interrupted run left
    assert fake.stacks == {}
    assert "destroy dev: succeeded — 0 created, 0 updated, 7 deleted" in capsys.readouterr().out
    with pytest.raises(NotDeployedError):
        target.endpoint


def test_interrupted_up_then_down(cluster, spec, fake, adc):
    fake.script(load_scenario("up_interrupted"), load_scenario("destroy_after_interrupt"))
    target = target_for(cluster, fake, progress=False)
    with pytest.raises(KeyboardInterrupt):
        target.up(spec)
    assert target.status().status == "interrupted"
    assert target.down() is True
    destroy = fake.calls_of("destroy")[-1]
    assert destroy.flag("--refresh") is True and destroy.flag("--stack") == "dev"
    assert fake.calls_of("cancel") and fake.calls[-1].argv == ["--non-interactive", "stack", "rm", "--yes", "dev"]
    assert fake.stacks == {}


def test_sweep_is_a_dry_run_by_default(cluster, fake):
    fake.add_stack("old", resource_count=3, outputs={"mltoolkit_owner": "bob", "mltoolkit_expires": "20200101t0000z"})
    listed = target_for(cluster, fake).sweep()
    assert list(listed["stack"]) == ["old"] and list(listed["action"]) == ["would destroy"]
    assert fake.calls_of("destroy") == []


# ---------------------------------------------------------------------------------- use / measure


def test_endpoint_needs_an_exposed_service(cluster, fake):
    fake.add_stack("dev", outputs={"endpoint_url": None, "model_name": "digits"})
    with pytest.raises(NoEndpointError, match="allowed_cidrs"):
        target_for(cluster, fake).endpoint
    fresh = ReplayPulumiCommand()
    with pytest.raises(NotDeployedError, match="call target.up"):
        target_for(cluster, fresh).endpoint


class _ModelServer:
    """A tiny model endpoint on 127.0.0.1 answering POST /predict like the serving app."""

    def __init__(self):
        outer = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests += 1
                answer = json.dumps({"predictions": [0] * len(body["instances"])}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Replica", "digits-0")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def model_server():
    server = _ModelServer()
    yield server
    server.close()


def test_load_test_runs_against_the_url_in_the_stack_outputs(cluster, fake, model_server):
    fake.add_stack("dev", outputs={"endpoint_url": model_server.url, "model_name": "digits"})
    target = target_for(cluster, fake)
    frame = target.load_test(rate=40, duration=0.5, X=np.zeros((4, 64)))
    assert len(frame) == model_server.requests > 0
    assert set(frame["status"]) == {200} and set(frame["replica"]) == {"digits-0"}


def test_utilization_reads_the_cluster_named_by_the_kubeconfig_output(cluster, fake):
    kube = _fake_kube_api()
    base = kube.three_node_cluster()
    program_labels = {"app.kubernetes.io/name": "digits", "app.kubernetes.io/component": "model-server"}
    a, b, c = kube.THREE_NODE_NAMES
    pods = [kube.pod_object(f"digits-{i}", namespace="mltoolkit", labels=program_labels, node=node)
            for i, node in enumerate((a, a, b))]
    pods.append(kube.pod_object("stranger", namespace="default", labels=program_labels, node=c))
    with kube.FakeKubeAPI(kube.FakeCluster(nodes=base.nodes, node_metrics=base.node_metrics, pods=pods)) as api:
        fake.add_stack("dev", outputs={"kubeconfig": api.kubeconfig_yaml(), "model_name": "digits",
                                       "namespace": "mltoolkit"}, secret_outputs={"kubeconfig"})
        frame = target_for(cluster, fake).utilization()
        paths = [path for path, _ in api.requests]
    assert frame["node"].tolist() == [a, b, c]
    assert frame["replicas"].tolist() == [2, 1, 0]  # the model's pods only, in its namespace
    assert frame.loc[0, "cpu_percent"] == 37.5  # 1500m of 4 allocatable cores
    assert "/api/v1/namespaces/mltoolkit/pods" in paths


def test_latency_and_the_utilization_counters_come_from_the_balancer_tier(cluster, fake):
    """latency() sums the balancer pods' /-/metrics; utilization() fills in_flight and served
    per node from their /-/replicas (both through the API server's pod proxy)."""
    from mltoolkit.balancer.metrics import ReplicaTraffic, metrics_document
    from tests.observe.fake_balancer_pods import FakeKubeAPIWithProxy, balancer_pod

    kube = _fake_kube_api()
    base = kube.three_node_cluster()
    a, b, c = kube.THREE_NODE_NAMES
    model_labels = {"app.kubernetes.io/name": "digits", "app.kubernetes.io/component": "model-server"}
    pods = [kube.pod_object("digits-0", namespace="mltoolkit", labels=model_labels, node=a),
            kube.pod_object("digits-1", namespace="mltoolkit", labels=model_labels, node=b),
            balancer_pod("digits-balancer-x", a), balancer_pod("digits-balancer-y", b)]  # fmt: skip

    def traffic(name, node, count, latency_s):
        replica = ReplicaTraffic(name, node)
        for _ in range(count):
            replica.observe(latency_s, 200)
        return replica

    def report(*rows):
        return {"policy": "ewma", "replicas": [{"name": n, "node": node, "healthy": True, "in_flight": i,
                                                "served": s, "failed": 0} for n, node, i, s in rows]}  # fmt: skip

    pages = {
        ("digits-balancer-x", "/-/metrics?format=json"): metrics_document([traffic("digits-0", a, 30, 0.004),
                                                                           traffic("digits-1", b, 5, 0.04)]),
        ("digits-balancer-y", "/-/metrics?format=json"): metrics_document([traffic("digits-0", a, 10, 0.004)]),
        ("digits-balancer-x", "/-/replicas"): report(("digits-0", a, 2, 30), ("digits-1", b, 0, 5)),
        ("digits-balancer-y", "/-/replicas"): report(("digits-0", a, 1, 10), ("digits-1", b, 4, 0)),
    }  # fmt: skip
    cluster_state = kube.FakeCluster(nodes=base.nodes, node_metrics=base.node_metrics, pods=pods)
    with FakeKubeAPIWithProxy(cluster_state, pages) as api:
        fake.add_stack("dev", outputs={"kubeconfig": api.kubeconfig_yaml(), "model_name": "digits",
                                       "namespace": "mltoolkit"}, secret_outputs={"kubeconfig"})
        target = target_for(cluster, fake)
        latency = target.latency()
        by_node = target.latency(by="node")
        utilization = target.utilization()
        with pytest.raises(SpecError, match="latency.by"):
            target.latency(by="pod")
    assert list(latency["replica"]) == ["digits-0", "digits-1"] and list(latency["count"]) == [40, 5]
    assert latency.attrs["balancers"] == 2 and (latency["p50_ms"] > 0).all()
    assert list(by_node["node"]) == [a, b] and list(by_node["count"]) == [40, 5]
    assert utilization["node"].tolist() == [a, b, c]
    assert utilization["in_flight"].tolist() == [3, 4, 0] and utilization["served"].tolist() == [40, 5, 0]
    assert str(utilization["served"].dtype) == "Int64"


# ---------------------------------------------------------------------------------- real cloud


def _real_cloud_reason() -> str | None:
    if shutil.which("pulumi") is None:
        return "needs the Pulumi CLI on PATH"
    try:
        if google_credentials_source() is None:
            return "needs Google Cloud credentials (gcloud auth application-default login)"
    except GoogleCredentialsError as exc:
        return str(exc)
    if not os.environ.get("MLTOOLKIT_GCP_PROJECT"):
        return "needs MLTOOLKIT_GCP_PROJECT (a project where a small GKE cluster may be created)"
    return None


_REAL_CLOUD_MISSING = _real_cloud_reason()


@pytest.mark.gcp
@pytest.mark.skipif(_REAL_CLOUD_MISSING is not None, reason=f"real cloud: {_REAL_CLOUD_MISSING}")
def test_real_gke_up_predict_measure_down(digits_model, tmp_path):
    """Creates a small zonal cluster in MLTOOLKIT_GCP_PROJECT, serves the digits model, and
    removes everything. Takes 10-20 minutes and costs a few cents."""
    model, X, _ = digits_model
    cluster = ClusterSpec(
        name=f"mlt-{uuid.uuid4().hex[:6]}", project=os.environ["MLTOOLKIT_GCP_PROJECT"],
        location=os.environ.get("MLTOOLKIT_GCP_ZONE", "us-central1-a"),
        allowed_cidrs=(os.environ.get("MLTOOLKIT_GCP_ALLOWED_CIDR", "0.0.0.0/0"),),
        allow_public="MLTOOLKIT_GCP_ALLOWED_CIDR" not in os.environ,
    )
    spec = DeploymentSpec(model=ModelSpec.from_object(model, name="digits", directory=tmp_path), replicas=2)
    target = GKETarget(cluster, stack=cluster.name, state_dir=tmp_path / "pulumi", ttl="2h", progress="text")
    try:
        endpoint = target.up(spec)
        assert endpoint is not None and endpoint.ready()
        assert len(endpoint.predict(X[:3])) == 3
        assert len(target.load_test(rate=5, duration=3, X=X)) > 0
        assert len(target.utilization()) >= 1
        from mltoolkit.gcp.smoke import unexpected_changes

        target.up(spec)  # the same spec again: nothing restarts, nothing is replaced
        assert not unexpected_changes(target.last_changes), target.last_changes
    finally:
        target.down()
    assert target.status().exists is False


def test_without_the_pulumi_sdk_the_target_imports_and_says_what_to_install(tmp_path):
    """pulumi is an optional extra: GKETarget must import without it and explain on first use."""
    import subprocess

    code = """
import sys
class NoPulumi:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pulumi", "pulumi_gcp", "pulumi_kubernetes"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoPulumi())
from mltoolkit.gcp.target import GKETarget
from mltoolkit.spec import ClusterSpec, DeploymentSpec, ModelSpec
target = GKETarget(ClusterSpec(name="ml", project="my-proj", location="us-central1-a"),
                   check_credentials=False, progress=False)
spec = DeploymentSpec(model=ModelSpec.from_image("us-docker.pkg.dev/p/r/digits:1", name="digits"))
for call in (lambda: target.plan(spec), target.down):
    try:
        call()
    except Exception as exc:
        print(type(exc).__name__, exc)
print("pulumi imported:", any(m.split(".")[0] == "pulumi" for m in sys.modules))
"""
    env = {**os.environ, "MLTOOLKIT_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("GcpExtraMissingError") and "pip install 'mltoolkit[gcp]'" in line for line in lines[:2])
    assert lines[2] == "pulumi imported: False"


def test_up_installs_the_plugins_matching_the_installed_sdks(cluster, spec, fake, adc):
    from importlib import metadata

    from mltoolkit.gcp.target import required_plugins

    assert required_plugins() == {
        "command": metadata.version("pulumi_command"),  # runs the serving image's build
        "gcp": metadata.version("pulumi_gcp"), "kubernetes": metadata.version("pulumi_kubernetes")}
    fake.script(load_scenario("up_success"))
    target_for(cluster, fake, progress=False).up(spec)
    installed = {c.argv[-2]: c.argv[-1] for c in fake.calls_of("plugin", "install")}
    assert installed == {name: f"v{version}" for name, version in required_plugins().items()}


def test_up_writes_the_build_context_the_program_builds_from(cluster, spec, fake, adc, tmp_path, monkeypatch):
    from mltoolkit.gcp.program import serving_build

    monkeypatch.setenv("MLTOOLKIT_HOME", str(tmp_path / "home"))
    context, directory = serving_build(cluster, spec)
    assert directory == tmp_path / "home" / "builds" / context.digest
    plan = target_for(cluster, fake).plan(spec)
    (build,) = plan.run.of_type("command:local:Command")
    assert f"gcloud builds submit {directory}" in build.inputs["create"]
    assert any("built by up() with Cloud Build" in note and "$0.02 once" in note for note in plan.notes)
    assert not directory.exists()  # plan() writes nothing
    fake.script(load_scenario("up_success"))
    target_for(cluster, fake, progress=False).up(spec)
    assert (directory / "Dockerfile").is_file() and (directory / "mltoolkit" / "serving" / "__main__.py").is_file()
    assert (directory / "requirements.txt").read_text().startswith("aiohttp==")
