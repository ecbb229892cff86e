"""Which headers cross the proxy: hop-by-hop headers stay on their own connection (RFC 9110 §7.6.1)."""

from __future__ import annotations

from typing import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Set again by whoever writes the next message: its own Host and its own framing.
# ``Expect`` too: the balancer has already read the whole body before it forwards a request.
REQUEST_DROPPED = frozenset({"host", "content-length", "expect"})
RESPONSE_DROPPED = frozenset({"content-length"})


def _connection_tokens(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> set[str]:
    """Header names a sender listed in ``Connection`` as meant for this hop only."""
    return {
        token.strip().lower()
        for value in headers.getall("Connection", [])
        for token in value.split(",")
        if token.strip()
    }


def end_to_end(
    headers: CIMultiDictProxy[str] | CIMultiDict[str], also_drop: Iterable[str] = ()
) -> CIMultiDict[str]:
    """A copy of ``headers`` without hop-by-hop ones, those named in ``Connection``, and ``also_drop``."""
    dropped = HOP_BY_HOP | _connection_tokens(headers) | {name.lower() for name in also_drop}
    return CIMultiDict((name, value) for name, value in headers.items() if name.lower() not in dropped)


def forwarded_request_headers(
    headers: CIMultiDictProxy[str] | CIMultiDict[str], client_ip: str | None, host: str | None, scheme: str
) -> CIMultiDict[str]:
    """The headers to send to a replica for a client's request, with ``X-Forwarded-*`` added."""
    out = end_to_end(headers, REQUEST_DROPPED)
    if client_ip:
        chain = [*out.getall("X-Forwarded-For", []), client_ip]
        out["X-Forwarded-For"] = ", ".join(chain)
    if host and "X-Forwarded-Host" not in out:
        out["X-Forwarded-Host"] = host
    if "X-Forwarded-Proto" not in out:
        out["X-Forwarded-Proto"] = scheme
    return out


def returned_response_headers(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    """The replica's response headers to pass back to the client."""
    return end_to_end(headers, RESPONSE_DROPPED)
