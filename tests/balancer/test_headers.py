from mltoolkit.balancer.headers import end_to_end, forwarded_request_head, returned_response_head


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
    assert returned_response_head(headers) == b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Replica: r1\r\n"
    # The same for a request, with the forwarding headers added.
    assert forwarded_request_head(headers, None, None) == (
        b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Replica: r1\r\nX-Forwarded-Proto: http\r\n"
    )


def test_forwarded_request_headers():
    headers = [
        (b"Host", b"balancer:8000"),
        (b"Content-Length", b"12"),
        (b"Expect", b"100-continue"),
        (b"Proxy-Authorization", b"Basic secret"),
        (b"X-Forwarded-For", b"10.0.0.1"),
        (b"Content-Type", b"application/json"),
    ]
    head = forwarded_request_head(headers, client_ip="127.0.0.1", host=b"balancer:8000")
    assert head.endswith(b"\r\n")
    out = dict(line.split(b": ", 1) for line in head[:-2].split(b"\r\n"))
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
    assert returned_response_head(headers) == b"Content-Encoding: gzip\r\nX-Replica: r\r\n"


def test_a_request_header_named_in_connection_is_not_forwarded():
    headers = [(b"Connection", b"X-Hop"), (b"X-Hop", b"this hop"), (b"X-Keep", b"1")]
    head = forwarded_request_head(headers, client_ip=None, host=None)
    assert head == b"X-Keep: 1\r\nX-Forwarded-Proto: http\r\n"
