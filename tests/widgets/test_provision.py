"""ProvisionPanel without a kernel: set field values, click buttons, look at the fake target's
calls and at what the panel shows (HTML widget values, read back as tables and text)."""

from __future__ import annotations

import pytest

from mltoolkit.errors import SpecError
from mltoolkit.local import LocalTargetError
from mltoolkit.spec import ClusterSpec, ModelSpec
from mltoolkit.stack.errors import GoogleCredentialsError
from mltoolkit.widgets import ProvisionPanel

from .fakes import Factory
from .html_tables import records, tables, text

TIMEOUT = 60


@pytest.fixture
def model():
    return ModelSpec.from_image("us-docker.pkg.dev/p/r/digits:1", "digits")


@pytest.fixture
def factory():
    return Factory()


@pytest.fixture
def panel(model, factory):
    panel = ProvisionPanel(model, make_target=factory)
    yield panel
    for target in factory.built:  # a held fake must not keep the worker thread waiting
        for release in target._release.values():
            release.set()
    panel.close(TIMEOUT)


def buttons(panel):
    return [panel.plan_button, panel.up_button, panel.down_button]


def fill_gke(panel, **values):
    panel.target_choice.value = "gke"
    defaults = {"project": "my-proj-1", "allowed_cidrs": "203.0.113.0/24"}
    for key, value in {**defaults, **values}.items():
        panel.fields[key].value = value


# ------------------------------------------------------------------------------------- plan


def test_plan_on_the_local_target_shows_the_processes_and_no_cost(panel, factory):
    panel.fields["nodes"].value = 2
    panel.fields["replicas"].value = 3
    panel.fields["cpu"].value = "250m"
    panel.fields["policy"].value = "round_robin"
    panel.fields["data_plane"].value = "haproxy"
    panel.plan_button.click()
    assert panel.wait(TIMEOUT)

    target = factory.last
    assert (target.request.kind, target.request.nodes) == ("local", 2)
    ((spec,), _), = target.called("plan")
    assert (spec.replicas, spec.cpu, spec.balancer.policy) == (3, "250m", "round_robin")
    assert spec.balancer.data_plane == "haproxy"
    rows = records(panel.plan_view.value)
    assert [r["kind"] for r in rows] == ["replica", "replica", "replica", "balancer"]
    assert [r["cpu"] for r in rows[:3]] == ["250m"] * 3
    assert text(panel.status.value) == "Plan: 4 resources — estimated $0.0000/hour ($0.00/month)"
    assert panel.errors.value == ""


def test_plan_on_gke_shows_resources_cost_items_and_cost_per_hour(panel, factory):
    fill_gke(panel, machine_type="n1-standard-8", min_nodes=2, max_nodes=4, spot=True,
             allowed_cidrs="203.0.113.0/24, 198.51.100.7/32", stack="team-a")
    panel.plan_button.click()
    assert panel.wait(TIMEOUT)

    request = factory.last.request
    assert (request.kind, request.stack, request.backend) == ("gke", "team-a", None)
    pool = request.cluster.node_pools[0]
    assert (pool.machine_type, pool.min_nodes, pool.max_nodes, pool.spot) == ("n1-standard-8", 2, 4, True)
    assert request.cluster.allowed_cidrs == ("203.0.113.0/24", "198.51.100.7/32")
    assert "estimated $0.2527/hour ($184.47/month)" in text(panel.status.value)
    assert len(tables(panel.plan_view.value)) == 2
    assert [r["name"] for r in records(panel.plan_view.value, 0)] == ["ml-cluster", "ml-pool-default"]


@pytest.fixture
def model_file(tmp_path):
    """A real fitted (tiny) scikit-learn model saved to a file."""
    import numpy as np
    from sklearn.dummy import DummyClassifier

    fitted = DummyClassifier(strategy="most_frequent").fit(np.zeros((4, 8)), [0, 1, 1, 2])
    return ModelSpec.from_object(fitted, name="digits", directory=tmp_path)


def test_the_real_local_plan_through_the_default_factory(model_file):
    panel = ProvisionPanel(model_file, nodes=2, replicas=3)
    try:
        panel.plan()
        assert panel.wait(TIMEOUT)
        assert panel.errors.value == ""
        rows = records(panel.plan_view.value)
        # LocalTarget.plan spreads replicas round-robin over the nodes; the balancer has no node
        assert [(r["kind"], r["name"], r["node"]) for r in rows] == [
            ("replica", "digits-0", "node-0"), ("replica", "digits-1", "node-1"),
            ("replica", "digits-2", "node-0"), ("balancer", "digits-balancer", "–"),
        ]
        assert "--replica-id digits-1" in rows[1]["command"]
        assert text(panel.status.value) == "Plan: 4 resources — estimated $0.0000/hour ($0.00/month)"
    finally:
        panel.close(TIMEOUT)


