import re

import pytest

from mltoolkit.gcp import catalog, prices


def test_every_listed_machine_type_and_gpu_has_a_price():
    for machine in catalog.MACHINE_TYPES.values():
        for spot in (False, True):
            assert prices.machine_hourly(machine.name, machine.vcpus, machine.memory_gb, spot) > 0
    for gpu in catalog.GPU_TYPES:
        assert prices.gpu_hourly(gpu, spot=True) < prices.gpu_hourly(gpu, spot=False)
    for disk in catalog.DISK_TYPES:
        assert prices.DISK_GB_MONTH[disk] > 0


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
