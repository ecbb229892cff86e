import re

import pytest

from mltoolkit.gcp import catalog, prices


# Google's spot VMs and GPUs are 60-91 % below on-demand: spot is 9-40 % of the on-demand price.
SPOT_SHARE = (0.09, 0.40 + 1e-9)


def test_every_listed_machine_type_is_priced_by_its_family_rates_and_spot_is_cheaper():
    for machine in catalog.MACHINE_TYPES.values():
        on_demand = prices.machine_hourly(machine.name, machine.vcpus, machine.memory_gb, spot=False)
        spot = prices.machine_hourly(machine.name, machine.vcpus, machine.memory_gb, spot=True)
        if machine.name in prices.MACHINE_HOURLY_OVERRIDES:
            assert (on_demand, spot) == prices.MACHINE_HOURLY_OVERRIDES[machine.name]
        else:
            rates = prices.MACHINE_FAMILY_RATES[machine.family]
            assert on_demand == pytest.approx(machine.vcpus * rates.vcpu + machine.memory_gb * rates.memory_gb)
            assert spot == pytest.approx(machine.vcpus * rates.spot_vcpu + machine.memory_gb * rates.spot_memory_gb)
        assert SPOT_SHARE[0] * on_demand <= spot <= SPOT_SHARE[1] * on_demand, machine.name


@pytest.mark.parametrize(
    "machine_type, usd_per_hour",
    [
        # Google's list prices for us-central1 (2024-07), one per family: a wrong rate, or vCPUs
        # and memory swapped, moves them
        ("e2-medium", 0.033503),
        ("e2-standard-4", 0.134012),  # 4 × 0.021811 + 16 × 0.002923
        ("n1-standard-4", 0.189999),  # 4 × 0.031611 + 15 × 0.004237
        ("n2-standard-8", 0.388472),  # 8 × 0.031611 + 32 × 0.004237
        ("n2d-standard-2", 0.084492),  # 2 × 0.027502 + 8 × 0.003686
        ("g2-standard-4", 0.146960),  # 4 × 0.02502 + 16 × 0.00293, its L4 priced apart
    ],
)
def test_on_demand_list_prices(machine_type, usd_per_hour):
    machine = catalog.MACHINE_TYPES[machine_type]
    assert prices.machine_hourly(machine.name, machine.vcpus, machine.memory_gb, spot=False) == pytest.approx(
        usd_per_hour, abs=1e-6
    )


def test_machine_price_doubles_with_the_machine():
    # within a shape (e2-standard, n1-highmem, ...), twice the vCPUs and memory cost twice as much
    pairs = 0
    for machine in catalog.MACHINE_TYPES.values():
        shape, _, size = machine.name.rpartition("-")
        double = catalog.MACHINE_TYPES.get(f"{shape}-{2 * int(size)}") if size.isdigit() else None
        if double is None or machine.bundled_gpu:
            continue
        pairs += 1
        for spot in (False, True):
            assert prices.machine_hourly(double.name, double.vcpus, double.memory_gb, spot) == pytest.approx(
                2 * prices.machine_hourly(machine.name, machine.vcpus, machine.memory_gb, spot)
            )
    assert pairs >= 30


def test_every_gpu_and_disk_has_its_price():
    assert set(prices.GPU_HOURLY) == set(catalog.GPU_TYPES)
    assert prices.gpu_hourly("nvidia-tesla-t4", spot=False) == 0.35
    assert prices.gpu_hourly("nvidia-tesla-t4", spot=True) == 0.11
    for gpu in catalog.GPU_TYPES:
        on_demand = prices.gpu_hourly(gpu, spot=False)
        assert SPOT_SHARE[0] * on_demand <= prices.gpu_hourly(gpu, spot=True) <= SPOT_SHARE[1] * on_demand, gpu
    assert set(prices.DISK_GB_MONTH) == set(catalog.DISK_TYPES)
    # standard < balanced < SSD, at $0.04, $0.10 and $0.17 per GB-month
    assert [prices.DISK_GB_MONTH[d] for d in ("pd-standard", "pd-balanced", "pd-ssd")] == [0.04, 0.10, 0.17]
    assert prices.monthly_to_hourly(73.0) == pytest.approx(0.1)


def test_machine_price_is_vcpus_and_memory_at_the_family_rates():
    # n1-standard-4: 4 vCPUs and 15 GB
    rates = prices.MACHINE_FAMILY_RATES["n1"]
    assert prices.machine_hourly("n1-standard-4", 4, 15, spot=False) == pytest.approx(4 * rates.vcpu + 15 * rates.memory_gb)
    assert prices.machine_hourly("n1-standard-4", 4, 15, spot=False) == pytest.approx(0.19, abs=0.001)
    assert prices.machine_hourly("n1-standard-4", 4, 15, spot=True) == pytest.approx(
        4 * rates.spot_vcpu + 15 * rates.spot_memory_gb
    )


def test_unknown_prices_raise():
    with pytest.raises(prices.UnknownPrice):
        prices.machine_hourly("c4-standard-8", 8, 30, spot=False)
    with pytest.raises(prices.UnknownPrice):
        prices.gpu_hourly("nvidia-h100-80gb", spot=False)


def test_table_is_dated_and_names_its_sources():
    assert re.fullmatch(r"\d{4}-\d{2}", prices.PRICES_AS_OF)
    assert prices.HOURS_PER_MONTH == 730
    doc = prices.__doc__
    for page in ("vm-instance-pricing", "gpus-pricing", "disks-image-pricing", "network-pricing", "artifact-registry/pricing"):
        assert page in doc
    assert "NOT re-checked" in doc
