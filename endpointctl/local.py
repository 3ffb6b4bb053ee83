"""Run the local endpoint: in this process (`serve`) or as a child (`LocalEndpoint`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from endpointctl.errors import CommandError
from serving_runtime.archive import prepare_code, unpack_model
from serving_runtime.container import InvocationsApp, ServerSettings, run_gunicorn
from serving_runtime.loader import load_handler


def fetch(location: str, workdir: Path, name: str) -> Path:
    """A local path as it is; an s3:// object downloaded (honours AWS_ENDPOINT_URL)."""
    if not location.startswith("s3://"):
        return Path(location)
    import boto3

    bucket, _, key = location.removeprefix("s3://").partition("/")
    target = workdir / name
    boto3.client("s3").download_file(bucket, key, str(target))
    return target


def serve_forever(
    *,
    model_data: str,
    code: str,
    program: str,
    host: str,
    port: int,
    workers: int | None,
    timeout: int | None,
) -> None:
    settings = ServerSettings.from_environment(host=host, port=port, workers=workers, timeout=timeout)
    workdir = Path(tempfile.mkdtemp(prefix="endpointctl-serve-"))
    model_archive = fetch(model_data, workdir, "model.tar.gz")
    code_source = fetch(code, workdir, "sourcedir.tar.gz")
    model_dir = unpack_model(model_archive, workdir / "model")
    code_dir = prepare_code(code_source, workdir)
    default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")

    def build_app() -> InvocationsApp:
        handler = load_handler(model_dir, code_dir, program)
        print(
            f"serving {model_data} with {code_dir / program} on http://{settings.host}:{settings.port} "
            f"(workers {settings.workers}, timeout {settings.timeout}s); GET /ping, POST /invocations",
            flush=True,
        )
        return InvocationsApp(handler, default_accept=default_accept)

    run_gunicorn(build_app, settings)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_ping(url: str, *, timeout: float, process: subprocess.Popen | None = None,
                  poll_interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise CommandError(f"the local endpoint exited with code {process.returncode} before answering /ping")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(poll_interval)
    raise CommandError(f"{url}/ping did not answer 200 within {timeout:.0f}s")


class LocalEndpoint:
    """`endpointctl serve` in a child process on a free loopback port; a context manager."""

    def __init__(
        self,
        *,
        model_data: str | Path,
        code: str | Path | None = None,
        workers: int = 1,
        port: int | None = None,
        env: dict[str, str] | None = None,
        startup_timeout: float = 60,
        poll_interval: float = 0.05,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "endpointctl", "serve", "--model-data", str(model_data),
                   "--port", str(self.port), "--workers", str(workers)]
        if code is not None:
            command += ["--code", str(code)]
        self._command = command
        self._env = {**os.environ, **(env or {})}
        self._startup_timeout = startup_timeout
        self._poll_interval = poll_interval
        self.process: subprocess.Popen | None = None
        # A file, not a pipe: a chatty server must never block on a full pipe.
        self._log = tempfile.TemporaryFile()

    def __enter__(self) -> "LocalEndpoint":
        self.process = subprocess.Popen(self._command, env=self._env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            wait_for_ping(self.url, timeout=self._startup_timeout, process=self.process, poll_interval=self._poll_interval)
        except CommandError as error:
            output = self.stop()
            raise CommandError(f"{error}\n{output.strip()}") from None
        return self

    def stop(self) -> str:
        """Stop gunicorn (master and workers) and return what it printed."""
        if self.process is None:
            return ""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def __exit__(self, *exc: object) -> None:
        self.stop()
