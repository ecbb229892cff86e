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
        ({"balancer": {"colour": "red"}}, "BalancerSpec.colour", "one of the fields"),
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


def test_from_dict_rejects_unknown_keys(model):
    data = DeploymentSpec(model=model).to_dict()
    data["replica"] = 3
    with pytest.raises(SpecError, match="DeploymentSpec.replica"):
        DeploymentSpec.from_dict(data)
