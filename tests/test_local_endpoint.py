"""`endpointctl serve` over real HTTP: gunicorn workers in a child process."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from endpointctl.local import LocalEndpoint

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
    (code / "inference.py").write_text((Path(__file__).parent / "image_serving" / "echo_inference.py").read_text())
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