def test_an_image_model_cannot_go_to_the_local_target(model):
    panel = ProvisionPanel(model)
    try:
        panel.up()
        assert panel.wait(TIMEOUT)
        assert "can only be deployed to GKE" in text(panel.errors.value)
        assert not panel.busy and panel.endpoint is None
    finally:
        panel.close(TIMEOUT)


def test_the_real_gke_plan_shows_the_programs_resources_and_cost(model):
    cluster = ClusterSpec(name="ml", project="my-proj-1", location="us-central1-a", allowed_cidrs=("203.0.113.0/24",))
    panel = ProvisionPanel(model, target="gke", cluster=cluster)
    try:
        panel.plan()
        assert panel.wait(TIMEOUT)
        plan = panel.last_plan
        assert panel.errors.value == ""
        assert f"estimated ${plan.cost_per_hour:,.4f}/hour" in text(panel.status.value)
        shown = [r["type"] for r in records(panel.plan_view.value, 0)]
        assert shown == list(plan.resources["type"])
        assert "gcp:container/nodePool:NodePool" in shown
    finally:
        panel.close(TIMEOUT)


# ------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kind, key, value",
    [
        ("local", "cpu", "lots"),
        ("local", "memory", "-1Gi"),
        ("local", "replicas", 0),
        ("gke", "project", ""),
        ("gke", "location", "mars-north1"),
        ("gke", "min_nodes", 7),
        ("gke", "allowed_cidrs", "203.0.113.0/24, 10.0.0.1/8"),
        ("gke", "machine_type", "g2-standard-4"),  # message lands by the GPU type
    ],
)
def test_a_bad_field_shows_its_message_next_to_it_and_nothing_runs(panel, factory, kind, key, value):
    if kind == "gke":
        fill_gke(panel)
    panel.fields[key].value = value
    for action in (panel.plan, panel.up):
        assert action() is False
        shown = {k: label.value for k, label in panel.field_errors.items() if label.value}
        expected_key = "gpu_type" if key == "machine_type" else key
        assert list(shown) == [expected_key]
        assert "is not allowed; expected" in text(shown[expected_key])
        assert "fix the field marked ✗" in text(panel.errors.value)
        assert not panel.busy
    assert factory.built == []  # no target built, nothing started


def test_errors_from_building_the_target_land_next_to_their_field(model):
    panel = ProvisionPanel(model, nodes=0)  # the real LocalTarget refuses 0 nodes
    try:
        assert panel.plan() is False
        assert "0" in text(panel.field_errors["nodes"].value)
        assert isinstance(panel.last_error, SpecError) and panel.last_error.field == "LocalTarget.nodes"
    finally:
        panel.close(TIMEOUT)


def test_messages_clear_once_the_field_is_fixed(panel, factory):
    panel.fields["cpu"].value = "lots"
    panel.plan()
    assert panel.field_errors["cpu"].value
    panel.fields["cpu"].value = "1"
    panel.plan()
    assert panel.wait(TIMEOUT)
    assert panel.field_errors["cpu"].value == "" and panel.errors.value == ""
    assert len(factory.last.called("plan")) == 1


# -------------------------------------------------------------------------------------- up


def test_up_runs_in_the_background_with_live_progress_and_buttons_disabled(panel, factory):
    panel.fields["replicas"].value = 3
    factory_release = None

    def hold_up(request):
        target = Factory.__call__(factory, request)
        nonlocal factory_release
        factory_release = target.hold("up")
        return target

    panel.make_target = hold_up
    panel.up_button.click()  # returns while up() is still running
    target = factory.last
    assert target.entered["up"].wait(TIMEOUT)
    assert panel.busy
    assert all(b.disabled for b in buttons(panel))
    assert text(panel.status.value) == "Up: running…"
    log = panel.progress_area.children[0].children[1].value
    assert "starting 3 replica(s) and a balancer" in log

    factory_release.set()
    assert panel.wait(TIMEOUT)
    assert not any(b.disabled for b in buttons(panel))
    assert text(panel.status.value) == "Up: ready — endpoint http://127.0.0.1:8123, model digits"
    assert "endpoint http://127.0.0.1:8123 ready" in panel.progress_area.children[0].children[1].value
    assert panel.target is target and panel.endpoint.url == "http://127.0.0.1:8123"
    ((spec,), kwargs), = target.called("up")
    assert spec.replicas == 3 and callable(kwargs["progress"])


