import json
import sys

import pytest

from mltoolkit import SpecError
from mltoolkit.spec import ClusterSpec, ModelSpec, NodePoolSpec, check_labels, original_sketch_deployment


def cluster(**overrides):
    values = {"name": "ml", "project": "my-project", "location": "us-central1-a"}
    values.update(overrides)
    return ClusterSpec(**values)


def test_original_sketch_is_three_spot_n1_standard_4_with_100gb_disks():
    spec = ClusterSpec.original_sketch(project="my-project")
    (pool,) = spec.node_pools
    assert (pool.machine_type, pool.min_nodes, pool.max_nodes) == ("n1-standard-4", 3, 3)
    assert pool.spot is True
    assert pool.disk_size_gb == 100
    assert pool.gpu_type is None and pool.gpu_count == 0
    assert spec.allowed_cidrs == () and not spec.exposed  # nobody reaches it until told


def test_original_sketch_deployment_is_three_replicas(tmp_path):
    model = ModelSpec.from_image("registry.example/model:1", name="digits")
    deployment = original_sketch_deployment(model)
    assert deployment.replicas == 3
    assert deployment.model is model


def test_spec_round_trips_through_json():
    spec = cluster(
        node_pools=(
            NodePoolSpec("cpu", min_nodes=1, max_nodes=4),
            NodePoolSpec("gpu", machine_type="n1-standard-8", gpu_type="nvidia-tesla-t4", min_nodes=0),
        ),
        master_authorized_networks=["198.51.100.0/24"],
        allowed_cidrs=["203.0.113.0/24", "2001:db8::/32"],
        load_balancer="l7",
    )
    data = json.loads(json.dumps(spec.to_dict()))
    assert ClusterSpec.from_dict(data) == spec
    assert data["node_pools"][1]["gpu_count"] == 1  # defaulted from the GPU type


def test_lists_become_tuples_and_cidrs_canonical():
    spec = cluster(allowed_cidrs=["198.51.100.7"], master_authorized_networks=["10.0.0.0/8"])
    assert spec.allowed_cidrs == ("198.51.100.7/32",)
    assert spec.master_authorized_networks == ("10.0.0.0/8",)


def test_source_ranges_default_to_nobody_and_public_must_be_asked_for():
    assert cluster().source_ranges == ()
    assert cluster(allowed_cidrs=["203.0.113.0/24"]).source_ranges == ("203.0.113.0/24",)
    assert cluster(allow_public=True).source_ranges == ("0.0.0.0/0",)
    assert cluster(allowed_cidrs=["0.0.0.0/0"], allow_public=True).exposed


def test_regional_location_spreads_pools_over_three_zones():
    regional = cluster(location="us-central1", node_pools=(NodePoolSpec("p", min_nodes=4, max_nodes=6),))
    assert regional.is_regional and regional.region == "us-central1"
    assert regional.initial_nodes_per_zone(regional.node_pools[0]) == 2  # ceil(4 / 3)
    zonal = cluster(node_pools=(NodePoolSpec("p", min_nodes=4, max_nodes=6),))
    assert not zonal.is_regional and zonal.region == "us-central1"
    assert zonal.initial_nodes_per_zone(zonal.node_pools[0]) == 4


def test_unlisted_machine_type_needs_the_override():
    with pytest.raises(SpecError) as info:
        NodePoolSpec("p", machine_type="c4-standard-8")
    assert "allow_unlisted_machine_type=True" in str(info.value)
    pool = NodePoolSpec("p", machine_type="c4-standard-8", allow_unlisted_machine_type=True)
    assert pool.machine_type == "c4-standard-8"


def test_g2_machine_comes_with_its_l4():
    pool = NodePoolSpec("l4", machine_type="g2-standard-8", gpu_type="nvidia-l4")
    assert pool.gpu_count == 1 and pool.has_gpu


