"""`endpointctl serve` over real HTTP: gunicorn workers in a child process."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from endpointctl.local import LocalEndpoint
from tests.conftest import ROOT

GOOD = json.dumps({"instances": [[0.5, 1.2, 0.3, 0.8, 0.1]]})


# Headers that say who answered and when, not what.
UNCOMPARED_HEADERS = {"date", "server", "connection", "keep-alive"}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def send(url: str, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        answer_headers = {k.lower(): v for k, v in response.getheaders() if k.lower() not in UNCOMPARED_HEADERS}
        if "allow" in answer_headers:  # Flask lists the methods from a set: the order varies per process
            answer_headers["allow"] = ", ".join(sorted(answer_headers["allow"].split(", ")))
        return Answer(response.status, answer_headers, response.read())
    finally:
        connection.close()


def request(url: str, method: str, path: str, body: bytes | str = b"", headers: dict | None = None):
    """(status, content type, body): what most tests look at."""
    answer = send(url, method, path, body.encode("utf-8") if isinstance(body, str) else body, headers or {})
    return answer.status, answer.headers.get("content-type", ""), answer.body


@pytest.fixture(scope="module")
def endpoint(sample_model):
    with LocalEndpoint(model_data=sample_model, workers=2) as running:
        yield running


def test_ping_is_200_once_the_model_is_loaded(endpoint):
    assert request(endpoint.url, "GET", "/ping")[0] == 200


def test_guide_request_over_http(endpoint):
    status, content_type, body = request(endpoint.url, "POST", "/invocations", GOOD, {"Content-Type": "application/json"})
    assert status == 200 and content_type.startswith("application/json")
    assert set(json.loads(body)) == {"predictions", "probabilities"}


def test_content_type_defaults_to_json_and_contenttype_header_wins(endpoint):
    assert request(endpoint.url, "POST", "/invocations", GOOD)[0] == 200
    status, content_type, body = request(
        endpoint.url, "POST", "/invocations", "1,2,3,4,5", {"ContentType": "text/csv", "Content-Type": "application/octet-stream", "Accept": "text/csv"}
    )
    assert status == 200 and content_type.startswith("text/csv") and body.count(b",") == 2


def test_client_errors_are_4xx_with_a_json_reason(endpoint):
    status, content_type, body = request(endpoint.url, "POST", "/invocations", '{"instances": [[0.5, 1.2, 0.3]]}',
                                         {"Content-Type": "application/json"})
    assert status == 400 and json.loads(body)["error"] == "each row must have 5 features; got 3"
    assert request(endpoint.url, "POST", "/invocations", "<x/>", {"Content-Type": "application/xml"})[0] == 415
    assert request(endpoint.url, "POST", "/invocations", GOOD, {"Accept": "image/png"})[0] == 406


def test_only_the_containers_routes(endpoint):
    assert request(endpoint.url, "GET", "/invocations")[0] == 405
    assert request(endpoint.url, "GET", "/metrics")[0] == 404


def test_a_handler_exception_is_a_500_with_the_traceback_in_the_server_log(sample_model, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text((ROOT / "tests" / "image_serving" / "echo_inference.py").read_text())
    with LocalEndpoint(model_data=sample_model, code=code) as running:
        status, content_type, body = request(running.url, "POST", "/invocations", "raise in predict_fn")
        log = running.stop()
    assert (status, content_type) == (500, "text/html") and b"Internal Server Error" in body
    assert "Traceback (most recent call last)" in log and "RuntimeError: raise in predict_fn" in log


def test_workers_come_from_sagemaker_model_server_workers(sample_model):
    with LocalEndpoint(model_data=sample_model, workers=0, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "3"}) as running:
        time.sleep(0.5)
        processes = subprocess.run(["ps", "-o", "pid=", "-g", str(running.process.pid)], capture_output=True, text=True)
        # serve (fetches, holds no model) + its sandboxed gunicorn master + 3 workers
        assert len(processes.stdout.split()) == 1 + 1 + 3


def test_a_broken_artifact_fails_before_listening(tmp_path):
    from endpointctl.errors import CommandError

    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"PK\x03\x04 not a tarball")
    with pytest.raises(CommandError, match="not a gzip tar"):
        with LocalEndpoint(model_data=bad, startup_timeout=30):
            pass


CONTENT_TYPES = st.sampled_from(
    ["application/json", "text/csv", "text/csv; charset=utf-8", "application/json; charset=latin-1",
     "application/xml", "", "text/csv; charset=nope"]
)
ACCEPTS = st.sampled_from(["application/json", "text/csv", "*/*", "", "image/png", "text/*"])
JSON_ISH = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.sampled_from(["instances", "x"]), children, max_size=2),
    max_leaves=30,
)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    JSON_ISH.map(json.dumps),
    st.lists(st.lists(st.sampled_from(["1", "0.5", "-2e3", "", "nan", "x", " ", "inf", "1e400"]), max_size=7), max_size=5)
    .map(lambda rows: "\n".join(",".join(r) for r in rows)),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(body=BODIES, content_type=CONTENT_TYPES, accept=ACCEPTS)
def test_malformed_bodies_never_crash_the_server(endpoint, body, content_type, accept):
    headers = {"Accept": accept}
    if content_type:
        headers["Content-Type"] = content_type
    data = body.encode("utf-8") if isinstance(body, str) else body
    status, _, payload = request(endpoint.url, "POST", "/invocations", data, headers)
    assert status in (200, 400, 406, 413, 415), (status, payload[:200])
    if status != 200:
        assert json.loads(payload)["error"]


def test_still_answers_a_good_request_after_the_fuzzing(endpoint):
    # Runs after the property test in file order: the workers survived it.
    assert request(endpoint.url, "POST", "/invocations", GOOD, {"Content-Type": "application/json"})[0] == 200
    assert endpoint.process.poll() is None


def test_serve_help_answers():
    result = subprocess.run([os.sys.executable, "-m", "endpointctl", "serve", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "SAGEMAKER_MODEL_SERVER_WORKERS" in result.stdout


# ------------------------------------------------------------- hostile clients


def open_slow_connections(port: int, count: int) -> list[socket.socket]:
    """Connections that never finish: silent, a header cut half-way, a body shorter than
    its Content-Length. Two of these stopped a server with two sync workers."""
    partial = [b"", b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Le",
               b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\n\r\n1,2,"]
    connections = []
    for i in range(count):
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(partial[i % len(partial)])
        connections.append(connection)
    return connections


def test_slow_and_idle_clients_do_not_starve_it(endpoint):
    connections = open_slow_connections(endpoint.port, 100)
    try:
        started = time.monotonic()
        with urllib.request.urlopen(f"{endpoint.url}/ping", timeout=5) as response:
            assert response.status == 200
        assert request(endpoint.url, "POST", "/invocations", GOOD, {"Content-Type": "application/json"})[0] == 200
        assert time.monotonic() - started < 5
    finally:
        for connection in connections:
            connection.close()


def raw_exchange(port: int, data: bytes, *, timeout: float = 5) -> bytes:
    """Send bytes as they are; what came back before the server closed or went quiet."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.settimeout(timeout)
        connection.sendall(data)
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
                connection.settimeout(0.5)
        except (TimeoutError, ConnectionResetError):  # quiet, or closed with our bytes unread
            pass
    return answer


