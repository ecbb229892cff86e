from dataclasses import replace

import pytest

from mltoolkit.errors import SpecError
from mltoolkit.gcp import catalog
from mltoolkit.spec import ClusterSpec, ModelSpec, NodePoolSpec
from mltoolkit.widgets import forms

MODEL = ModelSpec.from_image("us-docker.pkg.dev/p/r/digits:1", "digits")
GOOD_CLUSTER = forms.ClusterFields(project="my-proj-1", allowed_cidrs="203.0.113.0/24")


def test_fields_become_the_specs_they_describe():
    spec = forms.deployment_spec(
        MODEL, forms.DeploymentFields(replicas=3, cpu="250m", memory="1Gi", policy="round_robin", data_plane="haproxy")
    )
    assert (spec.replicas, spec.cpu, spec.memory, spec.balancer.policy) == (3, "250m", "1Gi", "round_robin")
    assert spec.balancer.data_plane == "haproxy"
    assert spec.model is MODEL

    cluster = forms.cluster_spec(
        replace(GOOD_CLUSTER, machine_type="n1-standard-4", min_nodes=2, max_nodes=5, spot=True,
                gpu_type="nvidia-tesla-t4", gpu_count=2, allowed_cidrs="203.0.113.0/24, 198.51.100.7/32")
    )
    pool = cluster.node_pools[0]
    assert (cluster.project, cluster.location) == ("my-proj-1", "us-central1-a")
    assert cluster.allowed_cidrs == ("203.0.113.0/24", "198.51.100.7/32")
    assert (pool.name, pool.machine_type, pool.min_nodes, pool.max_nodes, pool.spot) == ("default", "n1-standard-4", 2, 5, True)
    assert (pool.gpu_type, pool.gpu_count) == ("nvidia-tesla-t4", 2)


def test_cluster_fields_round_trip_a_one_pool_cluster():
    cluster = ClusterSpec(
        name="ml", project="my-proj-1", location="europe-west4",
        node_pools=(NodePoolSpec(name="default", machine_type="g2-standard-8", gpu_type="nvidia-l4", gpu_count=1, min_nodes=1, max_nodes=2),),
        allowed_cidrs=("198.51.100.0/24",),
    )
    assert forms.cluster_spec(forms.ClusterFields.from_spec(cluster)) == cluster


@pytest.mark.parametrize(
    "text, expected",
    [("", []), ("  ", []), ("203.0.113.0/24", ["203.0.113.0/24"]),
     ("203.0.113.0/24,198.51.100.7/32", ["203.0.113.0/24", "198.51.100.7/32"]),
     (" 203.0.113.0/24 ,\n 198.51.100.7/32 ", ["203.0.113.0/24", "198.51.100.7/32"])],
)
def test_split_cidrs(text, expected):
    assert forms.split_cidrs(text) == expected


# Each panel field, a bad value for it, and the widget the real SpecError must land next to.
DEPLOYMENT_CASES = [
    ({"replicas": 0}, "replicas"),
    ({"cpu": "lots"}, "cpu"),
    ({"memory": "-1Gi"}, "memory"),
    ({"policy": "fastest"}, "policy"),
    ({"data_plane": "nginx"}, "data_plane"),
]
CLUSTER_CASES = [
    ({"cluster_name": "ML Cluster"}, "cluster_name"),
    ({"project": ""}, "project"),
    ({"location": "mars-north1"}, "location"),
    ({"machine_type": "z9-huge-1"}, "machine_type"),
    ({"min_nodes": 4, "max_nodes": 3}, "min_nodes"),
    ({"min_nodes": 0}, "min_nodes"),  # no pool with a node: ClusterSpec.node_pools
    ({"max_nodes": 0, "min_nodes": 0}, "max_nodes"),
    ({"gpu_type": "nvidia-h100"}, "gpu_type"),
    ({"machine_type": "g2-standard-4"}, "gpu_type"),  # comes with an L4 the fields do not name
    ({"gpu_type": "nvidia-tesla-t4", "gpu_count": 3}, "gpu_count"),
    ({"gpu_count": 1}, "gpu_count"),
    ({"allowed_cidrs": "203.0.113.0/24, 10.0.0.1/8"}, "allowed_cidrs"),
    ({"allowed_cidrs": "0.0.0.0/0"}, "allowed_cidrs"),
]


@pytest.mark.parametrize("change, key", DEPLOYMENT_CASES)
def test_a_bad_deployment_field_names_its_widget(change, key):
    with pytest.raises(SpecError) as caught:
        forms.deployment_spec(MODEL, replace(forms.DeploymentFields(), **change))
    assert forms.panel_field(caught.value.field) == key


@pytest.mark.parametrize("change, key", CLUSTER_CASES)
def test_a_bad_cluster_field_names_its_widget(change, key):
    with pytest.raises(SpecError) as caught:
        forms.cluster_spec(replace(GOOD_CLUSTER, **change))
    assert forms.panel_field(caught.value.field) == key


def test_target_errors_name_their_widgets():
    from mltoolkit.local import LocalTarget
    from mltoolkit.stack.settings import StackSettings

    for make, key in ((lambda: LocalTarget(nodes=0), "nodes"),
                      (lambda: StackSettings.build("Dev"), "stack"),
                      (lambda: StackSettings.build("dev", "s3://bucket"), "backend")):
        with pytest.raises(SpecError) as caught:
            make()
        assert forms.panel_field(caught.value.field) == key


def test_fields_outside_the_panel_map_to_none():
    assert forms.panel_field("ModelSpec.path") is None
    assert forms.panel_field("DeploymentSpec.cpu_limit") is None


def test_machine_type_options_cover_the_table_with_prices():
    options = forms.machine_type_options()
    assert [value for _, value in options] == sorted(catalog.MACHINE_TYPES)
    label = dict((v, k) for k, v in options)["e2-standard-4"]
    assert label == "e2-standard-4 — 4 vCPU, 16 GB, $0.134/h"
    assert "1 × nvidia-l4" in dict((v, k) for k, v in options)["g2-standard-4"]


def test_gpu_options_start_with_none_and_counts_follow_the_table():
    options = forms.gpu_type_options()
    assert options[0] == ("none", None)
    assert [v for _, v in options[1:]] == sorted(catalog.GPU_TYPES)
    assert forms.default_gpu_count(None) == 0
    assert forms.default_gpu_count("nvidia-tesla-v100") == catalog.GPU_TYPES["nvidia-tesla-v100"].counts[0]


def test_location_options_are_regions_and_their_zones():
    options = forms.location_options()
    assert "us-central1" in options and "us-central1-f" in options
    assert all(catalog.region_of(o) is not None for o in options)
