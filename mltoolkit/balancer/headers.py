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


def forwarded_request_head(
    headers: Headers, client_ip: str | None, host: bytes | None, scheme: bytes = b"http"
) -> bytes:
    """The header lines to send to a replica for a client's request (one pass; no Host and no
    framing, which the sender adds), with the client joining ``X-Forwarded-For`` and
    ``X-Forwarded-Host`` / ``-Proto`` added when absent."""
    parts: list[bytes] = []
    chain: list[bytes] = []
    has_host = has_proto = False
    for name, value in headers:
        lower = name.lower()
        if lower in _DROP_REQUEST:
            if lower == b"connection" and value.lower() not in _PLAIN_CONNECTION:
                # it names headers meant for this hop only: drop those too (rare)
                return forwarded_request_head(end_to_end(headers), client_ip, host, scheme)
            continue
        if lower.startswith(b"x-forwarded-"):
            if lower == b"x-forwarded-for":
                chain.append(value)
                continue
            has_host = has_host or lower == b"x-forwarded-host"
            has_proto = has_proto or lower == b"x-forwarded-proto"
        parts += (name, b": ", value, b"\r\n")
    if client_ip:
        chain.append(client_ip.encode())
    if chain:
        parts += (b"X-Forwarded-For: ", b", ".join(chain), b"\r\n")
    if host and not has_host:
        parts += (b"X-Forwarded-Host: ", host, b"\r\n")
    if not has_proto:
        parts += (b"X-Forwarded-Proto: ", scheme, b"\r\n")
    return b"".join(parts)


def returned_response_head(headers: Headers) -> bytes:
    """The header lines of a replica's answer to pass back to the client (one pass; no framing)."""
    parts: list[bytes] = []
    for name, value in headers:
        lower = name.lower()
        if lower in _DROP_RESPONSE:
            if lower == b"connection" and value.lower() not in _PLAIN_CONNECTION:
                return returned_response_head(end_to_end(headers))
            continue
        parts += (name, b": ", value, b"\r\n")
    return b"".join(parts)


def encode_headers(headers: Headers) -> bytes:
    """``Name: value`` lines, each ended by CRLF."""
    return b"".join(b"%s: %s\r\n" % pair for pair in headers)
