"""The two messages between the client side and the routing engine: a request read whole, a reply.

Plain classes with ``__slots__``: one of each per request on the hot path.
"""

from __future__ import annotations

import orjson

JSON_TYPE = b"Content-Type: application/json\r\n"


class ProxyRequest:
    """A client's request, read whole: method, target (origin form: path and query, as sent),
    headers as byte pairs in order, body (de-chunked), and the client's address."""

    __slots__ = ("method", "target", "headers", "body", "client_ip", "host")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        client_ip: str | None,
        host: bytes | None,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.client_ip = client_ip
        self.host = host


class Reply:
    """An answer to send back: status, reason phrase, its end-to-end header lines (encoded, each
    ended by CRLF; no framing), body."""

    __slots__ = ("status", "reason", "headers", "body")

    def __init__(self, status: int, reason: bytes, headers: bytes, body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


REASONS = {
    200: b"OK", 400: b"Bad Request", 403: b"Forbidden", 404: b"Not Found", 405: b"Method Not Allowed",
    408: b"Request Timeout", 413: b"Content Too Large", 414: b"URI Too Long", 429: b"Too Many Requests",
    431: b"Request Header Fields Too Large", 500: b"Internal Server Error", 501: b"Not Implemented",
    502: b"Bad Gateway", 503: b"Service Unavailable", 504: b"Gateway Timeout",
}  # fmt: skip


def json_reply(status: int, document: object) -> Reply:
    return Reply(status, REASONS.get(status, b""), JSON_TYPE, orjson.dumps(document))


def json_error(status: int, message: str) -> Reply:
    """Every error the balancer itself answers: ``{"error": message}`` as JSON."""
    return json_reply(status, {"error": message})