def test_gke_up_draws_the_progress_models_snapshots(panel, factory):
    fill_gke(panel)
    release = {}

    def hold_up(request):
        target = Factory.__call__(factory, request)
        release["up"] = target.hold("up")
        return target

    panel.make_target = hold_up
    panel.up()
    assert factory.last.entered["up"].wait(TIMEOUT)
    box = panel.progress_area.children[0]
    bar, status, log = box.children
    assert (bar.value, bar.max) == (1, 4)
    assert "1/4 resources — creating cluster" in status.value
    assert "estimated $0.25/hour" in log.value
    release["up"].set()
    assert panel.wait(TIMEOUT)
    assert (bar.value, bar.bar_style) == (4, "success")
    assert "up dev: succeeded — 4 created" in status.value
    assert "endpoint http://34.118.20.7" in text(panel.status.value)


def test_up_again_while_up_uses_the_same_target(panel, factory):
    panel.up()
    assert panel.wait(TIMEOUT)
    panel.fields["nodes"].value = 3
    panel.up()
    assert panel.wait(TIMEOUT)
    assert len(factory.built) == 1 and len(factory.last.called("up")) == 2


def test_a_second_click_while_busy_is_refused(panel, factory):
    release = {}

    def hold_up(request):
        target = Factory.__call__(factory, request)
        release["up"] = target.hold("up")
        return target

    panel.make_target = hold_up
    panel.up()
    assert factory.last.entered["up"].wait(TIMEOUT)
    assert panel.plan() is False and panel.down(confirm=True) is False
    assert "busy" in panel.status.value
    assert factory.last.called("plan") == [] and factory.last.called("down") == []
    release["up"].set()
    assert panel.wait(TIMEOUT)


@pytest.mark.parametrize(
    "error, shown",
    [
        (GoogleCredentialsError(), "Next step: run `gcloud auth application-default login`"),
        (LocalTargetError("1 of 3 process(es) did not come up; everything started is being stopped"),
         "1 of 3 process(es) did not come up"),
        (RuntimeError("socket exploded"), "last_traceback"),
    ],
)
def test_a_failed_up_is_shown_in_the_panel_and_the_buttons_come_back(panel, factory, error, shown):
    def failing(request):
        target = Factory.__call__(factory, request)
        target.fail("up", error)
        return target

    panel.make_target = failing
    panel.up()
    assert panel.wait(TIMEOUT)
    assert shown in text(panel.errors.value)
    assert f"Up failed ({type(error).__name__})" in text(panel.errors.value)
    assert text(panel.status.value) == "Up: failed"
    assert panel.last_error is error
    assert not any(b.disabled for b in buttons(panel))
    assert panel.target is factory.last  # Down can still reach whatever was created


# ------------------------------------------------------------------------------------ down


def test_down_asks_for_confirmation_first(panel, factory):
    panel.up()
    assert panel.wait(TIMEOUT)
    target = factory.last

    panel.down_button.click()
    assert panel.confirm_box.layout.display is None
    assert "Stop every process of the local deployment?" in text(panel.confirm_text.value)
    assert target.called("down") == []

    panel.cancel_button.click()
    assert panel.confirm_box.layout.display == "none"
    assert text(panel.status.value) == "Down: cancelled"
    assert target.called("down") == []

    panel.down_button.click()
    panel.confirm_button.click()
    assert panel.wait(TIMEOUT)
    assert len(target.called("down")) == 1
    assert text(panel.status.value) == "Down: done — nothing left running"
    assert panel.target is None and panel.endpoint is None


def test_down_on_gke_without_a_target_builds_one_for_the_stack_and_shows_progress(panel, factory):
    fill_gke(panel, stack="old-stack")
    panel.down()
    assert "Destroy every resource of stack old-stack" in text(panel.confirm_text.value)
    panel.confirm_button.click()
    assert panel.wait(TIMEOUT)
    target = factory.last
    assert target.request.stack == "old-stack"
    ((), kwargs), = target.called("down")
    assert callable(kwargs["progress"])
    assert "destroy dev: 4 resources to delete" in panel.progress_area.children[0].children[2].value


