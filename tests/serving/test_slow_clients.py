"""Slow, idle and too many clients against the real server process, with raw sockets."""

from __future__ import annotations

import json
import resource
import socket
import time
from urllib.parse import urlsplit

import pytest

from mltoolkit.serving.server import FILE_RESERVE, connection_cap, raise_open_file_limit

SAFETY_S = 60  # how long a test waits for the server to act: a net, not a timing assertion


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=SAFETY_S)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout fails the test)."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def status_and_body(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def predict_request(body: bytes, length: int | None = None) -> bytes:
    length = len(body) if length is None else length
    return (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
        + body
    )


@pytest.fixture
def server(servers, digits_path):
    return servers(
        "--model-path", digits_path, "--model-name", "digits", "--port", "0",
        "--idle-timeout", "1", "--body-timeout", "1",
    )  # fmt: skip


def test_a_silent_connection_is_closed_after_the_idle_timeout(server):
    with connect(server.url) as sock:
        assert read_until_closed(sock) == b""


def test_half_sent_headers_are_closed_even_when_trickling(server):
    with connect(server.url) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for byte in b"X-Slow: 1234567890abcdefghij":  # up to ~6 s of trickle, 1 s timeout
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.2)
        assert closed or read_until_closed(sock) == b""


def test_a_half_sent_body_is_answered_408_and_closed(server, digits_model):
    _, X, _ = digits_model
    body = json.dumps({"instances": X[:1].tolist()}).encode()
    with connect(server.url) as sock:
        sock.sendall(predict_request(body[:10], length=len(body)))
        status, answer = status_and_body(read_until_closed(sock))
    assert status == 408
    assert "did not arrive within 1 s (--body-timeout)" in answer["error"]


def test_an_idle_keep_alive_connection_is_closed_after_its_answer(server, digits_model):
    _, X, _ = digits_model
    body = json.dumps({"instances": X[:1].tolist()}).encode()
    with connect(server.url) as sock:
        sock.sendall(predict_request(body))
        answer = read_until_closed(sock)  # the answer, then the close after 1 s idle
    assert answer.startswith(b"HTTP/1.1 200")


def test_connections_beyond_the_cap_get_a_clear_503_and_the_server_keeps_serving(
    servers, digits_path, digits_model
):
    _, X, _ = digits_model
    server = servers(
        "--model-path", digits_path, "--model-name", "digits", "--port", "0",
        "--max-connections", "3", "--replica-id", "digits-0",
    )  # fmt: skip
    body = json.dumps({"instances": X[:1].tolist()}).encode()
    held = [connect(server.url) for _ in range(3)]
    try:
        for sock in held:  # each served once and kept open
            sock.sendall(predict_request(body))
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        with connect(server.url) as extra:
            extra.sendall(predict_request(body))
            status, answer = status_and_body(read_until_closed(extra))
        assert status == 503
        assert answer["error"].startswith(
            "too many connections: this replica accepts at most 3 open connections "
            "(--max-connections)"
        )
        held.pop().close()  # one slot frees up
        deadline = time.monotonic() + SAFETY_S
        while True:
            with connect(server.url) as again:
                again.sendall(predict_request(body))
                reply = again.recv(65536)
            if reply.startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert reply.startswith(b"HTTP/1.1 200")
    finally:
        for sock in held:
            sock.close()


def test_the_soft_open_file_limit_is_raised_to_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.fail(f"this test needs a finite hard limit above 256; got {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        assert raise_open_file_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_cap_stays_below_the_file_limit():
    assert connection_cap(1000, 20000) == 1000
    assert connection_cap(1000, 1024) == 1024 - FILE_RESERVE
