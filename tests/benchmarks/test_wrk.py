"""benchmarks/peers/wrk.py: the command line, the report line, and one real run of wrk."""

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from peers.wrk import LUA, WrkError, parse_wrk_report, run_wrk, wrk_command

OUTPUT = """Running 10s test @ http://127.0.0.1:8080/predict
  1 threads and 32 connections
  Latency Distribution
     50%    4.20ms
     99%    5.71ms
  74300 requests in 10.00s, 9.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   7430.00
WRK_REPORT {"duration_us": 10000000, "requests": 74300, "bytes": 9000000, "errors_connect": 1, "errors_read": 2, "errors_write": 0, "errors_status": 3, "errors_timeout": 4, "latency_mean_us": 4300.5, "latency_max_us": 20000, "latency_p50_us": 4200, "latency_p90_us": 5000, "latency_p99_us": 5710}
"""


def test_the_report_line_gives_exact_numbers_in_milliseconds():
    result = parse_wrk_report(OUTPUT)
    assert result.requests == 74300 and result.duration_s == 10.0
    assert result.requests_per_s == pytest.approx(7430.0)
    assert (result.p50_ms, result.p90_ms, result.p99_ms) == (4.2, 5.0, 5.71)
    assert result.mean_ms == pytest.approx(4.3005) and result.max_ms == 20.0
    # status errors (HTTP >= 400) apart from socket errors (connect 1 + read 2 + timeout 4)
    assert (result.status_errors, result.socket_errors, result.errors) == (3, 7, 10)


def test_output_without_a_report_line_is_an_error_that_shows_the_output():
    with pytest.raises(WrkError, match="(?s)no WRK_REPORT line.*Requests/sec"):
        parse_wrk_report(OUTPUT.replace("WRK_REPORT", "SOMETHING"))


def test_the_command_pins_wrk_and_uses_the_report_script():
    command = wrk_command("http://127.0.0.1:9/predict", 32, 20, cpu=0)
    assert command[:3] == ["taskset", "-c", "0"]
    assert command[3:] == ["wrk", "-t1", "-c32", "-d20s", "--timeout", "10s", "--latency",
                           "-s", str(LUA), "http://127.0.0.1:9/predict"]  # fmt: skip
    assert wrk_command("http://x", 8, 3, cpu=None)[0] == "wrk"


@pytest.mark.parametrize("duration", [0, 2.5])
def test_wrk_durations_are_whole_seconds(duration):
    with pytest.raises(ValueError, match="whole number of seconds"):
        wrk_command("http://x", 8, duration)


def test_fewer_connections_than_threads_is_refused():
    with pytest.raises(ValueError, match="connections"):
        wrk_command("http://x", 1, 5, threads=2)


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(("POST", self.headers["Content-Type"], body))
        self._answer(500 if body == b"fail" else 200)

    def do_GET(self):
        self.seen.append(("GET", None, b""))
        self._answer(200)

    def _answer(self, status):
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_a_real_wrk_run_posts_the_body_file_and_counts_error_statuses(recorder, tmp_path):
    url, seen = recorder
    body = tmp_path / "body.json"
    body.write_bytes(b'{"instances": [[1, 2]]}')
    result = run_wrk(url + "/predict", 2, 1, body_file=body, cpu=None)
    assert result.requests > 0 and len(seen) >= result.requests  # every answer had a request
    assert set(seen) == {("POST", "application/json", b'{"instances": [[1, 2]]}')}
    assert result.status_errors == 0 and 0 < result.p50_ms <= result.p99_ms

    body.write_bytes(b"fail")
    failing = run_wrk(url + "/predict", 2, 1, body_file=body, cpu=None)
    assert failing.requests > 0 and failing.status_errors == failing.requests

    seen.clear()
    assert run_wrk(url + "/get", 2, 1, body_file=None, cpu=None).requests > 0
    assert {method for method, _, _ in seen} == {"GET"}
