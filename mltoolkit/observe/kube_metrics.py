"""Node utilization on a Kubernetes cluster, read from the metrics API, as a DataFrame.

Three list calls (one side-effecting place, :func:`fetch_cluster_state`):

* ``GET /apis/metrics.k8s.io/v1beta1/nodes`` — NodeMetrics: CPU and memory in use per node
  (served by metrics-server; a cluster without it answers 404/503);
* ``GET /api/v1/nodes`` — each node's ``status.allocatable``, the base of the percentages;
* ``GET /api/v1[/namespaces/NS]/pods[?labelSelector=...]`` — the model's pods, counted per node.

Responses are read as raw JSON (``_preload_content=False``): the client's typed models are
not needed and deserializing a large cluster into them costs far more than the rest.

The pure half, :func:`utilization_frame`, turns the three JSON lists into the "Utilization, by
node" frame of docs/architecture.md, with vectorised quantity parsing
(:func:`parse_cpu_cores`, :func:`parse_memory_bytes`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import urllib3
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from mltoolkit.errors import MltoolkitError, SpecError
from mltoolkit.observe.utilization import NODE_COLUMNS

# the same columns as the local target's utilization by node
NODE_UTILIZATION_COLUMNS = NODE_COLUMNS

METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"

# Pods in these phases have finished and no longer occupy their node.
_FINISHED_PHASES = ("Succeeded", "Failed")


class KubeMetricsError(MltoolkitError):
    """Reading utilization from a cluster failed (unreachable, refused, unexpected answer)."""


class MetricsServerUnavailableError(KubeMetricsError):
    """The cluster does not serve the metrics API (metrics-server missing or not ready)."""


# --------------------------------------------------------------------------------------------
# Quantities (pure): each distinct text parsed once, the arithmetic on arrays
# --------------------------------------------------------------------------------------------

# Kubernetes quantity grammar (k8s.io/apimachinery/pkg/api/resource): a signed decimal number
# followed by a binary SI suffix, a decimal SI suffix, or a decimal exponent ("1e3").
_QUANTITY = re.compile(
    r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?\s*"
)
# Each suffix as (multiplier, divisor): dividing by 10**9 (rather than multiplying by 1e-9)
# keeps results such as "123456789n" -> 0.123456789 correctly rounded.
_SUFFIX_SCALE: dict[str | None, tuple[float, float]] = {
    None: (1.0, 1.0),
    "n": (1.0, 1e9),
    "u": (1.0, 1e6),
    "m": (1.0, 1e3),
    "k": (1e3, 1.0),
    "M": (1e6, 1.0),
    "G": (1e9, 1.0),
    "T": (1e12, 1.0),
    "P": (1e15, 1.0),
    "E": (1e18, 1.0),
    "Ki": (2.0**10, 1.0),
    "Mi": (2.0**20, 1.0),
    "Gi": (2.0**30, 1.0),
    "Ti": (2.0**40, 1.0),
    "Pi": (2.0**50, 1.0),
    "Ei": (2.0**60, 1.0),
}
QUANTITY_EXAMPLES = "a Kubernetes quantity such as '1500m', '123456789n', '2', '3794Mi', '16Gi' or '1e3'"


def _quantity(value: object) -> float | None:
    """One quantity in base units; None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = _QUANTITY.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    mantissa, exponent, suffix = match.groups()
    if exponent is not None:
        power = int(exponent)
        return float(mantissa) * 10.0**power if power >= 0 else float(mantissa) / 10.0**-power
    multiplier, divisor = _SUFFIX_SCALE[suffix]
    return float(mantissa) * multiplier / divisor


def parse_quantities(
    values: Sequence[str | int | float | None], *, field: str, names: Sequence[str] | None = None
) -> np.ndarray:
    """Parse Kubernetes quantities into float64 base units (cores, bytes); None -> NaN.

    Each distinct text is parsed once (a cluster's nodes share a few allocatable values).
    ``field`` (and the matching entry of ``names``, when given) names a value that does not
    parse in the :class:`KubeMetricsError` raised for it.
    """
    parsed: dict[object, float | None] = {None: math.nan}
    result = np.empty(len(values), dtype=np.float64)
    for index, value in enumerate(values):
        try:
            amount = parsed[value]
        except KeyError:
            amount = parsed[value] = _quantity(value)
        except TypeError:  # unhashable: not a quantity
            amount = None
        if amount is None:
            where = f"{field} of {names[index]!r}" if names is not None else field
            raise KubeMetricsError(f"{where}: {value!r} is not {QUANTITY_EXAMPLES}")
        result[index] = amount
    return result