def test_a_declared_body_over_the_limit_is_413_before_it_is_read(endpoint):
    """Only the headers are sent: the answer cannot have waited for 400 MB."""
    answer = raw_exchange(endpoint.port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                                         b"Content-Length: 400000000\r\n\r\n1,2,3")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert json.loads(body) == {"error": "body is 400000000 bytes; the limit is 6291456 bytes", "status": 413}


def test_a_body_over_the_limit_sent_in_full_still_gets_its_413(endpoint):
    """The unread rest is read and dropped after the answer, so a client still sending
    sees the 413, not a reset connection."""
    status, _, body = request(endpoint.url, "POST", "/invocations", b"1,2,3,4,5\n" * 1_000_000, {"Content-Type": "text/csv"})
    assert status == 413 and b"body is 10000000 bytes" in body


# Malformed HTTP that the container's nginx answers 400 (tests/handler/test_image_parity.py
# compares these with nginx itself).
MALFORMED_HTTP = {
    "a garbage request line": b"\x01\x02garbage\r\n\r\n",
    "HTTP/1.1 without Host": b"GET /ping HTTP/1.1\r\n\r\n",
    "a target without a leading slash": b"GET ping HTTP/1.1\r\nHost: x\r\n\r\n",
    "an asterisk target": b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    "a bad percent escape": b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
    "a percent-encoded NUL": b"GET /ping%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    "a dot segment above the root": b"GET /../ping HTTP/1.1\r\nHost: x\r\n\r\n",
    "a chunk size that is not hex": b"POST /invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "a chunk size past 2**63": b"POST /invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"ffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    "a chunk without its CRLF": b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n9\r\n1,2,3,4,5XX0\r\n\r\n",
    "Transfer-Encoding and Content-Length": b"POST /invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                            b"Content-Length: 3\r\n\r\n0\r\n\r\n",
    "two Content-Lengths": b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "a negative Content-Length": b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "a space in a header name": b"GET /ping HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    "a folded header": b"GET /ping HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
    "a NUL in a header": b"GET /ping HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
    "a lower-case method": b"get /ping HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", list(MALFORMED_HTTP))
