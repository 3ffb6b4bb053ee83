"""Start the sklearn 1.2-1 image's serving stack outside Docker, the way
`sagemaker_containers._server.start` runs it: nginx (Debian's, in .tools/nginx) from the
library's own template in front of gunicorn 20.0.4 with gevent workers on a unix socket,
serving `image_app.py` on .venv-image's Python. Used by tests/handler/test_image_parity.py and
bench/image_serving.py (see README.md beside this file)."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from endpointctl.local import free_port, wait_for_ping
from serving_runtime.archive import unpack_model
from serving_runtime.bundle import source_bundle_bytes

ROOT = Path(__file__).resolve().parent.parent.parent
IMAGE_VENV = ROOT / ".venv-image"
IMAGE_SERVING = ROOT / "tests" / "image_serving"
NGINX_DIR = ROOT / ".tools" / "nginx"


class ImageStackMissing(RuntimeError):
    """.venv-image or .tools/nginx is not there (`make test` builds both)."""


@dataclass
class ImageContainer:
    """The image's serving stack as `sagemaker_containers._server.start` runs it: nginx
    from the library's template in front of gunicorn (gevent) on a unix socket."""

    url: str
    processes: list[subprocess.Popen]
    log: object

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=15)


def nginx_config(rendered: str, run_dir: Path) -> str:
    """The rendered template with this machine's paths in place of the image's absolute
    ones (socket, pid, mime.types, nginx's temp folders); nothing else changes."""
    mime_types = NGINX_DIR / "etc" / "nginx" / "mime.types"
    config = (rendered.replace("unix:/tmp/gunicorn.sock", f"unix:{run_dir / 'gunicorn.sock'}")
              .replace("/tmp/nginx.pid", str(run_dir / "nginx.pid"))
              .replace("/etc/nginx/mime.types", str(mime_types)))
    temp_paths = "".join(f"  {kind}_temp_path {run_dir / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    config = config.replace("http {\n", "http {\n" + temp_paths, 1)
    if os.geteuid() == 0:  # as root nginx would run its workers as nobody, who cannot reach run_dir
        config = "user root;\n" + config
    return config


def start_image_server(model_archive: Path, code_archive: Path, workdir: Path, *,
                       default_accept: str = "application/json", workers: int = 1,
                       poll_interval: float = 0.05) -> ImageContainer:
    for needed, how in ((IMAGE_VENV / "bin" / "gunicorn", "the image's serving code"), (NGINX_DIR / "usr" / "sbin" / "nginx", "nginx")):
        if not needed.exists():
            raise ImageStackMissing(f"{how} is not installed: run `make test` (it builds .venv-image and .tools/nginx)")
    base = workdir / "opt" / "ml"
    unpack_model(model_archive, base / "model")
    port = free_port()
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_SUBMIT_DIRECTORY": str(code_archive),
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": default_accept,
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "60",
    }
    python = str(IMAGE_VENV / "bin" / "python")
    run_dir = workdir / "run"
    run_dir.mkdir()
    rendered = run_dir / "sagemaker-nginx.conf.rendered"
    subprocess.run([python, "-c", f"import image_app; image_app.prepare(); image_app.render_nginx_config({str(rendered)!r})"],
                   cwd=IMAGE_SERVING, env=env, check=True, capture_output=True)
    config = run_dir / "sagemaker-nginx.conf"
    config.write_text(nginx_config(rendered.read_text(), run_dir))
    log = tempfile.TemporaryFile()
    gunicorn = subprocess.Popen(  # server.start's command line
        [str(IMAGE_VENV / "bin" / "gunicorn"), "--timeout", "60", "-k", "gevent", "--pythonpath", str(IMAGE_SERVING),
         "-b", f"unix:{run_dir / 'gunicorn.sock'}", "--worker-connections", "1000", "-w", str(workers), "--log-level", "info",
         "image_app:app"],
        cwd=IMAGE_SERVING, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    nginx = subprocess.Popen([str(NGINX_DIR / "usr" / "sbin" / "nginx"), "-c", str(config), "-p", str(run_dir)],
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    container = ImageContainer(f"http://127.0.0.1:{port}", [nginx, gunicorn], log)
    try:
        wait_for_ping(container.url, timeout=60, process=gunicorn, poll_interval=poll_interval)
    except Exception:
        container.stop()
        log.seek(0)
        raise AssertionError(log.read().decode(errors="replace")[-3000:]) from None
    return container


def code_archive_for(handler: Path, workdir: Path) -> Path:
    """The handler as SAGEMAKER_PROGRAM=inference.py in a sourcedir.tar.gz, built the way the stack builds it."""
    folder = handler.parent if handler.name == "inference.py" else workdir / "code-folder"
    if folder != handler.parent:
        folder.mkdir()
        (folder / "inference.py").write_text(handler.read_text())
    archive = workdir / "sourcedir.tar.gz"
    archive.write_bytes(source_bundle_bytes(folder))
    return archive
