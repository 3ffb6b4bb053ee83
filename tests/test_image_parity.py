"""Our local endpoint against the sklearn 1.2-1 image's own serving code.

The image's serving code (sagemaker-containers 2.8.6.post2 under gunicorn with gevent,
Flask 1.1.1, Werkzeug 0.15.6) runs in `.venv-image` (built by `make test`; Python 3.9
with numpy 1.24.1 and scikit-learn 1.2.1 as in the image when the machine has 3.9),
fed the very `sourcedir.tar.gz` the stack ships. Every request of
`tests/image_serving/corpus.jsonl` goes to both servers under three handlers: ours
(inference/), the guide's, and an echo handler that reports what the serving layer gave
it and returns every kind of result. Status, content type, headers and body must agree.
The image has nginx in front, which answers some paths itself; that part is checked
against the nginx.conf template the library ships.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from endpointctl.local import LocalEndpoint, free_port, wait_for_ping
from endpointctl.serving import unpack_model
from sagemaker_serving.bundle import source_bundle_bytes
from tests.conftest import ROOT
from tests.test_local_endpoint import ACCEPTS, BODIES, CONTENT_TYPES

pytestmark = pytest.mark.image
IMAGE_VENV = ROOT / ".venv-image"
IMAGE_SERVING = ROOT / "tests" / "image_serving"
CORPUS = IMAGE_SERVING / "corpus.jsonl"
HANDLERS = {
    "inference": ROOT / "inference" / "inference.py",
    "guide": IMAGE_SERVING / "guide_inference.py",
    "echo": IMAGE_SERVING / "echo_inference.py",
}
# Headers that say who answered and when, not what.
UNCOMPARED_HEADERS = {"date", "server", "connection", "keep-alive"}


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


@dataclass(frozen=True)
class NginxRule:
    """What the container's nginx does before a request reaches Flask, read from the
    template sagemaker-containers ships (etc/nginx.conf.template)."""

    proxied: re.Pattern
    status: int
    body: bytes
    content_type: str

    @classmethod
    def from_image(cls) -> "NginxRule":
        templates = list(IMAGE_VENV.glob("lib/python*/site-packages/sagemaker_containers/etc/nginx.conf.template"))
        assert templates, "sagemaker-containers' nginx.conf.template is not in .venv-image"
        text = templates[0].read_text()
        proxied = re.search(r"location ~ (\S+) \{\s*[^}]*proxy_pass", text)
        fallback = re.search(r'location / \{\s*return (\d+) "([^"]*)";', text)
        default_type = re.search(r"default_type (\S+);", text)
        assert proxied and fallback and default_type, "the nginx template changed; read it and update NginxRule"
        return cls(re.compile(proxied.group(1)), int(fallback.group(1)), fallback.group(2).encode(), default_type.group(1))

    def answer(self, path: str) -> Answer | None:
        if self.proxied.match(path.partition("?")[0]):
            return None
        return Answer(self.status, {"content-type": self.content_type, "content-length": str(len(self.body))}, self.body)


# ----------------------------------------------------------------------- servers


def start_image_server(model_archive: Path, code_archive: Path, workdir: Path) -> tuple[subprocess.Popen, str]:
    if not (IMAGE_VENV / "bin" / "gunicorn").exists():
        pytest.fail("the image's serving code is not installed: run `make test` (it builds .venv-image)")
    base = workdir / "opt" / "ml"
    unpack_model(model_archive, base / "model")
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_SUBMIT_DIRECTORY": str(code_archive),
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json",
    }
    python = str(IMAGE_VENV / "bin" / "python")
    subprocess.run([python, "-c", "import image_app; image_app.prepare()"], cwd=IMAGE_SERVING, env=env, check=True)
    port = free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [str(IMAGE_VENV / "bin" / "gunicorn"), "--timeout", "60", "-k", "gevent", "--pythonpath", str(IMAGE_SERVING),
         "-b", f"127.0.0.1:{port}", "-w", "1", "image_app:app"],
        cwd=IMAGE_SERVING, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_ping(url, timeout=60, process=process)
    return process, url


def code_archive_for(handler: Path, workdir: Path) -> Path:
    """The handler as SAGEMAKER_PROGRAM=inference.py in a sourcedir.tar.gz, built the way the stack builds it."""
    folder = handler.parent if handler.name == "inference.py" else workdir / "code-folder"
    if folder != handler.parent:
        folder.mkdir()
        (folder / "inference.py").write_text(handler.read_text())
    archive = workdir / "sourcedir.tar.gz"
    archive.write_bytes(source_bundle_bytes(folder))
    return archive


@dataclass
class Servers:
    handler: str
    image_url: str
    our_url: str
    nginx: NginxRule

    def image(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        return self.nginx.answer(path) or send(self.image_url, method, path, body, headers)

    def ours(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        return send(self.our_url, method, path, body, headers)


@pytest.fixture(scope="module", params=list(HANDLERS))
def servers(request, sample_model, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"image-{request.param}")
    code_archive = code_archive_for(HANDLERS[request.param], workdir)
    process, image_url = start_image_server(sample_model, code_archive, workdir)
    try:
        with LocalEndpoint(model_data=sample_model, code=code_archive, workers=1) as ours:
            yield Servers(request.param, image_url, ours.url, NginxRule.from_image())
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)


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


def test_the_guides_handler_answers_500_to_client_mistakes_in_the_image(sample_model, tmp_path):
    """Why our handler returns 4xx response objects: the guide's raises, and the image
    turns every exception into a 500 (ModelError for the caller, a 5XX alarm)."""
    code = code_archive_for(HANDLERS["guide"], tmp_path)
    process, url = start_image_server(sample_model, code, tmp_path)
    guide = next(r for r in CORPUS_REQUESTS if r.name == "the guide's request")
    try:
        assert send(url, "POST", "/invocations", guide.body, guide.headers).status == 200
        for name in ("malformed JSON", "three features (the guide's awscurl example)", "XML", "CSV in, CSV out"):
            r = next(r for r in CORPUS_REQUESTS if r.name == name)
            assert send(url, r.method, r.path, r.body, r.headers).status == 500, name
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)


def test_a_malformed_corpus_line_is_refused_with_where_and_why(tmp_path):
    bad = tmp_path / "corpus.jsonl"
    bad.write_text('{"name": "x", "status": 200, "bodyy": "1"}\n')
    with pytest.raises(ValueError, match=r"corpus.jsonl:1: unknown keys \['bodyy'\]"):
        load_corpus(bad)
    bad.write_text('{"name": "x", "status": 200, "body": "1", "json": {}}\n')
    with pytest.raises(ValueError, match="give one of"):
        load_corpus(bad)
