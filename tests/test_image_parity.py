"""Our local endpoint against the sklearn 1.2-1 image's own serving code.

The image's serving code (sagemaker-containers 2.8.6.post2 under gunicorn, Flask 1.1.1,
Werkzeug 0.15.6) runs in `.venv-image` (built by `make test`; Python 3.9 with numpy
1.24.1 and scikit-learn 1.2.1 as in the image when the machine has 3.9), fed the very
`sourcedir.tar.gz` the stack ships. The same requests go to both servers; status,
content type and body must agree. This is what "serves the handler as SageMaker
would" means, checked rather than assumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from endpointctl.local import LocalEndpoint, free_port, wait_for_ping
from endpointctl.serving import unpack_model
from sagemaker_serving.bundle import source_bundle_bytes
from tests.conftest import ROOT
from tests.test_local_endpoint import request

pytestmark = pytest.mark.image
IMAGE_VENV = ROOT / ".venv-image"
GUIDE = {"instances": [[0.5, 1.2, 0.3, 0.8, 0.1], [-0.2, 0.7, 1.1, 0.4, 0.6]]}


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
    here = ROOT / "tests" / "image_serving"
    python = str(IMAGE_VENV / "bin" / "python")
    subprocess.run([python, "-c", "import image_app; image_app.prepare()"], cwd=here, env=env, check=True)
    port = free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [str(IMAGE_VENV / "bin" / "gunicorn"), "--timeout", "60", "-k", "gevent", "--pythonpath", str(here),
         "-b", f"127.0.0.1:{port}", "-w", "1", "image_app:app"],
        cwd=here, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_ping(url, timeout=60, process=process)
    return process, url


@pytest.fixture(scope="module")
def servers(sample_model, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("image")
    code_archive = workdir / "sourcedir.tar.gz"
    code_archive.write_bytes(source_bundle_bytes(ROOT / "inference"))
    process, image_url = start_image_server(sample_model, code_archive, workdir)
    try:
        with LocalEndpoint(model_data=sample_model, code=code_archive, workers=1) as ours:
            yield image_url, ours.url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)


CASES = {
    "guide JSON": ("POST", "/invocations", json.dumps(GUIDE), {"Content-Type": "application/json"}),
    "guide JSON, Accept */*": ("POST", "/invocations", json.dumps(GUIDE), {"Content-Type": "application/json", "Accept": "*/*"}),
    "no content type": ("POST", "/invocations", json.dumps(GUIDE), {}),
    "CSV in, CSV out": ("POST", "/invocations", "0.5,1.2,0.3,0.8,0.1\n-0.2,0.7,1.1,0.4,0.6", {"Content-Type": "text/csv", "Accept": "text/csv"}),
    "one CSV line": ("POST", "/invocations", "0.5,1.2,0.3,0.8,0.1", {"Content-Type": "text/csv", "Accept": "text/csv"}),
    "CSV with charset (bytes)": ("POST", "/invocations", "1,2,3,4,5", {"Content-Type": "text/csv; charset=utf-8", "Accept": "text/csv"}),
    "ContentType header wins": ("POST", "/invocations", "1,2,3,4,5", {"ContentType": "text/csv", "Content-Type": "application/octet-stream"}),
    "malformed JSON": ("POST", "/invocations", '{"instances": [[0.5', {"Content-Type": "application/json"}),
    "three features (the guide's awscurl)": ("POST", "/invocations", '{"instances": [[0.5, 1.2, 0.3]]}', {"Content-Type": "application/json"}),
    "invalid UTF-8": ("POST", "/invocations", b"\x80\xff", {"Content-Type": "application/json"}),
    "application/xml": ("POST", "/invocations", "<x/>", {"Content-Type": "application/xml"}),
    "Accept image/png": ("POST", "/invocations", json.dumps(GUIDE), {"Content-Type": "application/json", "Accept": "image/png"}),
    "NaN": ("POST", "/invocations", '{"instances": [[NaN, 1, 1, 1, 1]]}', {"Content-Type": "application/json"}),
    "ping": ("GET", "/ping", b"", {}),
    "GET /invocations": ("GET", "/invocations", b"", {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_answer_as_the_image(servers, case):
    image_url, our_url = servers
    method, path, body, headers = CASES[case]
    image = request(image_url, method, path, body, headers)
    ours = request(our_url, method, path, body, headers)
    assert ours[0] == image[0], f"status: ours {ours[0]}, image {image[0]}"
    if image[0] in (405, 500):  # both HTML error pages; the wording is the framework's
        return
    assert ours[1].split(";")[0] == image[1].split(";")[0]
    assert ours[2] == image[2]


def test_the_guides_handler_answers_500_to_client_mistakes_in_the_image(sample_model, tmp_path):
    """Why our handler returns 4xx response objects: the guide's raises, and the image
    turns every exception into a 500 (ModelError for the caller, a 5XX alarm)."""
    guide_handler = tmp_path / "guide"
    guide_handler.mkdir()
    (guide_handler / "inference.py").write_text((ROOT / "tests" / "image_serving" / "guide_inference.py").read_text())
    code = tmp_path / "sourcedir.tar.gz"
    code.write_bytes(source_bundle_bytes(guide_handler))
    process, url = start_image_server(sample_model, code, tmp_path)
    try:
        assert request(url, "POST", "/invocations", json.dumps(GUIDE), {"Content-Type": "application/json"})[0] == 200
        assert request(url, "POST", "/invocations", '{"instances": [[0.5', {"Content-Type": "application/json"})[0] == 500
        assert request(url, "POST", "/invocations", "1,2,3,4,5", {"Content-Type": "text/csv"})[0] == 500
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
