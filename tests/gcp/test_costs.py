import math
import os

import pytest

from mltoolkit.gcp import costs, prices
from mltoolkit.spec import NodePoolSpec
from tests.gcp.conftest import make_cluster, run

HOURS = prices.HOURS_PER_MONTH


def by_item(items):
    return {(i.resource, i.item): i for i in items}


def test_original_sketch_line_items_against_the_price_table(sketch_run, model_file):
    items = by_item(costs.line_items(sketch_run.resources))
    n1 = prices.MACHINE_FAMILY_RATES["n1"]
    # n1-standard-4 = 4 vCPUs + 15 GB at the spot rates, 3 nodes
    vm = items[("mltoolkit-pool-sketch", "n1-standard-4 VM (spot)")]
    assert vm.quantity == 3
    assert vm.unit_price_per_hour == pytest.approx(4 * n1.spot_vcpu + 15 * n1.spot_memory_gb)
    # 3 boot disks of 100 GB pd-standard, priced per GB-month
    disk = items[("mltoolkit-pool-sketch", "pd-standard boot disk")]
    assert disk.quantity == 300
    assert disk.usd_per_hour == pytest.approx(300 * prices.DISK_GB_MONTH["pd-standard"] / HOURS)
    # public nodes: one external IPv4 each, at the spot-VM rate
    assert items[("mltoolkit-pool-sketch", "node external IPv4 (spot)")].usd_per_hour == pytest.approx(
        3 * prices.EXTERNAL_IPV4_SPOT_HOURLY
    )
    assert items[("mltoolkit-cluster", "GKE cluster management fee")].usd_per_hour == prices.GKE_CLUSTER_HOURLY
    assert items[("digits-service", "L4 load balancer forwarding rule")].usd_per_hour == prices.FORWARDING_RULE_HOURLY
    image = items[("digits-deployment", "serving image in Artifact Registry (size estimated)")]
    assert image.usd_per_hour == pytest.approx(prices.SERVING_IMAGE_GB * prices.ARTIFACT_REGISTRY_GB_MONTH / HOURS)
    model = items[("mltoolkit-model-digits", "model file in Cloud Storage")]
    assert model.quantity == pytest.approx(os.path.getsize(model_file) / 1e9)
    assert len(items) == 7

    expected = (
        prices.GKE_CLUSTER_HOURLY
        + 3 * (4 * n1.spot_vcpu + 15 * n1.spot_memory_gb)
        + 300 * prices.DISK_GB_MONTH["pd-standard"] / HOURS
        + 3 * prices.EXTERNAL_IPV4_SPOT_HOURLY
        + prices.FORWARDING_RULE_HOURLY
        + prices.SERVING_IMAGE_GB * prices.ARTIFACT_REGISTRY_GB_MONTH / HOURS
        + os.path.getsize(model_file) / 1e9 * prices.CLOUD_STORAGE_STANDARD_GB_MONTH / HOURS
    )
    assert costs.total_per_hour(costs.line_items(sketch_run.resources)) == pytest.approx(expected)


def test_gpu_pool_priced_at_min_and_max_nodes(gpu_run):
    at_min = by_item(costs.line_items(gpu_run.resources, scale="min"))
    at_max = by_item(costs.line_items(gpu_run.resources, scale="max"))
    gpu = ("mltoolkit-pool-gpu", "nvidia-tesla-t4 GPU (spot)")
    assert at_min[gpu].quantity == 0  # min_nodes=0: the GPU pool idles at nothing
    assert at_max[gpu].quantity == 2
    assert at_max[gpu].unit_price_per_hour == prices.GPU_HOURLY["nvidia-tesla-t4"][1]
    cpu = ("mltoolkit-pool-cpu", "e2-standard-4 VM (on demand)")
    e2 = prices.MACHINE_FAMILY_RATES["e2"]
    assert (at_min[cpu].quantity, at_max[cpu].quantity) == (1, 3)
    assert at_min[cpu].unit_price_per_hour == pytest.approx(4 * e2.vcpu + 16 * e2.memory_gb)
    assert at_min[("mltoolkit-pool-cpu", "node external IPv4 (on demand)")].unit_price_per_hour == prices.EXTERNAL_IPV4_HOURLY


def test_private_nodes_pay_nat_instead_of_addresses(deployment):
    items = by_item(costs.line_items(run(make_cluster(private_nodes=True), deployment).resources))
    assert ("mltoolkit-pool-sketch", "Cloud NAT gateway") in items
    assert items[("mltoolkit-pool-sketch", "Cloud NAT gateway")].usd_per_hour == pytest.approx(3 * prices.CLOUD_NAT_VM_HOURLY)
    assert not any("external IPv4" in item for _, item in items)


