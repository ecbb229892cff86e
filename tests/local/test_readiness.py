import http.server
import threading

import pytest

from mltoolkit.local.readiness import Waiting, http_get_json, http_ok, wait_ready, wait_until
from mltoolkit.local.ports import free_ports


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/ok":
            body = b'{"up": true}'
            self.send_response(200)
        else:
            body = b"{}"
            self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_http_ok_only_for_200(server):
    assert http_ok(server + "/ok")
    assert not http_ok(server + "/starting")
    assert not http_ok(f"http://127.0.0.1:{free_ports(1)[0]}/ok")  # nothing listening
    assert http_get_json(server + "/ok") == {"up": True}


def test_wait_ready_reports_ready_exited_and_pending(server):
    seen = []
    result = wait_ready(
        {
            "a": Waiting(server + "/ok", lambda: None),
            "b": Waiting(server + "/starting", lambda: None),
        },
        timeout_s=0.3,
        on_ready=lambda name, elapsed: seen.append(name),
    )
    assert list(result.ready) == ["a"] and seen == ["a"]
    assert result.pending == ["b"]
    assert not result.ok


def test_wait_ready_stops_at_the_first_exit(server):
    result = wait_ready(
        {
            "crashed": Waiting(server + "/starting", lambda: 3),
            "slow": Waiting(server + "/starting", lambda: None),
        },
        timeout_s=60,  # a safety net: the exit ends the wait long before
    )
    assert result.exited == {"crashed": 3}
    assert result.pending == ["slow"]


def test_wait_until():
    values = iter([False, False, True])
    assert wait_until(lambda: next(values), timeout_s=30, interval_s=0.01)
    assert not wait_until(lambda: False, timeout_s=0.05, interval_s=0.01)


def test_a_liveness_check_counts_any_http_answer_and_only_that(tmp_path):
    import http.server
    import socket
    import threading

    from mltoolkit.local.readiness import http_answers

    class Draining(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Draining)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never answers: a hung process
    try:
        assert http_answers(f"http://127.0.0.1:{server.server_port}/v2/health/live")
        assert not http_answers(f"http://127.0.0.1:{silent.getsockname()[1]}/", timeout_s=0.2)
    finally:
        server.shutdown()
        silent.close()
