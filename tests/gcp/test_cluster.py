import pytest

from mltoolkit.gcp.cluster import (
    CLOUD_PLATFORM_SCOPE,
    MASTER_CIDR,
    NODE_PROJECT_ROLES,
    GkeCluster,
    account_id,
)
from mltoolkit.gcp.network import PODS_RANGE, SERVICES_RANGE
from tests.gcp.conftest import PROJECT, make_cluster, run

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
NODE_EMAIL = f"mltoolkit-nodes@{PROJECT}.iam.gserviceaccount.com"


def test_cluster_settings(sketch_run):
    (cluster,) = sketch_run.of_type(CLUSTER)
    i = cluster.inputs
    assert i["name"] == "mltoolkit" and i["location"] == "us-central1-a" and i["project"] == PROJECT
    assert i["deletionProtection"] is False  # so that destroy works
    assert i["removeDefaultNodePool"] is True
    assert i["networkingMode"] == "VPC_NATIVE"
    assert i["ipAllocationPolicy"] == {
        "clusterSecondaryRangeName": PODS_RANGE,
        "servicesSecondaryRangeName": SERVICES_RANGE,
    }
    assert i["network"] == "mltoolkit-vpc-id" and i["subnetwork"] == "mltoolkit-nodes-id"
    assert i["workloadIdentityConfig"] == {"workloadPool": f"{PROJECT}.svc.id.goog"}
    assert i["releaseChannel"] == {"channel": "REGULAR"}
    assert "privateClusterConfig" not in i and "masterAuthorizedNetworksConfig" not in i
    assert i["nodeConfig"]["serviceAccount"] == NODE_EMAIL  # not the default compute account
    assert cluster.ignore_changes == ("nodeConfig",)


def test_private_nodes_and_authorized_networks(deployment):
    result = run(
        make_cluster(private_nodes=True, master_authorized_networks=["198.51.100.0/24", "192.0.2.0/24"]),
        deployment,
    )
    (cluster,) = result.of_type(CLUSTER)
    assert cluster.inputs["privateClusterConfig"] == {
        "enablePrivateNodes": True,
        "enablePrivateEndpoint": False,
        "masterIpv4CidrBlock": MASTER_CIDR,
    }
    assert MASTER_CIDR == "172.16.0.32/28"
    blocks = cluster.inputs["masterAuthorizedNetworksConfig"]["cidrBlocks"]
    assert [b["cidrBlock"] for b in blocks] == ["198.51.100.0/24", "192.0.2.0/24"]


def test_node_pool_autoscaling_spot_disk_and_identity(sketch_run):
    (pool,) = sketch_run.of_type(NODE_POOL)
    i = pool.inputs
    assert i["name"] == "sketch" and i["cluster"] == "mltoolkit" and i["location"] == "us-central1-a"
    assert i["autoscaling"] == {"totalMinNodeCount": 3, "totalMaxNodeCount": 3, "locationPolicy": "ANY"}
    assert i["initialNodeCount"] == 3
    assert i["management"] == {"autoRepair": True, "autoUpgrade": True}
    config = i["nodeConfig"]
    assert config["machineType"] == "n1-standard-4"
    assert config["spot"] is True
    assert (config["diskSizeGb"], config["diskType"]) == (100, "pd-standard")
    assert config["serviceAccount"] == NODE_EMAIL
    assert config["oauthScopes"] == [CLOUD_PLATFORM_SCOPE] == ["https://www.googleapis.com/auth/cloud-platform"]
    assert config["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    assert "guestAccelerators" not in config and "taints" not in config  # CPU only
    # a new min_nodes must update autoscaling in place, not replace the pool
    assert pool.ignore_changes == ("initialNodeCount",)


def test_node_service_account_holds_only_the_roles_it_needs(sketch_run):
    (account,) = [a for a in sketch_run.of_type("gcp:serviceaccount/account:Account") if a.parent_name == "cluster"]
    assert account.inputs["accountId"] == "mltoolkit-nodes"
    member = f"serviceAccount:{NODE_EMAIL}"
    project_roles = [r for r in sketch_run.of_type("gcp:projects/iAMMember:IAMMember") if r.inputs["member"] == member]
    # the role GKE recommends for a custom node service account (issue 12.11), nothing more
    assert [r.inputs["role"] for r in project_roles] == ["roles/container.defaultNodeServiceAccount"]
    assert NODE_PROJECT_ROLES == ("roles/container.defaultNodeServiceAccount",)
    (reader,) = sketch_run.of_type("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    assert reader.inputs == {
        "project": PROJECT,
        "location": "us-central1",
        "repository": "mltoolkit",
        "role": "roles/artifactregistry.reader",  # pull only, this repository only
        "member": member,
    }
    # the pools wait for the roles: nodes must be able to pull and log from their first boot
    (pool,) = sketch_run.of_type(NODE_POOL)
    assert {r.urn for r in [*project_roles, reader]} <= set(pool.dependencies)


def test_gpu_pool_gets_accelerators_and_drivers_and_no_duplicate_taint(gpu_run):
    pools = {p.inputs["name"]: p.inputs["nodeConfig"] for p in gpu_run.of_type(NODE_POOL)}
    assert pools["gpu"]["guestAccelerators"] == [
        {"type": "nvidia-tesla-t4", "count": 1, "gpuDriverInstallationConfig": {"gpuDriverVersion": "DEFAULT"}}
    ]
    assert "taints" not in pools["gpu"]  # GKE taints GPU nodes nvidia.com/gpu itself
    assert "guestAccelerators" not in pools["cpu"] and "taints" not in pools["cpu"]


def test_regional_pool_starts_with_nodes_per_zone(deployment):
    from mltoolkit.spec import NodePoolSpec

    result = run(
        make_cluster(location="us-east1", node_pools=(NodePoolSpec("p", min_nodes=4, max_nodes=9),)), deployment
    )
    (pool,) = result.of_type(NODE_POOL)
    assert pool.inputs["initialNodeCount"] == 2  # ceil(4 / 3 zones)
    assert pool.inputs["autoscaling"]["totalMinNodeCount"] == 4
    assert pool.inputs["autoscaling"]["locationPolicy"] == "BALANCED"  # on demand


def test_component_parents_the_cluster_pools_and_identity(sketch_run):
    (component,) = sketch_run.of_type(GkeCluster.TYPE)
    kinds = sorted(r.type.split(":")[-1] for r in sketch_run.children_of(component))
    assert kinds == ["Account", "Cluster", "IAMMember", "NodePool", "RepositoryIamMember"]
    assert sketch_run.component_outputs[component.urn]["cluster_name"] == "mltoolkit"


@pytest.mark.parametrize(
    "prefix, suffix, expected",
    [("mltoolkit", "nodes", "mltoolkit-nodes"), ("a" * 40, "model", "a" * 24 + "-model"), ("ab-" + "c" * 30, "nodes", "ab-" + "c" * 21 + "-nodes")],
)
def test_account_ids_fit_google_limits(prefix, suffix, expected):
    value = account_id(prefix, suffix)
    assert value == expected and 6 <= len(value) <= 30