def test_a_failed_down_keeps_the_target_for_another_try(panel, factory):
    panel.up()
    assert panel.wait(TIMEOUT)
    factory.last.fail("down", LocalTargetError("could not stop pid 123"))
    panel.down(confirm=True)
    assert panel.wait(TIMEOUT)
    assert "could not stop pid 123" in text(panel.errors.value)
    assert panel.target is factory.last


# ----------------------------------------------------------------------------------- fields


def test_the_target_choice_shows_its_own_fields(panel):
    assert (panel.local_box.layout.display, panel.gke_box.layout.display) == (None, "none")
    panel.target_choice.value = "gke"
    assert (panel.local_box.layout.display, panel.gke_box.layout.display) == ("none", None)


def test_choosing_a_gpu_sets_its_first_offered_count(panel):
    panel.fields["gpu_type"].value = "nvidia-tesla-v100"
    assert panel.fields["gpu_count"].value == 1
    panel.fields["gpu_type"].value = None
    assert panel.fields["gpu_count"].value == 0


def test_fields_start_from_a_cluster_spec(model):
    cluster = ClusterSpec(name="ml", project="my-proj-1", location="europe-west4", allowed_cidrs=("198.51.100.0/24",))
    panel = ProvisionPanel(model, target="gke", cluster=cluster, stack="team-a")
    try:
        assert panel.request().cluster == cluster
        assert panel.request().stack == "team-a"
    finally:
        panel.close(TIMEOUT)


@pytest.mark.parametrize(
    "kwargs, field",
    [({"target": "aws"}, "ProvisionPanel.target"), ({"cluster": "big"}, "ProvisionPanel.cluster"),
     ({"make_target": 3}, "ProvisionPanel.make_target")],
)
def test_bad_arguments(model, kwargs, field):
    with pytest.raises(SpecError) as caught:
        ProvisionPanel(model, **kwargs)
    assert caught.value.field == field


def test_the_model_must_be_a_model_spec():
    with pytest.raises(SpecError) as caught:
        ProvisionPanel("digits.joblib")
    assert caught.value.field == "ProvisionPanel.model"


# ------------------------------------------------------- the real GKETarget, over the replayed CLI


@pytest.fixture
def google_credentials(monkeypatch, tmp_path):
    """No credentials from the real environment; a gcloud ADC file where the target looks."""
    for name in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_BACKEND_URL",
                 "GOOGLE_CREDENTIALS", "GOOGLE_CLOUD_KEYFILE_JSON", "GOOGLE_OAUTH_ACCESS_TOKEN",
                 "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    path = tmp_path / "gcloud" / "application_default_credentials.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"type": "authorized_user", "client_id": "x", "client_secret": "y", "refresh_token": "z"}')
    return path


def test_the_real_gke_target_up_and_down_with_progress_from_the_replayed_cli(model, google_credentials):
    from pathlib import Path

    from mltoolkit.gcp.target import GKETarget
    from mltoolkit.stack.replay import ReplayPulumiCommand, Scenario

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "pulumi"
    cli = ReplayPulumiCommand().script(
        Scenario.load(fixtures / "up_success.json"), Scenario.load(fixtures / "destroy.json")
    )

    def make(request):
        return GKETarget(request.cluster, stack=request.stack, progress=False, owner="alice", pulumi_command=cli)

    cluster = ClusterSpec(name="ml", project="my-proj", location="us-central1-a", allowed_cidrs=("198.51.100.0/24",))
    panel = ProvisionPanel(model, target="gke", cluster=cluster, make_target=make)
    try:
        panel.up()
        assert panel.wait(TIMEOUT * 2)
        assert panel.errors.value == "", panel.errors.value
        bar, status, log = panel.progress_area.children[0].children
        # the replayed up creates 7 cloud resources, the Service last
        assert "up dev: succeeded — 7 created" in status.value
        assert (bar.value, bar.bar_style) == (7, "success")
        assert log.value.endswith("created kubernetes:core/v1:Service digits")
        assert text(panel.status.value) == "Up: ready — endpoint http://34.118.20.7, model digits"

        panel.down(confirm=True)
        assert panel.wait(TIMEOUT)
        assert panel.errors.value == "", panel.errors.value
        bar, status, log = panel.progress_area.children[0].children
        assert "succeeded — 0 created, 0 updated, 7 deleted" in status.value
        assert cli.stacks == {}
        assert text(panel.status.value) == "Down: done — nothing left running"
    finally:
        panel.close(TIMEOUT)
