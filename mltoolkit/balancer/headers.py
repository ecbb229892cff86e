"""Which headers cross the proxy: hop-by-hop headers stay on their own connection (RFC 9110 §7.6.1).

Headers are lists of ``(name, value)`` byte pairs as they came off the wire (httptools), in
order, repeated names kept; names compare case-insensitively.
"""

from __future__ import annotations

from typing import Iterable, Sequence

Headers = Sequence[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set again by whoever writes the next message: its own Host and its own framing.
# ``Expect`` too: the balancer has already read the whole body before it forwards a request.
REQUEST_DROPPED = frozenset({b"host", b"content-length", b"expect"})
RESPONSE_DROPPED = frozenset({b"content-length"})
# What a request usually carries: nothing here is hop-by-hop or named in Connection, so the
# common case skips the per-header checks.
_DROP_REQUEST = HOP_BY_HOP | REQUEST_DROPPED
_DROP_RESPONSE = HOP_BY_HOP | RESPONSE_DROPPED
# Connection values that name no other header
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close"})


def _connection_tokens(headers: Headers) -> set[bytes]:
    """Header names a sender listed in ``Connection`` as meant for this hop only."""
    return {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
        if token.strip()
    }


def end_to_end(headers: Headers, also_drop: Iterable[bytes] = ()) -> list[tuple[bytes, bytes]]:
    """``headers`` without hop-by-hop ones, those named in ``Connection``, and ``also_drop``."""
    dropped = HOP_BY_HOP | _connection_tokens(headers) | {name.lower() for name in also_drop}
    return [(name, value) for name, value in headers if name.lower() not in dropped]


def _without(headers: Headers, dropped: frozenset[bytes]) -> list[tuple[bytes, bytes]]:
    kept = []
    connection_named = False
    for name, value in headers:
        lower = name.lower()
        if lower in dropped:
            if lower == b"connection" and value.lower() not in _PLAIN_CONNECTION:
                connection_named = True
        else:
            kept.append((name, value))
    if connection_named:
        named = _connection_tokens(headers)
        kept = [(name, value) for name, value in kept if name.lower() not in named]
    return kept


def forwarded_request_headers(
    headers: Headers, client_ip: str | None, host: bytes | None, scheme: bytes = b"http"
) -> list[tuple[bytes, bytes]]:
    """The headers to send to a replica for a client's request, with ``X-Forwarded-*`` added."""
    out = _without(headers, _DROP_REQUEST)
    chain: list[bytes] = []
    has_host = has_proto = False
    for name, value in out:
        lower = name.lower()
        if lower == b"x-forwarded-for":
            chain.append(value)
        elif lower == b"x-forwarded-host":
            has_host = True
        elif lower == b"x-forwarded-proto":
            has_proto = True
    if client_ip:
        if chain:
            out = [(n, v) for n, v in out if n.lower() != b"x-forwarded-for"]
        chain.append(client_ip.encode())
        out.append((b"X-Forwarded-For", b", ".join(chain)))
    if host and not has_host:
        out.append((b"X-Forwarded-Host", host))
    if not has_proto:
        out.append((b"X-Forwarded-Proto", scheme))
    return out


def returned_response_headers(headers: Headers) -> list[tuple[bytes, bytes]]:
    """The replica's response headers to pass back to the client."""
    return _without(headers, _DROP_RESPONSE)


def encode_headers(headers: Headers) -> bytes:
    """``Name: value`` lines, each ended by CRLF."""
    return b"".join(b"%s: %s\r\n" % pair for pair in headers)