def test_l7_pays_a_forwarding_rule_and_cloud_armor(deployment):
    items = by_item(costs.line_items(run(make_cluster(load_balancer="l7"), deployment).resources))
    assert ("digits-ingress", "L7 load balancer forwarding rule") in items
    assert not any(item == "L4 load balancer forwarding rule" for _, item in items)
    assert items[("mltoolkit-digits-armor", "Cloud Armor policy")].usd_per_hour == pytest.approx(5.0 / HOURS)
    assert items[("mltoolkit-digits-armor", "Cloud Armor rules")].quantity == 2  # allow + default deny


def test_unexposed_endpoint_has_no_load_balancer_cost(deployment):
    items = costs.line_items(run(make_cluster(allowed_cidrs=()), deployment).resources)
    assert not any("forwarding rule" in i.item for i in items)


def test_unlisted_machine_type_is_unpriced_not_guessed(deployment):
    pool = NodePoolSpec("new", machine_type="c4-standard-8", allow_unlisted_machine_type=True)
    items = costs.line_items(run(make_cluster(node_pools=(pool,)), deployment).resources)
    (vm,) = [i for i in items if i.item.startswith("c4-standard-8")]
    assert math.isnan(vm.unit_price_per_hour)
    assert costs.unpriced(items) == ["c4-standard-8 VM (on demand)"]
    assert not math.isnan(costs.total_per_hour(items))


def test_cost_frame_columns(sketch_run):
    frame = costs.cost_frame(costs.line_items(sketch_run.resources))
    assert list(frame.columns) == costs.COLUMNS
    assert frame["usd_per_hour"].sum() == pytest.approx(costs.total_per_hour(costs.line_items(sketch_run.resources)))


# -- nodes GKE will run (issue 12.9) -------------------------------------------------------------


def _vm(items, pool):
    return next(i for i in items if i.resource == pool and i.unit == "node")


def test_a_regional_pool_is_counted_in_each_of_its_zones(deployment):
    # min_nodes=1 over a region: GKE starts ceil(1/3) = 1 node in each of its 3 zones
    pool = NodePoolSpec("cpu", machine_type="e2-standard-4", min_nodes=1, max_nodes=6)
    regional = run(make_cluster(location="us-central1", node_pools=(pool,)), deployment)
    assert regional.named("mltoolkit-pool-cpu").inputs["initialNodeCount"] == 1
    assert _vm(costs.line_items(regional.resources), "mltoolkit-pool-cpu").quantity == 3
    zonal = run(make_cluster(location="us-central1-a", node_pools=(pool,)), deployment)
    assert _vm(costs.line_items(zonal.resources), "mltoolkit-pool-cpu").quantity == 1


def test_nodes_are_counted_for_what_the_replicas_request(model):
    from tests.gcp.conftest import make_deployment

    pool = NodePoolSpec("cpu", machine_type="e2-standard-4", min_nodes=1, max_nodes=5)
    cluster = make_cluster(node_pools=(pool,))
    # e2-standard-4: 4 vCPUs, 16 GB; 90 % usable -> 3 replicas of 1 CPU per node
    for replicas, nodes in ((3, 1), (4, 2), (7, 3)):
        result = run(cluster, make_deployment(model, replicas=replicas, cpu="1", memory="1Gi"))
        assert _vm(costs.line_items(result.resources), "mltoolkit-pool-cpu").quantity == nodes, replicas
    # memory can be what binds: 16 GB x 0.9 = 14.4 GB holds two 6 GiB replicas
    result = run(cluster, make_deployment(model, replicas=4, cpu="500m", memory="6Gi"))
    assert _vm(costs.line_items(result.resources), "mltoolkit-pool-cpu").quantity == 2
    # never beyond the pool's maximum: the rest would stay pending, not billed
    result = run(cluster, make_deployment(model, replicas=30, cpu="1", memory="1Gi"))
    assert _vm(costs.line_items(result.resources), "mltoolkit-pool-cpu").quantity == 5


def test_cpu_replicas_are_not_counted_on_a_gpu_pool(gpu_run):
    items = costs.line_items(gpu_run.resources)
    assert _vm(items, "mltoolkit-pool-gpu").quantity == 0  # min_nodes=0; no pod asks for a GPU
    assert _vm(items, "mltoolkit-pool-cpu").quantity == 1  # 3 x 1 CPU fit one e2-standard-4