def test_malformed_http_is_a_400_as_nginx_answers_it(endpoint, name):
    assert raw_exchange(endpoint.port, MALFORMED_HTTP[name]).startswith(b"HTTP/1.1 400 "), name


def test_a_script_name_header_is_ignored_as_nginx_ignores_it(endpoint):
    """gunicorn would take it as the mount point (a 500); nginx drops underscored names."""
    assert raw_exchange(endpoint.port, b"GET /ping HTTP/1.1\r\nHost: x\r\nSCRIPT_NAME: /foo\r\n\r\n").startswith(b"HTTP/1.1 200 ")


# ------------------------------------------------------------- the temp folder


def serve_in(tmp: Path, model_data: Path, port: int) -> subprocess.Popen:
    """`endpointctl serve` with its own temp directory, to see what it leaves there."""
    tmp.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "endpointctl", "serve", "--model-data", str(model_data),
                             "--port", str(port), "--workers", "1"],
                            env={**os.environ, "TMPDIR": str(tmp)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGTERM while starting", "SIGINT while starting"])
def test_serve_removes_its_temp_folder_when_stopped(sample_model, tmp_path, how):
    """Stopped when serving or while starting (the model loading, gunicorn forking its
    worker): it stops well within gunicorn's 30 s graceful timeout, with no traceback,
    and leaves nothing in its temp folder."""
    from endpointctl.local import free_port, wait_for_ping

    port = free_port()
    process = serve_in(tmp_path / "tmp", sample_model, port)
    try:
        if how.endswith("while starting"):
            time.sleep(0.5)
        else:
            wait_for_ping(f"http://127.0.0.1:{port}", timeout=60, process=process)
        process.send_signal(signal.SIGINT if how.startswith("SIGINT") else signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in stderr
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_child_starts_is_passed_on_once_it_exists(signum):
    """The signal arrives before the child exists (here: sent by `start` itself, before
    it starts the child); it reaches the child, and the exit code says which it was."""
    from endpointctl.local import _run_forwarding_signals

    def start() -> subprocess.Popen:
        os.kill(os.getpid(), signum)  # handled at once, with no child to pass it to yet
        return subprocess.Popen(["sleep", "30"])

    started = time.monotonic()
    assert _run_forwarding_signals(start) == 128 + signum
    assert time.monotonic() - started < 10
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_serve_removes_its_temp_folder_on_an_error(sample_model, tmp_path):
    truncated = tmp_path / "model.tar.gz"
    truncated.write_bytes(sample_model.read_bytes()[:-100])
    from endpointctl.local import free_port

    process = serve_in(tmp_path / "tmp", truncated, free_port())
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stderr.strip().splitlines() == [stderr.strip()] and "truncated or corrupt" in stderr
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_workers_entry_point_look_ups_answer_as_importlib_does():
    """The worker reads the installed distributions once while gevent patches (its ~25
    plugin look-ups); each look-up answers as importlib.metadata would, and the function
    is back afterwards."""
    from importlib import metadata

    from serving_runtime.container import _entry_points_read_once

    original = metadata.entry_points
    expected = {group: sorted(original(group=group), key=str) for group in ("console_scripts", "pytest11", "no-such-group")}
    with _entry_points_read_once():
        assert metadata.entry_points is not original
        for group, entries in expected.items():
            assert sorted(metadata.entry_points(group=group), key=str) == entries
    assert metadata.entry_points is original
    assert expected["console_scripts"] and expected["no-such-group"] == []
