"""The fake Kubernetes API with balancer pods behind its pod proxy.

``FakeKubeAPIWithProxy`` answers what ``FakeKubeAPI`` does, and
``GET /api/v1/namespaces/NS/pods/POD:PORT/proxy/PATH`` as the API server's pod proxy does: with
what the pod serves at PATH (``pages[(pod, "/PATH?QUERY")]``), 503 for a pod that is not running
or not listed, 404 for a path the pod does not serve.
"""

from __future__ import annotations

import re
from typing import Any

from tests.observe.fake_kube_api import FakeKubeAPI, pod_object, status_document

_PROXY = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/:]+):(\d+)/proxy/(.*)$")
TIER_LABELS = {"app.kubernetes.io/name": "digits-balancer", "app.kubernetes.io/component": "balancer"}


def balancer_pod(name: str, node: str, *, ready: bool = True, namespace: str = "mltoolkit") -> dict[str, Any]:
    pod = pod_object(name, namespace=namespace, labels=TIER_LABELS, node=node)
    pod["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    return pod


class FakeKubeAPIWithProxy(FakeKubeAPI):
    def __init__(self, cluster: Any, pages: dict[tuple[str, str], dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(cluster, **kwargs)
        self.pages = pages

    def respond(self, path: str, query: dict[str, list[str]], authorization: str | None) -> tuple[int, dict[str, Any]]:
        match = _PROXY.match(path)
        if match is None:
            return super().respond(path, query, authorization)
        with self._lock:
            self.requests.append((path, query))
        if authorization != f"Bearer {self.token}":
            return 401, status_document(401, "Unauthorized", "Unauthorized")
        namespace, pod, port, rest = match.groups()
        known = [p for p in self.cluster.pods if p["metadata"]["name"] == pod and p["metadata"]["namespace"] == namespace]
        if not known or known[0]["status"].get("phase") != "Running" or port != "8080":
            return 503, status_document(503, "ServiceUnavailable", f"no endpoints available for pod {pod!r}")
        text = "&".join(f"{k}={v}" for k, values in sorted(query.items()) for v in values)
        page = self.pages.get((pod, f"/{rest}" + (f"?{text}" if text else "")))
        if page is None:
            return 404, {"error": f"no route /{rest}"}
        return 200, page
