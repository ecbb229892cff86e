"""A fake Kubernetes API that serves EndpointSlices (list and watch), on 127.0.0.1, in aiohttp.

It keeps the API server's behaviour that discovery depends on:

- one ``resourceVersion`` counter for every change; each stored object carries the version of
  its last change, lists carry the current one;
- ``GET /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices?labelSelector=k=v``, paged by
  ``limit`` and ``continue``;
- ``...&watch=1&resourceVersion=RV``: the changes after RV, then new ones as they happen, as JSON
  lines ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}``, closed after
  ``timeoutSeconds`` or by ``close_watches()``;
- a version older than the last ``compact()`` is gone: the watch answers 200 and one ERROR event
  with a 410 Status (what the real server does for a too-old version), or, with
  ``gone_as_status=True``, a 410 answer;
- a bearer token (401 Status otherwise), and ``fail_next(n, status)`` for API errors;
- HTTPS when given an ``ssl_context`` (as the in-cluster API is), else HTTP.

The objects are shaped as the EndpointSlice controller writes them (``endpoint_slice``).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.observe.fake_kube_api import status_document

TOKEN = "fake-sa-token-51c2e8"
NAMESPACE = "mltoolkit"
SERVICE_LABEL = "kubernetes.io/service-name"


def endpoint(address: str, pod: str, node: str, *, ready: bool | None = True, serving: bool | None = None,
             terminating: bool | None = None, zone: str = "us-central1-a") -> dict[str, Any]:
    """One endpoint of a slice; conditions left None are left out, as the API allows."""
    if serving is None and ready is not None:
        serving = ready
    if terminating is None:
        terminating = False
    conditions = {k: v for k, v in (("ready", ready), ("serving", serving), ("terminating", terminating))
                  if v is not None}  # fmt: skip
    return {
        "addresses": [address],
        "conditions": conditions,
        "nodeName": node,
        "targetRef": {"kind": "Pod", "name": pod, "namespace": NAMESPACE, "uid": f"uid-{pod}"},
        "zone": zone,
    }


def endpoint_slice(name: str, service: str, endpoints: list[dict[str, Any]], *, port: int,
                   port_name: str = "http") -> dict[str, Any]:
    return {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "generateName": f"{service}-",
            "uid": f"uid-{name}",
            "labels": {
                SERVICE_LABEL: service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                "app.kubernetes.io/name": service,
            },
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": service,
                                 "uid": f"uid-svc-{service}", "controller": True,
                                 "blockOwnerDeletion": True}],  # fmt: skip
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
    }


@dataclass
class _Watch:
    queue: asyncio.Queue[dict[str, Any] | None]
    selector: str


@dataclass
class FakeEndpointSliceAPI:
    token: str = TOKEN
    gone_as_status: bool = False
    slices: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 1000
    #: (version, event) of every change, for watches that start from an older version
    history: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    compacted: int = 0
    requests: list[dict[str, str]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    watches: list[_Watch] = field(default_factory=list)
    ssl_context: ssl.SSLContext | None = None
    _runner: web.AppRunner | None = None
    url: str = ""

    # -- changes -------------------------------------------------------------------------------

    def _change(self, kind: str, obj: dict[str, Any]) -> None:
        self.version += 1
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = str(self.version)
        event = {"type": kind, "object": obj}
        self.history.append((self.version, event))
        for watch in self.watches:
            if _matches(watch.selector, obj["metadata"].get("labels") or {}):
                watch.queue.put_nowait(event)
        if kind == "DELETED":
            self.slices.pop(obj["metadata"]["name"], None)
        else:
            self.slices[obj["metadata"]["name"]] = obj

    def put(self, slice_object: dict[str, Any]) -> None:
        """Create or replace a slice (ADDED or MODIFIED to watchers)."""
        kind = "MODIFIED" if slice_object["metadata"]["name"] in self.slices else "ADDED"
        self._change(kind, slice_object)

    def delete(self, name: str) -> None:
        self._change("DELETED", self.slices[name])

    def bookmark(self) -> None:
        """A BOOKMARK at the current version to every open watch."""
        event = {"type": "BOOKMARK", "object": {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                                                "metadata": {"resourceVersion": str(self.version)}}}  # fmt: skip
        for watch in self.watches:
            watch.queue.put_nowait(event)

    def compact(self) -> None:
        """Forget the history: every version before now is gone (410 to a watch from it)."""
        self.version += 1
        self.compacted = self.version
        self.history.clear()

    def close_watches(self) -> None:
        for watch in self.watches:
            watch.queue.put_nowait(None)

    def fail_next(self, count: int, status: int = 500) -> None:
        self.failures += [status] * count

    def count(self, **query: str) -> int:
        """Requests whose query had all of ``query`` (``watch="1"``: watches)."""
        return sum(1 for r in self.requests if all(r.get(k) == v for k, v in query.items()))

    # -- serving -------------------------------------------------------------------------------

    async def start(self) -> FakeEndpointSliceAPI:
        app = web.Application()
        app.router.add_get("/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices", self._endpointslices)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"{'https' if self.ssl_context else 'http'}://{host}:{port}"
        return self

    async def stop(self) -> None:
        self.close_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _endpointslices(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.requests.append(query)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(status_document(401, "Unauthorized", "Unauthorized"), status=401)
        if self.failures:
            status = self.failures.pop(0)
            return web.json_response(status_document(status, "InternalError", "etcd is sulking"), status=status)
        namespace = request.match_info["namespace"]
        selector = query.get("labelSelector", "")
        if query.get("watch") in ("1", "true"):
            return await self._watch(request, namespace, selector, query)
        items = [s for s in self.slices.values()
                 if s["metadata"]["namespace"] == namespace and _matches(selector, s["metadata"]["labels"])]  # fmt: skip
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0) or len(items) or 1
        page = items[start:start + limit]
        metadata: dict[str, Any] = {"resourceVersion": str(self.version)}
        if start + limit < len(items):
            metadata["continue"] = str(start + limit)
        return web.json_response({"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                                  "metadata": metadata, "items": page})  # fmt: skip

    async def _watch(self, request: web.Request, namespace: str, selector: str,
                     query: dict[str, str]) -> web.StreamResponse:
        since = int(query.get("resourceVersion") or 0)
        gone = status_document(410, "Expired", f"too old resource version: {since} ({self.compacted})")
        if since < self.compacted and self.gone_as_status:
            return web.json_response(gone, status=410)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)

        async def send(event: dict[str, Any]) -> None:
            await response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")

        if since < self.compacted:
            await send({"type": "ERROR", "object": gone})
            return response
        watch = _Watch(asyncio.Queue(), selector)
        for version, event in self.history:
            if version > since and _matches(selector, event["object"]["metadata"].get("labels") or {}):
                watch.queue.put_nowait(event)
        self.watches.append(watch)
        timeout = float(query.get("timeoutSeconds") or 3600)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = await watch.queue.get()
                    if event is None:
                        break
                    if event["type"] != "BOOKMARK" and event["object"]["metadata"]["namespace"] != namespace:
                        continue
                    await send(event)
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            self.watches.remove(watch)
        return response


def _matches(selector: str, labels: dict[str, str]) -> bool:
    for requirement in filter(None, selector.split(",")):
        key, _, value = requirement.partition("=")
        if labels.get(key) != value:
            return False
    return True
