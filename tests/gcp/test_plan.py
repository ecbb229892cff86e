import asyncio
from collections import Counter

import pandas as pd
import pytest

from mltoolkit import SpecError
from mltoolkit.gcp import plan as plan_module
from mltoolkit.gcp import prices
from mltoolkit.gcp.plan import Plan, plan
from mltoolkit.spec import ClusterSpec, original_sketch_deployment
from tests.gcp.conftest import ALLOWED, PROJECT, make_cluster

SKETCH_TYPES = Counter(
    {
        "mltoolkit:gcp:Registry": 1,
        "mltoolkit:gcp:Network": 1,
        "mltoolkit:gcp:GkeCluster": 1,
        "mltoolkit:gcp:KubernetesAccess": 1,
        "mltoolkit:gcp:ModelDelivery": 1,
        "mltoolkit:gcp:ServingImage": 1,
        "mltoolkit:gcp:ModelServing": 1,
        "mltoolkit:gcp:BalancerTier": 1,
        "mltoolkit:gcp:ModelEndpoint": 1,
        "gcp:artifactregistry/repository:Repository": 1,
        "gcp:storage/bucket:Bucket": 1,
        "gcp:compute/network:Network": 1,
        "gcp:compute/subnetwork:Subnetwork": 1,
        "gcp:serviceaccount/account:Account": 2,  # nodes, model reader
        "gcp:projects/iAMMember:IAMMember": 1,  # roles/container.defaultNodeServiceAccount
        "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": 1,
        "gcp:container/cluster:Cluster": 1,
        "gcp:container/nodePool:NodePool": 1,
        "gcp:storage/bucketObject:BucketObject": 1,
        "gcp:storage/bucketIAMMember:BucketIAMMember": 1,
        "gcp:serviceaccount/iAMMember:IAMMember": 1,
        "command:local:Command": 1,  # the serving image, built by Cloud Build
        "pulumi:providers:kubernetes": 1,
        "kubernetes:core/v1:Namespace": 1,
        "kubernetes:core/v1:ServiceAccount": 2,  # model server, balancer tier
        "kubernetes:apps/v1:Deployment": 2,  # the sketch's model Deployment and the balancer tier
        "kubernetes:core/v1:Service": 2,  # one LoadBalancer in front of the tier, the replicas' ClusterIP
        "kubernetes:rbac.authorization.k8s.io/v1:Role": 1,  # the tier may read EndpointSlices ...
        "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": 1,  # ... and nothing else
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": 1,
        "kubernetes:policy/v1:PodDisruptionBudget": 2,  # one replica or balancer pod at a time
    }
)


@pytest.fixture(scope="module")
def sketch_plan(model):
    cluster = ClusterSpec.original_sketch(project=PROJECT, allowed_cidrs=[ALLOWED])
    return plan(cluster, original_sketch_deployment(model), labels={"owner": "alice"})


def test_original_sketch_plan_lists_the_expected_resources(sketch_plan):
    frame = sketch_plan.resources
    assert list(frame.columns) == ["type", "name", "parent", "settings"]
    assert Counter(frame["type"]) == SKETCH_TYPES
    row = frame.set_index("name").loc["mltoolkit-pool-sketch"]
    assert row["parent"] == "cluster"
    assert row["settings"] == "machine=n1-standard-4, nodes=3-3, spot=True, disk=100GB pd-standard"
    assert list(frame["name"][:3]) == ["registry", "mltoolkit-images", "mltoolkit-models"]  # stable order
    service = frame.set_index("name").loc["digits-service"]
    assert service["settings"].startswith("type=LoadBalancer, source_ranges=198.51.100.0/24")


def test_plan_costs_add_up(sketch_plan):
    assert sketch_plan.cost_per_hour == pytest.approx(sketch_plan.costs["usd_per_hour"].sum())
    assert sketch_plan.cost_per_month == pytest.approx(sketch_plan.cost_per_hour * 730)
    n1 = prices.MACHINE_FAMILY_RATES["n1"]
    nodes = sketch_plan.costs.set_index("item").loc["n1-standard-4 VM (spot)"]
    assert nodes["usd_per_hour"] == pytest.approx(3 * (4 * n1.spot_vcpu + 15 * n1.spot_memory_gb))
    assert sketch_plan.cost_per_hour_max == pytest.approx(sketch_plan.cost_per_hour)  # min = max = 3 nodes


