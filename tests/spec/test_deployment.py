import pytest

from mltoolkit import BalancerSpec, BatchingSpec, DeploymentSpec, ModelSpec, SpecError
from mltoolkit.spec import cpu_millicores, memory_bytes


@pytest.fixture
def model(tmp_path, digits_model):
    return ModelSpec.from_object(digits_model[0], name="digits", directory=tmp_path)


def test_from_object_saves_a_loadable_model(model, digits_model):
    import joblib

    clf, X, _ = digits_model
    loaded = joblib.load(model.path)
    assert (loaded.predict(X[:5]) == clf.predict(X[:5])).all()
    assert model.n_features == 64


@pytest.mark.parametrize(
    "value, millis", [("500m", 500), ("1", 1000), ("0.5", 500), ("2.25", 2250), (2, 2000)]
)
def test_cpu_quantities(value, millis):
    assert cpu_millicores(value) == millis


@pytest.mark.parametrize(
    "value, size", [("512Mi", 512 * 2**20), ("2Gi", 2 * 2**30), ("1G", 10**9), ("1000", 1000)]
)
def test_memory_quantities(value, size):
    assert memory_bytes(value) == size


@pytest.mark.parametrize(
    "kwargs, field, fragment",
    [
        ({"replicas": 0}, "DeploymentSpec.replicas", "whole number from 1 to 256"),
        ({"replicas": 2.5}, "DeploymentSpec.replicas", "whole number"),
        ({"cpu": "5x"}, "DeploymentSpec.cpu", "CPU quantity"),
        ({"cpu": "0m"}, "DeploymentSpec.cpu", "CPU quantity"),
        ({"cpu": "-1"}, "DeploymentSpec.cpu", "CPU quantity"),
        ({"memory": "2GB"}, "DeploymentSpec.memory", "memory quantity"),
        ({"memory": "lots"}, "DeploymentSpec.memory", "memory quantity"),
        ({"cpu_limit": "100m"}, "DeploymentSpec.cpu_limit", "at least the request"),
        ({"memory_limit": "1Mi"}, "DeploymentSpec.memory_limit", "at least the request"),
        ({"max_request_bytes": 10}, "DeploymentSpec.max_request_bytes", "from 1024"),
        ({"balancer": {"policy": "fastest"}}, "BalancerSpec.policy", "round_robin"),
        ({"balancer": {"retries": 9}}, "BalancerSpec.retries", "from 0 to 3"),
        ({"balancer": {"balancers": 0}}, "BalancerSpec.balancers", "from 1 to 16"),
        ({"balancer": {"balancers": 2.0}}, "BalancerSpec.balancers", "from 1 to 16"),
        ({"balancer": {"hedge": "yes"}}, "BalancerSpec.hedge", "True or False"),
        ({"balancer": {"colour": "red"}}, "BalancerSpec.colour", "one of the fields"),
        ({"balancer": {"data_plane": "nginx"}}, "BalancerSpec.data_plane", "one of ('haproxy', 'python')"),
        ({"balancer": {"data_plane": None}}, "BalancerSpec.data_plane", "one of ('haproxy', 'python')"),
        (
            {"balancer": {"data_plane": "haproxy", "hedge": True}},
            "BalancerSpec.hedge",
            'hedging needs data_plane="python"',
        ),
        ({"model": "digits"}, "DeploymentSpec.model", "a ModelSpec"),
    ],
)
def test_invalid_deployment_fields_are_named(model, kwargs, field, fragment):
    kwargs = {"model": model, **kwargs}
    with pytest.raises(SpecError) as info:
        DeploymentSpec(**kwargs)
    assert info.value.field == field
    message = str(info.value)
    assert message.startswith(field + ":")
    assert fragment in message


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"name": "Digits_Model", "image": "img"}, "ModelSpec.name"),
        ({"name": "-x", "image": "img"}, "ModelSpec.name"),
        ({"name": "digits"}, "ModelSpec.path"),
        ({"name": "digits", "path": "/nonexistent/model.joblib"}, "ModelSpec.path"),
        ({"name": "digits", "path": "/etc/hostname"}, "ModelSpec.path"),
        ({"name": "digits", "image": "has space"}, "ModelSpec.image"),
        ({"name": "digits", "image": "img", "port": 70000}, "ModelSpec.port"),
        ({"name": "digits", "image": "img", "batching": {"max_batch_size": 0}}, "BatchingSpec.max_batch_size"),
    ],
)
def test_invalid_model_fields_are_named(kwargs, field):
    with pytest.raises(SpecError) as info:
        ModelSpec(**kwargs)
    assert info.value.field == field


