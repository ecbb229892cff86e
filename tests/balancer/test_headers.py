from mltoolkit.balancer.headers import end_to_end, forwarded_request_headers, returned_response_headers


def test_hop_by_hop_and_connection_named_headers_are_dropped():
    headers = [
        (b"Connection", b"keep-alive, X-Hop"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"X-Hop", b"only for this connection"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
        (b"X-Replica", b"r1"),
    ]
    out = end_to_end(headers)
    # Connection, Keep-Alive, Transfer-Encoding are hop-by-hop by definition; X-Hop because the
    # sender listed it in Connection. Repeated end-to-end headers all survive, in order.
    assert out == [(b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2"), (b"X-Replica", b"r1")]
    assert returned_response_headers(headers) == out


def test_forwarded_request_headers():
    headers = [
        (b"Host", b"balancer:8000"),
        (b"Content-Length", b"12"),
        (b"Expect", b"100-continue"),
        (b"Proxy-Authorization", b"Basic secret"),
        (b"X-Forwarded-For", b"10.0.0.1"),
        (b"Content-Type", b"application/json"),
    ]
    out = dict(forwarded_request_headers(headers, client_ip="127.0.0.1", host=b"balancer:8000"))
    # Host and Content-Length are written again for the replica's connection; the client's proxy
    # credentials are never passed on; the client's address joins the X-Forwarded-For chain.
    assert b"Host" not in out and b"Content-Length" not in out and b"Expect" not in out
    assert b"Proxy-Authorization" not in out
    assert out[b"X-Forwarded-For"] == b"10.0.0.1, 127.0.0.1"
    assert out[b"X-Forwarded-Host"] == b"balancer:8000"
    assert out[b"X-Forwarded-Proto"] == b"http"
    assert out[b"Content-Type"] == b"application/json"


def test_returned_response_headers_drop_the_length():
    headers = [(b"Content-Length", b"3"), (b"Content-Encoding", b"gzip"), (b"X-Replica", b"r")]
    # The body is passed back as is (still gzip), with a length the balancer writes itself.
    assert returned_response_headers(headers) == [(b"Content-Encoding", b"gzip"), (b"X-Replica", b"r")]