def test_original_sketch_costs_what_the_2024_07_table_says(sketch_plan):
    # 0.10 GKE fee + 3 × 0.04202 spot n1-standard-4 (4 × 0.00698 + 15 × 0.00094)
    # + 300 GB × 0.04 / 730 pd-standard + 3 × 0.0025 spot-VM IPv4 + 0.025 forwarding rule
    # + 1 GB × 0.10 / 730 image + a few kB of model: update together with prices.py
    assert prices.PRICES_AS_OF == "2024-07"
    assert sketch_plan.cost_per_hour == pytest.approx(0.10 + 0.12606 + 0.016438 + 0.0075 + 0.025 + 0.000137, abs=1e-5)
    assert sketch_plan.cost_per_month == pytest.approx(200.85, abs=0.01)


def test_plan_outputs_hide_the_kubeconfig(sketch_plan):
    assert sketch_plan.outputs["kubeconfig"] == "[secret]"
    assert sketch_plan.outputs["cluster_name"] == "mltoolkit"
    assert sketch_plan.inputs("mltoolkit-cluster")["name"] == "mltoolkit"


def test_plan_text_and_html_show_the_totals_and_the_price_date(sketch_plan):
    text = str(sketch_plan)
    assert f"${sketch_plan.cost_per_hour:.4f}/hour" in text
    assert f"${sketch_plan.cost_per_month:.2f}/month" in text
    assert prices.PRICES_AS_OF in text
    assert "gcloud builds submit" in text  # the default image must be built first
    html = sketch_plan._repr_html_()
    assert "<table" in html and f"${sketch_plan.cost_per_month:.2f}/month" in html


def test_two_plans_in_one_process_differ_as_their_specs(sketch_plan, deployment):
    other = plan(make_cluster(name="other", load_balancer="l7"), deployment)
    assert "kubernetes:networking.k8s.io/v1:Ingress" in set(other.resources["type"])
    assert "kubernetes:networking.k8s.io/v1:Ingress" not in set(sketch_plan.resources["type"])
    assert other.outputs["cluster_name"] == "other"
    diff = sketch_plan.diff(other)
    assert set(diff.loc[diff["change"] == "added", "name"]) >= {"digits-ingress", "other-cluster"}


def test_plan_runs_inside_a_running_event_loop(sketch_plan, model):
    # As in a Jupyter cell: an event loop is already running when plan() runs the program.
    async def cell():
        assert asyncio.get_running_loop().is_running()
        cluster = ClusterSpec.original_sketch(project=PROJECT, allowed_cidrs=[ALLOWED])
        return plan(cluster, original_sketch_deployment(model), labels={"owner": "alice"})

    result = asyncio.run(cell())
    assert isinstance(result, Plan)
    # The same plan as outside a loop: every resource and setting, every cost line, every output.
    pd.testing.assert_frame_equal(result.resources, sketch_plan.resources)
    pd.testing.assert_frame_equal(result.costs, sketch_plan.costs)
    assert Counter(result.resources["type"]) == SKETCH_TYPES
    assert result.outputs == sketch_plan.outputs and result.outputs["cluster_name"] == "mltoolkit"
    assert result.cost_per_hour == sketch_plan.cost_per_hour


def test_unexposed_plan_says_so(deployment):
    result = plan(make_cluster(allowed_cidrs=()), deployment)
    assert any("No external endpoint" in note for note in result.notes)
    assert result.outputs["endpoint_url"] is None


def test_invalid_input_fails_before_the_program_runs(deployment, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("the program ran")

    monkeypatch.setattr(plan_module, "run_program", must_not_run)
    with pytest.raises(SpecError) as info:
        plan(make_cluster(), deployment, labels={"owner": "Alice Smith"})
    assert info.value.field == "labels.owner"


def test_both_targets_plan_the_same_type(sketch_plan, model):
    """One plan() shape (issue 12.13): notebooks and panels read resources, costs and cost per
    hour without asking which target made it."""
    from mltoolkit import LocalTarget
    from mltoolkit.planning import COST_COLUMNS
    from mltoolkit.planning import Plan as AnyPlan

    local = LocalTarget(nodes=2, progress=False).plan(original_sketch_deployment(model, cpu="250m"))
    for made in (local, sketch_plan):
        assert isinstance(made, AnyPlan)
        assert list(made.costs.columns) == COST_COLUMNS and len(made.resources) > 0
        assert made.cost_per_month == pytest.approx(made.cost_per_hour * 730)
        assert "Estimated cost" in str(made) or "Estimated cost" in str(AnyPlan.__str__(made))
    assert local.cost_per_hour == 0 and sketch_plan.cost_per_hour > 0
