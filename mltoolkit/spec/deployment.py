"""What a user wants deployed: the model, its replicas and their resources, the balancer.

Every spec validates itself on construction and raises one ``SpecError`` naming the field, the
value and what is allowed, so nothing starts from a bad description. Specs round-trip through
plain dicts (``to_dict`` / ``from_dict``) for storage and for widgets.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from mltoolkit.balancer.config import DATA_PLANES, DEFAULT_DATA_PLANE, check_data_plane  # noqa: F401 (DATA_PLANES: re-exported)
from mltoolkit.balancer.policies import DEFAULT_POLICY
from mltoolkit.errors import SpecError
from mltoolkit.spec.libraries import check_library_versions_field, library_versions
from mltoolkit.spec.quantities import cpu_millicores, memory_bytes

# A model name becomes the Kubernetes Service's name (a DNS-1035 label: a letter first), label
# values, and the prefix of names derived from it ("<name>-server", "<cluster>-<name>-armor"),
# so it is shorter than the 63 characters a label allows.
_DNS_LABEL = re.compile(r"^[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?$")
DNS_LABEL_ALLOWED = (
    "1-40 characters of lowercase letters, digits and '-', starting with a letter and ending "
    "with a letter or digit (it names a Kubernetes Service: a DNS-1035 label, with room for "
    "the suffixes of the names derived from it)"
)
MODEL_SUFFIXES = (".joblib", ".pkl", ".pickle")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's content, as 64 lowercase hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_private(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically, readable by the owner only (0600)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(payload)
    os.replace(tmp, path)


def default_model_dir() -> Path:
    """Where ``ModelSpec.from_object`` saves models unless told otherwise."""
    return Path(os.environ.get("MLTOOLKIT_HOME", Path.home() / ".mltoolkit")) / "models"


def check_dns_label(field_name: str, value: Any) -> None:
    if not isinstance(value, str) or not _DNS_LABEL.match(value):
        raise SpecError(field_name, value, DNS_LABEL_ALLOWED)


def _check_int(field_name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(field_name, value, f"a whole number from {low} to {high}")


def _check_number(field_name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise SpecError(field_name, value, f"a number from {low} to {high}")


@dataclass(frozen=True)
class BatchingSpec:
    """Adaptive batching in the model server: concurrent requests merged into one predict call.

    ``max_wait_ms=0`` (the default, chosen by measurement) merges whatever arrived in the same
    event-loop pass; under load (recent calls merged 2+ requests) it waits at most one predict
    call's time for the usual number of requests, and at idle it never holds a lone request. A
    positive wait trades latency for fuller batches (see mltoolkit/serving/batching.py).
    """

    enabled: bool = True
    max_batch_size: int = 64
    max_wait_ms: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise SpecError("BatchingSpec.enabled", self.enabled, "True or False")
        _check_int("BatchingSpec.max_batch_size", self.max_batch_size, 1, 4096)
        _check_number("BatchingSpec.max_wait_ms", self.max_wait_ms, 0, 1000)


@dataclass(frozen=True)
class ModelSpec:
    """The model to serve: a saved model file (``path``) or, for the cloud, a container ``image``.

    Build one with ``from_object`` (any fitted estimator or picklable object with ``predict``),
    ``from_file`` or ``from_image``.

    ``sha256`` is the content hash of the model file (computed from the file when not given);
    every replica checks the file against it before unpickling, so a file swapped afterwards is
    refused rather than run. ``library_versions`` (``{"numpy": "2.1.0", ...}``) are the versions
    of the environment that pickled the model (``from_object`` records joblib, numpy,
    scikit-learn and the model's own package); a replica whose installed versions differ refuses
    to start. Empty (a spec saved before versions were recorded, or ``from_file``) checks nothing.
    """

    name: str
    path: str | None = None
    image: str | None = None
    port: int = 8080
    n_features: int | None = None
    batching: BatchingSpec = field(default_factory=BatchingSpec)
    sha256: str | None = None
    library_versions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_dns_label("ModelSpec.name", self.name)
        if (self.path is None) == (self.image is None):
            raise SpecError(
                "ModelSpec.path", self.path, "exactly one of a model file path or an image"
            )
        if self.path is not None:
            if not isinstance(self.path, str) or not self.path.endswith(MODEL_SUFFIXES):
                raise SpecError(
                    "ModelSpec.path", self.path, f"a file path ending in one of {MODEL_SUFFIXES}"
                )
            if not Path(self.path).is_file():
                raise SpecError("ModelSpec.path", self.path, "an existing model file")
            if self.sha256 is None:
                object.__setattr__(self, "sha256", file_sha256(self.path))
        if self.sha256 is not None and (
            not isinstance(self.sha256, str) or not _SHA256.match(self.sha256)
        ):
            raise SpecError("ModelSpec.sha256", self.sha256, "64 lowercase hex digits (SHA-256)")
        object.__setattr__(
            self,
            "library_versions",
            check_library_versions_field("ModelSpec.library_versions", self.library_versions),
        )
        if self.image is not None and (
            not isinstance(self.image, str) or not self.image or any(c.isspace() for c in self.image)
        ):
            raise SpecError("ModelSpec.image", self.image, "a container image reference")
        _check_int("ModelSpec.port", self.port, 1, 65535)
        if self.n_features is not None:
            _check_int("ModelSpec.n_features", self.n_features, 1, 10_000_000)
        if isinstance(self.batching, Mapping):
            object.__setattr__(self, "batching", BatchingSpec(**self.batching))
        if not isinstance(self.batching, BatchingSpec):
            raise SpecError("ModelSpec.batching", self.batching, "a BatchingSpec")

    @classmethod
    def from_object(
        cls, model: Any, name: str, directory: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> ModelSpec:
        """Save a fitted estimator (or any picklable object with ``predict``) and describe it.

        The file is named by its content hash (``<name>-<16 hex digits>.joblib``) and written
        readable by the owner only; an existing file of that name is reused only if its content
        has that hash (otherwise it is replaced). The spec records the full hash and the library
        versions of this environment (see the class docstring)."""
        check_dns_label("ModelSpec.name", name)
        if not callable(getattr(model, "predict", None)):
            raise SpecError("ModelSpec.model", type(model).__name__, "an object with a predict method")
        # one serialization serves as the content hash and as the file (joblib.load reads pickles)
        payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        digest = hashlib.sha256(payload).hexdigest()
        target_dir = Path(directory) if directory is not None else default_model_dir()
        target_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory is None:
            target_dir.chmod(0o700)  # our own folder: owner only, even if made before
        path = target_dir / f"{name}-{digest[:16]}.joblib"
        if not (path.is_file() and not path.is_symlink() and file_sha256(path) == digest):
            _write_private(path, payload)
        n_features = getattr(model, "n_features_in_", None)
        kwargs.setdefault("n_features", int(n_features) if n_features is not None else None)
        kwargs.setdefault("library_versions", library_versions(model))
        return cls(name=name, path=str(path), sha256=digest, **kwargs)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], name: str, **kwargs: Any) -> ModelSpec:
        return cls(name=name, path=str(path), **kwargs)

    @classmethod
    def from_image(cls, image: str, name: str, port: int = 8080, **kwargs: Any) -> ModelSpec:
        return cls(name=name, image=image, port=port, **kwargs)


MAX_LOCAL_BALANCERS = 16


@dataclass(frozen=True)
class BalancerSpec:
    """How requests are spread over replicas.

    The default policy, ``ewma``, was chosen by measurement (``benchmarks/balance.py``: 16
    replicas, a quarter of them 3x slower, heavy-tailed costs, 90 % load; medians of 3 runs on a
    2-core machine): its p99 was 1.09x the central-queue ideal's against 7.7x for round robin,
    and below nginx ``least_conn`` and HAProxy ``leastconn`` (664 ms against 786 and 729); it
    routed around a replica slowed 10x, and keeps sending concurrent requests, which batching
    model servers need (``late_binding`` starves them).

    ``balancers``: balancer processes the local target runs on the one endpoint port (SO_REUSEPORT
    spreads client connections over them as an L4 load balancer does; killing one fails only the
    requests it held). On GKE the balancer tier's pod count is ``BalancerTier``'s.

    ``hedge``: a request with no answer after 3x the slowest other replica's latency average (at
    least 0.1 s) is sent to another replica too, and the first answer wins (predictions are
    idempotent), so a hung replica delays requests by that much instead of until it is restarted.
    Off by default: it adds work on a busy fleet (``benchmarks/hung_replica.py`` measures it).
    It needs ``data_plane="python"``.

    ``data_plane``: what forwards the requests (one of ``DATA_PLANES``). ``"haproxy"``: HAProxy
    (a system binary: ``apt-get install haproxy``; the GKE image carries it) forwards them and a
    Python controller sets its weights and membership from the policy; ``"python"``: the
    toolkit's own asyncio proxy, which decides per request. With 4 or more balancers over one
    fleet prefer ``"python"``: HAProxy's ``leastconn`` takes idle replicas in turn whatever their
    weights, and each of K balancers sees most replicas idle (``benchmarks/fwlc_sim.py``).
    """

    policy: str = DEFAULT_POLICY
    health_interval_s: float = 0.25
    retries: int = 1
    request_timeout_s: float = 30.0
    balancers: int = 1
    hedge: bool = False
    data_plane: str = DEFAULT_DATA_PLANE

    def __post_init__(self) -> None:
        from mltoolkit.balancer.policies import policy_names

        if self.policy not in policy_names():
            raise SpecError("BalancerSpec.policy", self.policy, f"one of {policy_names()}")
        _check_number("BalancerSpec.health_interval_s", self.health_interval_s, 0.05, 60)
        _check_int("BalancerSpec.retries", self.retries, 0, 3)
        _check_number("BalancerSpec.request_timeout_s", self.request_timeout_s, 0.1, 3600)
        _check_int("BalancerSpec.balancers", self.balancers, 1, MAX_LOCAL_BALANCERS)
        if not isinstance(self.hedge, bool):
            raise SpecError("BalancerSpec.hedge", self.hedge, "True or False")
        check_data_plane("BalancerSpec", self.data_plane, self.hedge)


@dataclass(frozen=True)
class DeploymentSpec:
    """A model served by ``replicas`` copies behind a balancer, with per-replica resources.

    ``gpu`` is the number of GPUs each replica requests (``nvidia.com/gpu``); on GKE it needs a
    GPU node pool and a CUDA-capable image (``ModelSpec.from_image``).
    """

    model: ModelSpec
    replicas: int = 2
    cpu: str = "500m"
    memory: str = "512Mi"
    cpu_limit: str | None = None
    memory_limit: str | None = None
    balancer: BalancerSpec = field(default_factory=BalancerSpec)
    max_request_bytes: int = 8 * 2**20
    gpu: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.model, Mapping):
            object.__setattr__(self, "model", build_spec(ModelSpec, self.model, "ModelSpec"))
        if not isinstance(self.model, ModelSpec):
            raise SpecError("DeploymentSpec.model", self.model, "a ModelSpec")
        if isinstance(self.balancer, Mapping):
            object.__setattr__(self, "balancer", build_spec(BalancerSpec, self.balancer, "BalancerSpec"))
        if not isinstance(self.balancer, BalancerSpec):
            raise SpecError("DeploymentSpec.balancer", self.balancer, "a BalancerSpec")
        _check_int("DeploymentSpec.replicas", self.replicas, 1, 256)
        request_cpu = cpu_millicores(self.cpu, "DeploymentSpec.cpu")
        request_memory = memory_bytes(self.memory, "DeploymentSpec.memory")
        if self.cpu_limit is not None:
            limit = cpu_millicores(self.cpu_limit, "DeploymentSpec.cpu_limit")
            if limit < request_cpu:
                raise SpecError(
                    "DeploymentSpec.cpu_limit", self.cpu_limit, f"at least the request {self.cpu!r}"
                )
        if self.memory_limit is not None:
            limit = memory_bytes(self.memory_limit, "DeploymentSpec.memory_limit")
            if limit < request_memory:
                raise SpecError(
                    "DeploymentSpec.memory_limit",
                    self.memory_limit,
                    f"at least the request {self.memory!r}",
                )
        _check_int("DeploymentSpec.max_request_bytes", self.max_request_bytes, 1024, 2**30)
        _check_int("DeploymentSpec.gpu", self.gpu, 0, 16)

    @property
    def cpu_millicores(self) -> int:
        return cpu_millicores(self.cpu)

    @property
    def memory_bytes(self) -> int:
        return memory_bytes(self.memory)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentSpec:
        return build_spec(cls, data, "DeploymentSpec")


def build_spec(cls: type, data: Mapping[str, Any], label: str) -> Any:
    """Construct a spec dataclass from a dict, rejecting keys it does not know."""
    if not isinstance(data, Mapping):
        raise SpecError(label, data, "a mapping of field names to values")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(f"{label}.{unknown[0]}", data[unknown[0]], f"one of the fields {sorted(known)}")
    values = dict(data)
    if cls is ModelSpec and isinstance(values.get("batching"), Mapping):
        values["batching"] = build_spec(BatchingSpec, values["batching"], "BatchingSpec")
    try:
        return cls(**values)
    except TypeError as exc:  # a required field missing
        raise SpecError(label, dict(data), f"all required fields ({exc})") from None
