"""Our local endpoint against the sklearn 1.2-1 image's own serving code.

The image's serving code (sagemaker-containers 2.8.6.post2 under gunicorn with gevent,
Flask 1.1.1, Werkzeug 0.15.6) runs in `.venv-image` (built by `make test`; Python 3.9
with numpy 1.24.1 and scikit-learn 1.2.1 as in the image when the machine has 3.9),
fed the very `sourcedir.tar.gz` the stack ships. Every request of
`tests/image_serving/corpus.jsonl` goes to both servers under three handlers: ours
(inference/), the guide's, and an echo handler that reports what the serving layer gave
it and returns every kind of result. Status, content type, headers and body must agree.
The image side runs as the image runs it: nginx (Debian's, unpacked into .tools/ by
`make test`) configured from the library's own template, in front of gunicorn on a
unix socket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from endpointctl.local import LocalEndpoint
from tests.conftest import ROOT
from tests.image_serving.image_stack import code_archive_for, start_image_server
from tests.local.test_local_endpoint import ACCEPTS, BODIES, CONTENT_TYPES, MALFORMED_HTTP, Answer, raw_exchange, send

pytestmark = pytest.mark.image
IMAGE_SERVING = ROOT / "tests" / "image_serving"
CORPUS = IMAGE_SERVING / "corpus.jsonl"
HANDLERS = {
    "inference": ROOT / "inference" / "inference.py",
    "guide": IMAGE_SERVING / "guide_inference.py",
    "echo": IMAGE_SERVING / "echo_inference.py",
}


# ------------------------------------------------------------------------ corpus


@dataclass(frozen=True)
class CorpusRequest:
    name: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what our handler must answer

    KEYS = frozenset({"name", "why", "method", "path", "headers", "body", "json", "body_hex", "body_repeat", "status"})
    BODY_KEYS = ("body", "json", "body_hex", "body_repeat")

    @classmethod
    def parse(cls, where: str, entry: dict) -> "CorpusRequest":
        unknown = set(entry) - cls.KEYS
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(cls.KEYS)}")
        bodies = [key for key in cls.BODY_KEYS if key in entry]
        if len(bodies) > 1:
            raise ValueError(f"{where}: give one of {', '.join(cls.BODY_KEYS)}, not {' and '.join(bodies)}")
        if "body" in entry:
            body = entry["body"].encode("utf-8")
        elif "json" in entry:
            body = json.dumps(entry["json"]).encode("utf-8")
        elif "body_hex" in entry:
            body = bytes.fromhex(entry["body_hex"])
        elif "body_repeat" in entry:
            body = b"".join(text.encode("utf-8") * times for text, times in entry["body_repeat"])
        else:
            body = b""
        if not isinstance(entry.get("status"), int):
            raise ValueError(f"{where}: `status` (what inference/ must answer) is missing or not a number")
        return cls(name=entry["name"], method=entry.get("method", "POST"), path=entry.get("path", "/invocations"),
                   headers=dict(entry.get("headers", {})), body=body, status=entry["status"])


def load_corpus(path: Path = CORPUS) -> list[CorpusRequest]:
    requests = [CorpusRequest.parse(f"{path.name}:{number}", json.loads(line))
                for number, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    names = [r.name for r in requests]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path.name}: names must be unique; repeated: {duplicates}")
    return requests


CORPUS_REQUESTS = load_corpus()


# ----------------------------------------------------------------------- answers


# ----------------------------------------------------------------------- servers


@dataclass
class Servers:
    handler: str
    image_url: str
    our_url: str

    def image(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        return send(self.image_url, method, path, body, headers)

    def ours(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        return send(self.our_url, method, path, body, headers)


@pytest.fixture(scope="module", params=list(HANDLERS))
def servers(request, sample_model, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"image-{request.param}")
    code_archive = code_archive_for(HANDLERS[request.param], workdir)
    image = start_image_server(sample_model, code_archive, workdir)
    try:
        with LocalEndpoint(model_data=sample_model, code=code_archive, workers=1,
                           env={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json"}) as ours:
            yield Servers(request.param, image.url, ours.url)
    finally:
        image.stop()


# ------------------------------------------------------------------------- tests


@pytest.mark.parametrize("corpus_request", CORPUS_REQUESTS, ids=[r.name for r in CORPUS_REQUESTS])
def test_same_answer_as_the_image(servers, corpus_request):
    r = corpus_request
    image = servers.image(r.method, r.path, r.body, r.headers)
    ours = servers.ours(r.method, r.path, r.body, r.headers)
    assert ours == image
    if servers.handler == "inference":
        assert ours.status == r.status, ours.body[:300]
        if 400 <= ours.status < 500 and r.method == "POST" and r.path.partition("?")[0] == "/invocations":
            assert json.loads(ours.body)["error"]  # a reason the caller can act on


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES, content_type=CONTENT_TYPES, accept=ACCEPTS)
def test_same_answer_to_generated_requests(servers, body, content_type, accept):
    headers = {"Accept": accept, **({"Content-Type": content_type} if content_type else {})}
    data = body.encode("utf-8") if isinstance(body, str) else body
    assert servers.ours("POST", "/invocations", data, headers) == servers.image("POST", "/invocations", data, headers)


@pytest.mark.parametrize("handler", ["echo", "inference"])
def test_the_default_accept_comes_from_the_environment_on_both(sample_model, tmp_path, handler):
    code = code_archive_for(HANDLERS[handler], tmp_path)
    image = start_image_server(sample_model, code, tmp_path, default_accept="text/csv")
    try:
        with LocalEndpoint(model_data=sample_model, code=code, env={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}) as ours:
            for accept in (None, "", "*/*", "application/json"):
                headers = {"Content-Type": "text/csv", **({"Accept": accept} if accept is not None else {})}
                body = b"0.5,1.2,0.3,0.8,0.1"
                answer = send(ours.url, "POST", "/invocations", body, headers)
                assert answer == send(image.url, "POST", "/invocations", body, headers), accept
                if handler == "inference":
                    wanted = "application/json" if accept == "application/json" else "text/csv; charset=utf-8"
                    assert answer.headers["content-type"] == wanted, accept
    finally:
        image.stop()


def test_the_guides_handler_answers_500_to_client_mistakes_in_the_image(sample_model, tmp_path):
    """Why our handler returns 4xx response objects: the guide's raises, and the image
    turns every exception into a 500 (ModelError for the caller, a 5XX alarm)."""
    code = code_archive_for(HANDLERS["guide"], tmp_path)
    image = start_image_server(sample_model, code, tmp_path)
    guide = next(r for r in CORPUS_REQUESTS if r.name == "the guide's request")
    try:
        assert send(image.url, "POST", "/invocations", guide.body, guide.headers).status == 200
        for name in ("malformed JSON", "three features (the guide's awscurl example)", "XML", "CSV in, CSV out"):
            r = next(r for r in CORPUS_REQUESTS if r.name == name)
            assert send(image.url, r.method, r.path, r.body, r.headers).status == 500, name
    finally:
        image.stop()


def test_a_malformed_corpus_line_is_refused_with_where_and_why(tmp_path):
    bad = tmp_path / "corpus.jsonl"
    bad.write_text('{"name": "x", "status": 200, "bodyy": "1"}\n')
    with pytest.raises(ValueError, match=r"corpus.jsonl:1: unknown keys \['bodyy'\]"):
        load_corpus(bad)
    bad.write_text('{"name": "x", "status": 200, "body": "1", "json": {}}\n')
    with pytest.raises(ValueError, match="give one of"):
        load_corpus(bad)


# ------------------------------------------------------------- malformed HTTP


def status_of(answer: bytes) -> str:
    """The status code, or what happened instead."""
    if not answer:
        return "closed or silent"
    return answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "not HTTP"


# Where nginx and the local endpoint answer malformed HTTP differently (README, "Where the
# local endpoint differs"): (nginx, ours). Every other request here gets the same status.
MALFORMED_DIFFERENCES = {
    "bare line feeds": (b"GET /ping HTTP/1.1\nHost: x\n\n", ("200", "closed or silent")),
    "a header line without a colon": (b"GET /ping HTTP/1.1\r\nHost: x\r\nBadHeader\r\n\r\n", ("200", "400")),
    "two spaces in the request line": (b"GET  /ping HTTP/1.1\r\nHost: x\r\n\r\n", ("200", "400")),
    "HTTP/2.0 in the request line": (b"GET /ping HTTP/2.0\r\nHost: x\r\n\r\n", ("505", "400")),
    "an unknown Transfer-Encoding": (b"POST /invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", ("501", "400")),
    "a 20 kB header": (b"GET /ping HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n", ("400", "431")),
    "a 10 kB URI": (b"GET /ping?" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", ("414", "400")),
    "a Content-Length past 2**64": (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                                    ("400", "413")),
}


def test_malformed_http_gets_nginxs_status(servers):
    if servers.handler != "inference":
        pytest.skip("nginx and gunicorn answer these before any handler runs")
    image_port, our_port = (int(url.rsplit(":", 1)[1]) for url in (servers.image_url, servers.our_url))
    for name, data in {**MALFORMED_HTTP, "a SCRIPT_NAME header": b"GET /ping HTTP/1.1\r\nHost: x\r\nSCRIPT_NAME: /foo\r\n\r\n"}.items():
        assert status_of(raw_exchange(our_port, data)) == status_of(raw_exchange(image_port, data)), name
    for name, (data, (nginx, ours)) in MALFORMED_DIFFERENCES.items():
        assert (status_of(raw_exchange(image_port, data)), status_of(raw_exchange(our_port, data))) == (nginx, ours), name
