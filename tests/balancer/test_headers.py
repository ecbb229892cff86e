from multidict import CIMultiDict

from mltoolkit.balancer.headers import end_to_end, forwarded_request_headers, returned_response_headers


def test_hop_by_hop_and_connection_named_headers_are_dropped():
    headers = CIMultiDict(
        [
            ("Connection", "keep-alive, X-Hop"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("X-Hop", "only for this connection"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("X-Replica", "r1"),
        ]
    )
    out = end_to_end(headers)
    # Connection, Keep-Alive, Transfer-Encoding are hop-by-hop by definition; X-Hop because the
    # sender listed it in Connection. Repeated end-to-end headers all survive, in order.
    assert list(out.items()) == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Replica", "r1")]


def test_forwarded_request_headers():
    headers = CIMultiDict(
        [
            ("Host", "balancer:8000"),
            ("Content-Length", "12"),
            ("Expect", "100-continue"),
            ("Proxy-Authorization", "Basic secret"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("Content-Type", "application/json"),
        ]
    )
    out = forwarded_request_headers(headers, client_ip="127.0.0.1", host="balancer:8000", scheme="http")
    # Host and Content-Length are written again for the replica's connection; the client's proxy
    # credentials are never passed on; the client's address joins the X-Forwarded-For chain.
    assert "Host" not in out and "Content-Length" not in out and "Expect" not in out
    assert "Proxy-Authorization" not in out
    assert out["X-Forwarded-For"] == "10.0.0.1, 127.0.0.1"
    assert out["X-Forwarded-Host"] == "balancer:8000"
    assert out["X-Forwarded-Proto"] == "http"
    assert out["Content-Type"] == "application/json"


def test_returned_response_headers_drop_the_length():
    headers = CIMultiDict([("Content-Length", "3"), ("Content-Encoding", "gzip"), ("X-Replica", "r")])
    # The body is passed back as is (still gzip), with a length the balancer writes itself.
    assert dict(returned_response_headers(headers)) == {"Content-Encoding": "gzip", "X-Replica": "r"}