def parse_cpu_cores(
    values: Sequence[str | int | float | None], *, field: str = "cpu", names: Sequence[str] | None = None
) -> np.ndarray:
    """CPU quantities ("1500m", "123456789n", "2") as float64 cores; None -> NaN."""
    return parse_quantities(values, field=field, names=names)


def parse_memory_bytes(
    values: Sequence[str | int | float | None],
    *,
    field: str = "memory",
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Memory quantities ("3794Mi", "16Gi", "1G", "1048576") as whole bytes (float64, NaN for
    None), rounded up as Kubernetes does for a fractional byte count ("0.1Ki" -> 103)."""
    amounts = parse_quantities(values, field=field, names=names)
    # round first so that float noise ("1.1k" = 1100.0000000000002) is not rounded up a byte
    return np.ceil(np.round(amounts, 3))


# --------------------------------------------------------------------------------------------
# Assembly (pure): three JSON lists -> the frame
# --------------------------------------------------------------------------------------------


def _items(document: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    items = document.get("items") if isinstance(document, Mapping) else None
    if not isinstance(items, list):
        raise KubeMetricsError(f"unexpected {kind} from the API server: no 'items' list")
    return items


def _names(items: list[Mapping[str, Any]], kind: str) -> list[str]:
    try:
        return [item["metadata"]["name"] for item in items]
    except (KeyError, TypeError):
        raise KubeMetricsError(
            f"unexpected {kind} from the API server: an item has no metadata.name"
        ) from None


def _timestamps(values: list[str | None]) -> pd.arrays.DatetimeArray:
    try:
        times = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
    except (ValueError, TypeError):
        raise KubeMetricsError(
            "unexpected NodeMetricsList from the API server: a timestamp is not RFC 3339"
        ) from None
    return times.astype("datetime64[ns, UTC]").array


def utilization_frame(
    node_metrics: Mapping[str, Any], nodes: Mapping[str, Any], pods: Mapping[str, Any]
) -> pd.DataFrame:
    """The "Utilization, by node" frame from a NodeMetricsList, a NodeList and a PodList.

    One row per node of the NodeList, sorted by name. A node without metrics yet (just
    joined) has ``time`` NaT and NaN/NA usage; metrics of a node no longer in the NodeList are
    dropped. ``replicas`` counts the pods of ``pods`` bound to the node and not finished.
    ``memory_bytes`` is nullable Int64 (NA without metrics); ``in_flight`` and ``served`` are
    NA: the cluster has no balancer counters.
    """
    node_items = _items(nodes, "NodeList")
    node_names = _names(node_items, "NodeList")
    allocatable = [(item.get("status") or {}).get("allocatable") or {} for item in node_items]
    node_frame = pd.DataFrame(
        {
            "allocatable_cpu": parse_cpu_cores(
                [a.get("cpu") for a in allocatable], field="status.allocatable.cpu", names=node_names
            ),
            "allocatable_memory": parse_memory_bytes(
                [a.get("memory") for a in allocatable],
                field="status.allocatable.memory",
                names=node_names,
            ),
        },
        index=pd.Index(node_names, dtype=object),
    )

    metric_items = _items(node_metrics, "NodeMetricsList")
    metric_names = _names(metric_items, "NodeMetricsList")
    first = ~pd.Index(metric_names).duplicated(keep="first")
    if not first.all():
        metric_items = [item for item, keep in zip(metric_items, first) if keep]
        metric_names = [name for name, keep in zip(metric_names, first) if keep]
    usage = [item.get("usage") or {} for item in metric_items]
    metric_frame = pd.DataFrame(
        {
            "time": _timestamps([item.get("timestamp") for item in metric_items]),
            "cpu_cores": parse_cpu_cores(
                [u.get("cpu") for u in usage], field="usage.cpu", names=metric_names
            ),
            "memory_bytes": parse_memory_bytes(
                [u.get("memory") for u in usage], field="usage.memory", names=metric_names
            ),
        },
        index=pd.Index(metric_names, dtype=object),
    )

    pod_items = _items(pods, "PodList")
    bound = [
        (item.get("spec") or {}).get("nodeName")
        for item in pod_items
        if (item.get("status") or {}).get("phase") not in _FINISHED_PHASES
    ]
    replicas = pd.Series([name for name in bound if name], dtype=object).value_counts()

    frame = node_frame.join(metric_frame, how="left").sort_index(kind="stable")
    cpu = frame["cpu_cores"].to_numpy(dtype=np.float64)
    memory = frame["memory_bytes"].to_numpy(dtype=np.float64)
    allocatable_cpu = frame["allocatable_cpu"].to_numpy(dtype=np.float64)
    allocatable_memory = frame["allocatable_memory"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        cpu_percent = np.where(allocatable_cpu > 0, cpu / allocatable_cpu * 100.0, np.nan)
        memory_percent = np.where(
            allocatable_memory > 0, memory / allocatable_memory * 100.0, np.nan
        )
    count = len(frame)
    return pd.DataFrame(
        {
            "time": frame["time"].reset_index(drop=True),
            "node": pd.Series(frame.index.to_numpy(), dtype=str),
            "cpu_cores": cpu,
            "cpu_percent": cpu_percent,
            "memory_bytes": pd.array(memory, dtype="Int64"),
            "memory_percent": memory_percent,
            "replicas": replicas.reindex(frame.index, fill_value=0).to_numpy(dtype=np.int64),
            "in_flight": pd.array([pd.NA] * count, dtype="Int64"),
            "served": pd.array([pd.NA] * count, dtype="Int64"),
        },
        columns=list(NODE_UTILIZATION_COLUMNS),
    )


# --------------------------------------------------------------------------------------------
# Input validation (pure)
# --------------------------------------------------------------------------------------------

_NAMESPACE = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = rf"(?:[a-z0-9](?:[-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}"
_LABEL_VALUE = rf"(?:{_LABEL_NAME})?"
# One requirement of a label selector: "k", "!k", "k=v", "k==v", "k!=v", "k in (a,b)",
# "k notin (a,b)", "k>3", "k<3" (k8s.io/apimachinery/pkg/labels).
_REQUIREMENT = (
    rf"\s*(?:!\s*{_LABEL_KEY}|{_LABEL_KEY}\s*(?:(?:==|=|!=)\s*{_LABEL_VALUE}"
    rf"|(?:in|notin)\s*\(\s*{_LABEL_VALUE}(?:\s*,\s*{_LABEL_VALUE})*\s*\)|[<>]\s*-?\d+)?)\s*"
)
_SELECTOR = re.compile(rf"{_REQUIREMENT}(?:,{_REQUIREMENT})*")

NAMESPACE_ALLOWED = "None or a Kubernetes namespace name (lowercase letters, digits and '-', at most 63)"
SELECTOR_ALLOWED = (
    "None, a label selector such as 'app=digits' or 'app in (a,b),tier!=web', "
    "or a mapping of label keys to values such as {'app': 'digits'}"
)
KUBECONFIG_ALLOWED = (
    "kubeconfig YAML text (as the GKE stack outputs it), the same as a dict, "
    "or a kubernetes.client.ApiClient"
)


def validate_namespace(namespace: object) -> str | None:
    if namespace is None:
        return None
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        raise SpecError("namespace", namespace, NAMESPACE_ALLOWED)
    return namespace


def validate_label_selector(label_selector: object) -> str | None:
    """A label selector as the API takes it, from a string or a {key: value} mapping."""
    if label_selector is None:
        return None
    if isinstance(label_selector, Mapping):
        pairs = list(label_selector.items())
        if not pairs or not all(
            isinstance(k, str)
            and isinstance(v, str)
            and re.fullmatch(_LABEL_KEY, k)
            and re.fullmatch(_LABEL_VALUE, v)
            for k, v in pairs
        ):
            raise SpecError("label_selector", label_selector, SELECTOR_ALLOWED)
        return ",".join(f"{k}={v}" for k, v in pairs)
    if (
        not isinstance(label_selector, str)
        or not label_selector.strip()
        or not _SELECTOR.fullmatch(label_selector)
    ):
        raise SpecError("label_selector", label_selector, SELECTOR_ALLOWED)
    return label_selector.strip()


def _redacted(kubeconfig: object) -> str:
    """Stands for a kubeconfig in error messages: it may hold a token or a client key."""
    return f"<kubeconfig {type(kubeconfig).__name__}, contents not shown>"


def load_kubeconfig(kubeconfig: str | Mapping[str, Any]) -> dict[str, Any]:
    """Kubeconfig YAML text or mapping -> dict, checked to have a cluster, a user and a context."""
    if isinstance(kubeconfig, str):
        try:
            loaded = yaml.safe_load(kubeconfig)
        except yaml.YAMLError:
            raise SpecError(
                "kubeconfig", _redacted(kubeconfig), KUBECONFIG_ALLOWED + " (the text is not YAML)"
            ) from None
    elif isinstance(kubeconfig, Mapping):
        loaded = kubeconfig
    else:
        raise SpecError("kubeconfig", kubeconfig, KUBECONFIG_ALLOWED)
    if not isinstance(loaded, Mapping) or not all(
        isinstance(loaded.get(key), list) and loaded.get(key)
        for key in ("clusters", "users", "contexts")
    ):
        raise SpecError(
            "kubeconfig",
            _redacted(kubeconfig),
            KUBECONFIG_ALLOWED + " with non-empty 'clusters', 'users' and 'contexts' lists",
        )
    return dict(loaded)


def api_client_from_kubeconfig(kubeconfig: str | Mapping[str, Any]) -> k8s_client.ApiClient:
    """A new ApiClient for the kubeconfig's current context (the caller closes it).

    Runs the kubeconfig's exec plugin, if it names one (GKE: ``gke-gcloud-auth-plugin``).
    """
    config_dict = load_kubeconfig(kubeconfig)
    try:
        return k8s_config.new_client_from_config_dict(config_dict, persist_config=False)
    except (ConfigException, KeyError, TypeError, ValueError) as exc:
        # the loader's messages name fields, not secrets; the config itself is not repeated
        raise SpecError(
            "kubeconfig", _redacted(kubeconfig), f"{KUBECONFIG_ALLOWED} ({exc})"
        ) from None


# --------------------------------------------------------------------------------------------
# Fetching (the side effects)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterState:
    """The three JSON list documents, as the API server sent them."""

    node_metrics: dict[str, Any]
    nodes: dict[str, Any]
    pods: dict[str, Any]


def _server_message(exc: ApiException) -> str:
    try:
        message = json.loads(exc.body or "").get("message")
    except (ValueError, AttributeError):
        message = None
    return f": {message}" if message else ""


def _get_json(call: Callable[..., Any], what: str, host: str, **kwargs: Any) -> dict[str, Any]:
    try:
        response = call(_preload_content=False, **kwargs)
    except ApiException as exc:
        status = f"HTTP {exc.status} {exc.reason or ''}".strip()
        hint = ""
        if exc.status in (401, 403):
            hint = (
                " (check the kubeconfig's credentials; for GKE, that gke-gcloud-auth-plugin is "
                "installed and gcloud is logged in, and that the account may list nodes and pods)"
            )
        raise KubeMetricsError(
            f"the API server at {host} refused to {what} ({status}){_server_message(exc)}{hint}"
        ) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise KubeMetricsError(
            f"could not reach the Kubernetes API server at {host} to {what}: "
            f"{type(exc).__name__}"
        ) from exc
    try:
        body = response.data
    finally:
        response.release_conn()
    try:
        document = json.loads(body)
    except ValueError:
        raise KubeMetricsError(
            f"the API server at {host} did not answer JSON when asked to {what}"
        ) from None
    if not isinstance(document, dict):
        raise KubeMetricsError(f"the API server at {host} answered an unexpected document to {what}")
    return document


def fetch_node_metrics(api_client: k8s_client.ApiClient, *, request_timeout: float) -> dict[str, Any]:
    """The NodeMetricsList; :class:`MetricsServerUnavailableError` if the API is not served."""
    host = api_client.configuration.host
    api = k8s_client.CustomObjectsApi(api_client)
    try:
        return _get_json(
            api.list_cluster_custom_object,
            "list node metrics",
            host,
            group=METRICS_GROUP,
            version=METRICS_VERSION,
            plural="nodes",
            _request_timeout=request_timeout,
        )
    except KubeMetricsError as exc:
        cause = exc.__cause__
        if isinstance(cause, ApiException) and cause.status in (404, 503):
            raise MetricsServerUnavailableError(
                f"metrics-server isn't available on the cluster at {host}: the metrics API "
                f"({METRICS_GROUP}/{METRICS_VERSION}) answered HTTP {cause.status}"
                f"{_server_message(cause)}. Node utilization needs metrics-server: GKE runs it "
                "by default (it can take a minute after the cluster is created); elsewhere, "
                "install it (kubectl apply -f https://github.com/kubernetes-sigs/metrics-server"
                "/releases/latest/download/components.yaml)."
            ) from cause
        raise


def fetch_cluster_state(
    api_client: k8s_client.ApiClient,
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
    request_timeout: float = 30.0,
) -> ClusterState:
    """Node metrics, nodes, and the pods of ``namespace`` (all if None) matching the selector."""
    host = api_client.configuration.host
    node_metrics = fetch_node_metrics(api_client, request_timeout=request_timeout)
    core = k8s_client.CoreV1Api(api_client)
    nodes = _get_json(core.list_node, "list nodes", host, _request_timeout=request_timeout)
    selector = {"label_selector": label_selector} if label_selector else {}
    if namespace is None:
        pods = _get_json(
            core.list_pod_for_all_namespaces,
            "list pods",
            host,
            _request_timeout=request_timeout,
            **selector,
        )
    else:
        pods = _get_json(
            core.list_namespaced_pod,
            f"list pods in namespace {namespace!r}",
            host,
            namespace=namespace,
            _request_timeout=request_timeout,
            **selector,
        )
    return ClusterState(node_metrics=node_metrics, nodes=nodes, pods=pods)


def node_utilization(
    kubeconfig: str | Mapping[str, Any] | k8s_client.ApiClient,
    *,
    namespace: str | None = None,
    label_selector: str | Mapping[str, str] | None = None,
    request_timeout: float = 30.0,
) -> pd.DataFrame:
    """CPU and memory in use on each node of a cluster, now, as the "Utilization, by node" frame.

    ``kubeconfig``: YAML text (the GKE stack's output), the same as a dict, or an ApiClient
    (e.g. ``kubernetes.config.new_client_from_config("~/.kube/config")``), left open.
    ``namespace`` / ``label_selector`` choose the model's pods counted in ``replicas``
    (all pods when both are None). ``request_timeout`` (seconds) bounds each API call.

    Raises :class:`SpecError` for bad arguments (before any call),
    :class:`MetricsServerUnavailableError` when the cluster has no metrics API, and
    :class:`KubeMetricsError` when the API server can't be reached or refuses.
    """
    namespace = validate_namespace(namespace)
    selector = validate_label_selector(label_selector)
    if (
        isinstance(request_timeout, bool)
        or not isinstance(request_timeout, (int, float))
        or not request_timeout > 0
    ):
        raise SpecError("request_timeout", request_timeout, "a number of seconds > 0")
    if isinstance(kubeconfig, k8s_client.ApiClient):
        state = fetch_cluster_state(
            kubeconfig, namespace=namespace, label_selector=selector, request_timeout=request_timeout
        )
    else:
        with api_client_from_kubeconfig(kubeconfig) as api_client:
            state = fetch_cluster_state(
                api_client,
                namespace=namespace,
                label_selector=selector,
                request_timeout=request_timeout,
            )
    return utilization_frame(state.node_metrics, state.nodes, state.pods)