@pytest.mark.parametrize(
    "kwargs, field, fragment",
    [
        ({"min_nodes": 4, "max_nodes": 2}, "NodePoolSpec[p].min_nodes", "at most max_nodes (2)"),
        ({"max_nodes": 0}, "NodePoolSpec[p].max_nodes", "from 1 to 1000"),
        ({"machine_type": "n1-mega-99"}, "NodePoolSpec[p].machine_type", "n1-standard-4"),
        (
            {"machine_type": "not a machine", "allow_unlisted_machine_type": True},
            "NodePoolSpec[p].machine_type",
            "a machine type name",
        ),
        ({"disk_type": "hdd"}, "NodePoolSpec[p].disk_type", "pd-balanced"),
        ({"disk_size_gb": 5}, "NodePoolSpec[p].disk_size_gb", "from 10 to 65536"),
        ({"spot": "yes"}, "NodePoolSpec[p].spot", "True or False"),
        ({"gpu_type": "nvidia-h100"}, "NodePoolSpec[p].gpu_type", "nvidia-tesla-t4"),
        (
            {"machine_type": "e2-standard-4", "gpu_type": "nvidia-tesla-t4"},
            "NodePoolSpec[p].gpu_type",
            "needs machine type n1-*",
        ),
        (
            {"machine_type": "n1-standard-4", "gpu_type": "nvidia-tesla-t4", "gpu_count": 3},
            "NodePoolSpec[p].gpu_count",
            "one of (1, 2, 4)",
        ),
        ({"gpu_count": 2}, "NodePoolSpec[p].gpu_count", "0 when gpu_type is not set"),
        ({"machine_type": "g2-standard-4"}, "NodePoolSpec[p].gpu_type", "'nvidia-l4'"),
    ],
)
def test_invalid_node_pools_are_named(kwargs, field, fragment):
    with pytest.raises(SpecError) as info:
        NodePoolSpec(name="p", **kwargs)
    assert info.value.field == field
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "kwargs, field, fragment",
    [
        ({"name": "My_Cluster"}, "ClusterSpec.name", "lowercase letters"),
        ({"name": "x" * 41}, "ClusterSpec.name", "1-40 characters"),
        ({"project": "ab"}, "ClusterSpec.project", "6-30 lowercase"),
        ({"location": "mars-north1"}, "ClusterSpec.location", "us-central1"),
        ({"location": "us-central1-z"}, "ClusterSpec.location", "zone letter"),
        ({"release_channel": "nightly"}, "ClusterSpec.release_channel", "REGULAR"),
        ({"load_balancer": "l3"}, "ClusterSpec.load_balancer", "('l4', 'l7')"),
        ({"allowed_cidrs": ["10.0.0.1/24"]}, "ClusterSpec.allowed_cidrs[0]", "no host bits set"),
        ({"allowed_cidrs": ["300.1.1.0/24"]}, "ClusterSpec.allowed_cidrs[0]", "CIDR range"),
        ({"allowed_cidrs": ["office"]}, "ClusterSpec.allowed_cidrs[0]", "CIDR range"),
        ({"allowed_cidrs": "10.0.0.0/8"}, "ClusterSpec.allowed_cidrs", "a list of CIDR ranges"),
        ({"allowed_cidrs": ["0.0.0.0/0"]}, "ClusterSpec.allowed_cidrs[0]", "allow_public=True"),
        ({"allowed_cidrs": ["::/0"]}, "ClusterSpec.allowed_cidrs[0]", "allow_public=True"),
        ({"master_authorized_networks": ["10.0.0.0/33"]}, "ClusterSpec.master_authorized_networks[0]", "IPv4"),
        ({"master_authorized_networks": ["2001:db8::/32"]}, "ClusterSpec.master_authorized_networks[0]", "IPv4"),
        ({"private_nodes": 1}, "ClusterSpec.private_nodes", "True or False"),
        ({"managed_prometheus": "on"}, "ClusterSpec.managed_prometheus", "True or False"),
        ({"node_pools": ()}, "ClusterSpec.node_pools", "at least one"),
        ({"node_pools": (NodePoolSpec("a"), NodePoolSpec("a"))}, "ClusterSpec.node_pools", "distinct names"),
        ({"node_pools": (NodePoolSpec("a", min_nodes=0),)}, "ClusterSpec.node_pools", "min_nodes >= 1"),
        ({"node_pools": ("a",)}, "ClusterSpec.node_pools[0]", "a NodePoolSpec"),
        ({"node_pools": [{"name": "a", "colour": "red"}]}, "ClusterSpec.node_pools[0].colour", "one of the fields"),
        ({"serving_image": "has space"}, "ClusterSpec.serving_image", "image reference"),
        (
            {
                "location": "europe-west1-b",
                "node_pools": (NodePoolSpec("gpu", machine_type="n1-standard-4", gpu_type="nvidia-tesla-v100"),),
            },
            "NodePoolSpec[gpu].gpu_type",
            "a GPU offered in europe-west1",
        ),
    ],
)
def test_invalid_clusters_are_named(kwargs, field, fragment):
    with pytest.raises(SpecError) as info:
        cluster(**kwargs)
    assert info.value.field == field
    message = str(info.value)
    assert message.startswith(field + ":")
    assert fragment in message


def test_gpu_in_a_region_that_offers_it_is_accepted():
    spec = cluster(
        location="europe-west4-a",
        node_pools=(NodePoolSpec("cpu"), NodePoolSpec("gpu", machine_type="n1-standard-4", gpu_type="nvidia-tesla-v100")),
    )
    assert spec.has_gpu


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(SpecError) as info:
        ClusterSpec.from_dict({"name": "ml", "project": "my-project", "location": "us-east1", "zone": "b"})
    assert info.value.field == "ClusterSpec.zone"


@pytest.mark.parametrize(
    "labels, field",
    [
        ({"Owner": "alice"}, "labels.Owner"),
        ({"owner": "Alice"}, "labels.owner"),
        ({"owner": "-alice"}, "labels.owner"),
        ({"expires": "2025-01-31T15:30Z"}, "labels.expires"),
        ({"x" * 64: "v"}, "labels." + "x" * 64),
        ({"owner": 7}, "labels.owner"),
    ],
)
def test_invalid_labels_are_named(labels, field):
    with pytest.raises(SpecError) as info:
        check_labels(labels)
    assert info.value.field == field


def test_valid_labels_pass():
    labels = {"owner": "alice", "expires": "20250131t1530z", "stack": "dev", "empty": ""}
    assert check_labels(labels) == labels


def test_spec_does_not_import_pulumi():
    # the spec layer talks to nothing: reading the catalogue must not load the Pulumi SDK
    import subprocess

    code = "import mltoolkit.spec, sys; print('pulumi' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