def test_from_object_rejects_objects_without_predict(tmp_path):
    with pytest.raises(SpecError, match="ModelSpec.model: 'object' .* predict"):
        ModelSpec.from_object(object(), name="x", directory=tmp_path)


def test_round_trip_through_plain_dicts(model):
    spec = DeploymentSpec(
        model=model,
        replicas=3,
        cpu="1",
        memory="2Gi",
        memory_limit="3Gi",
        balancer=BalancerSpec(policy="round_robin", retries=0),
    )
    data = spec.to_dict()
    assert data["model"]["batching"] == {"enabled": True, "max_batch_size": 64, "max_wait_ms": 0.0}
    assert isinstance(data["balancer"], dict)
    again = DeploymentSpec.from_dict(data)
    assert again == spec
    assert again.model.batching == BatchingSpec()


def test_data_plane_defaults_to_haproxy_and_takes_each_allowed_name(model):
    from mltoolkit.spec.deployment import DATA_PLANES

    assert BalancerSpec().data_plane == "haproxy"  # issue 10: HAProxy forwards, our policy controls
    assert DATA_PLANES == ("haproxy", "python")
    for name in DATA_PLANES:
        spec = DeploymentSpec(model=model, balancer={"data_plane": name})
        assert spec.balancer.data_plane == name
        assert DeploymentSpec.from_dict(spec.to_dict()).balancer.data_plane == name
    assert BalancerSpec(data_plane="python", hedge=True).hedge  # hedging on the python data plane


def test_from_dict_rejects_unknown_keys(model):
    data = DeploymentSpec(model=model).to_dict()
    data["replica"] = 3
    with pytest.raises(SpecError, match="DeploymentSpec.replica"):
        DeploymentSpec.from_dict(data)


def test_from_object_records_the_hash_and_library_versions(model):
    import hashlib
    from importlib.metadata import version
    from pathlib import Path

    content = Path(model.path).read_bytes()
    assert model.sha256 == hashlib.sha256(content).hexdigest()
    assert Path(model.path).name == f"digits-{model.sha256[:16]}.joblib"
    assert model.library_versions == {
        name: version(name) for name in ("joblib", "numpy", "scikit-learn")
    }


def test_from_object_writes_the_model_for_the_owner_only(model):
    from pathlib import Path

    assert Path(model.path).stat().st_mode & 0o777 == 0o600


def test_from_object_replaces_a_same_named_file_with_other_content(tmp_path, digits_model):
    """A file planted under the content-hash name used to be reused (and served) unchecked."""
    import joblib
    from pathlib import Path

    clf, X, _ = digits_model
    first = ModelSpec.from_object(clf, name="digits", directory=tmp_path)
    Path(first.path).write_bytes(b"planted")
    second = ModelSpec.from_object(clf, name="digits", directory=tmp_path)
    assert second.path == first.path
    assert (joblib.load(second.path).predict(X[:3]) == clf.predict(X[:3])).all()


def test_the_model_package_of_a_third_party_class_is_recorded():
    import pandas as pd
    from importlib.metadata import version

    from mltoolkit.spec.libraries import library_versions

    assert library_versions(pd.Series([1.0]))["pandas"] == version("pandas")
    assert "pandas" not in library_versions(object())


def test_a_spec_saved_before_versions_were_recorded_still_loads(model):
    """An older record has neither sha256 nor library_versions: the hash is taken from the file
    now, and no versions are checked."""
    data = DeploymentSpec(model=model).to_dict()
    assert data["model"]["library_versions"] == model.library_versions
    for key in ("sha256", "library_versions"):
        del data["model"][key]
    old = DeploymentSpec.from_dict(data)
    assert old.model.library_versions == {}
    assert old.model.sha256 == model.sha256


@pytest.mark.parametrize(
    "field, value",
    [("sha256", "abc"), ("sha256", "A" * 64), ("library_versions", {"numpy": 2}),
     ("library_versions", ["numpy"]), ("library_versions", {"a=b": "1"})],
)  # fmt: skip
def test_bad_hash_or_versions_are_named(model, field, value):
    with pytest.raises(SpecError, match=f"ModelSpec.{field}"):
        ModelSpec(name="digits", path=model.path, **{field: value})
