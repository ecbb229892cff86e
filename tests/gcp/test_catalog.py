from mltoolkit.gcp import catalog


def test_region_of_regions_and_zones():
    assert catalog.region_of("us-central1") == "us-central1"
    assert catalog.region_of("us-central1-f") == "us-central1"
    assert catalog.region_of("us-central1-d") is None  # no such zone in the table
    assert catalog.region_of("moon-base1") is None


def test_every_gpu_region_is_a_known_region():
    for gpu in catalog.GPU_TYPES.values():
        assert gpu.regions <= set(catalog.REGIONS), gpu.name


def test_machine_shapes():
    n1 = catalog.MACHINE_TYPES["n1-standard-4"]
    assert (n1.family, n1.vcpus, n1.memory_gb) == ("n1", 4.0, 15.0)
    assert catalog.MACHINE_TYPES["g2-standard-8"].bundled_gpu == ("nvidia-l4", 1)
    assert catalog.machine_family("c4-standard-8") == "c4"


def test_bundled_gpus_are_gpus_of_the_table_for_their_family():
    for machine in catalog.MACHINE_TYPES.values():
        if machine.bundled_gpu:
            gpu = catalog.GPU_TYPES[machine.bundled_gpu[0]]
            assert machine.family in gpu.families
