"""Run the local endpoint (`serve`, or `LocalEndpoint` as a child process).

Loading a model runs its code, so the model is never loaded in the process that
fetched it: `serve` starts a sandboxed child (`serving_runtime.sandbox`) with no AWS
credentials in reach, which loads the model and serves on a socket bound here.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from endpointctl.errors import CommandError
from endpointctl.serve_capture import CapturingApp, S3Shipper
from serving_runtime.archive import unpack_model
from serving_runtime.container import InvocationsApp, ServerSettings, run_gunicorn
from serving_runtime.errors import ServingError
from serving_runtime.loader import load_handler
from serving_runtime.sandbox import DEFAULT_TIMEOUT_S, untrusted_child
from serving_runtime.scoring import code_folder


@dataclass(frozen=True)
class Capture:
    """Where `serve --capture` writes: a folder or s3:// prefix, and the endpoint and
    variant names of the layout <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/."""

    destination: str
    endpoint: str
    variant: str


@dataclass(frozen=True)
class ShadowServing:
    """`serve --shadow-model-data`: the challenger's archive, its variant name in the
    capture layout, and the share of requests copied to it (endpointctl.serve_shadow)."""

    model_data: str
    variant: str
    percent: int


def fetch(location: str, workdir: Path, name: str) -> Path:
    """A local path as it is; an s3:// object downloaded (honours AWS_ENDPOINT_URL)."""
    if not location.startswith("s3://"):
        return Path(location)
    import boto3

    bucket, _, key = location.removeprefix("s3://").partition("/")
    target = workdir / name
    boto3.client("s3").download_file(bucket, key, str(target))
    return target


# What the sandboxed server may see of this environment: the container's own settings,
# the handler's and the archive reader's limit; never AWS_* (the sandbox refuses those).
SERVING_VARIABLES = ("SAGEMAKER_", "HANDLER_", "SERVING_")


def serve_forever(
    *,
    model_data: str,
    code: str,
    program: str,
    host: str,
    port: int,
    workers: int | None,
    timeout: int | None,
    capture: Capture | None = None,
    shadow: ShadowServing | None = None,
) -> int:
    """Fetch the archives here (s3:// needs credentials), then serve them from a child
    that has none: loading the model runs its code (`serving_runtime.sandbox`).

    This process binds the port and hands the listening socket to the child, so the
    child needs no network of its own: where the kernel allows it runs in an empty
    network namespace (no instance-metadata service either) and still answers on the
    socket. With `capture`, the child writes every answered request in SageMaker's capture
    format to a folder; an s3:// destination is shipped from here (the child has no
    credentials). With `shadow`, a challenger serves in a second sandboxed child and gets
    a copy of the configured share of the captured requests, off the callers' path.
    Returns the child's exit code."""
    if shadow is not None and capture is None:
        raise CommandError("--shadow-model-data needs --capture DIR|s3://…: the challenger's copies are read from "
                           "the champion's capture, and its answers are captured beside them")
    if shadow is not None and capture is not None and shadow.variant == capture.variant:
        raise CommandError(f"--shadow-variant and --capture-variant are both {shadow.variant!r}: give the challenger "
                           "its own variant folder")
    settings = ServerSettings.from_environment(host=host, port=port, workers=workers, timeout=timeout)
    # SIGTERM's default is to die on the spot; as SystemExit the `finally`s below run and
    # the temp folders go (SIGINT is KeyboardInterrupt already).
    signal.signal(signal.SIGTERM, _exit_on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="endpointctl-serve-"))
    shipper = None
    try:
        model_archive = fetch(model_data, workdir, "model.tar.gz")
        code_source = fetch(code, workdir, "sourcedir.tar.gz")
        try:
            listener = socket.create_server((settings.host, settings.port))
        except OSError as error:
            raise CommandError(f"cannot listen on {settings.host}:{settings.port}: {error.strerror or error}") from None
        passed_env = {k: v for k, v in os.environ.items() if k.startswith(SERVING_VARIABLES)}
        command = [
            sys.executable, "-m", "endpointctl.serve_child",
            "--model-data", str(model_archive.resolve()), "--code", str(code_source.resolve()),
            "--program", program, "--listen-fd", str(listener.fileno()),
            "--workers", str(settings.workers), "--timeout", str(settings.timeout), "--shown-as", model_data,
        ]
        if capture is not None:
            folder = capture_folder(capture.destination, workdir)
            if capture.destination.startswith("s3://"):
                shipper = S3Shipper(Path(folder), capture.destination).start()
            command += ["--capture-dir", folder, "--capture-endpoint", capture.endpoint,
                        "--capture-variant", capture.variant]
        challenger = _challenger(shadow, capture, command, model_archive=fetch(shadow.model_data, workdir, "shadow.tar.gz")
                                 if shadow is not None else None, passed_env=passed_env)
        # The sandbox lets the server write its scratch folder and the capture folder, nothing else.
        writable = [Path(command[command.index("--capture-dir") + 1])] if capture is not None else []
        with listener, challenger, untrusted_child(extra_env=passed_env, writable=writable) as child:
            def start() -> subprocess.Popen:
                process = child.popen(command, pass_fds=(listener.fileno(),))
                listener.close()  # the child holds it now
                return process

            return _run_forwarding_signals(start)
    finally:
        if shipper is not None:
            shipper.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def _challenger(shadow: ShadowServing | None, capture: Capture | None, champion_command: list[str], *,
                model_archive: Path | None, passed_env: dict[str, str]) -> Iterator[None]:
    """The challenger's sandboxed server on its own loopback socket (bound here, so only
    `serve` can reach it), and the copier feeding it; both end with the block."""
    if shadow is None or capture is None or model_archive is None:
        yield
        return
    if not model_archive.is_file():  # refused now, as the champion's archive is: not a stream of failed copies
        raise CommandError(f"--shadow-model-data {shadow.model_data}: no such file")
    from endpointctl.serve_shadow import ShadowCopier

    folder = champion_command[champion_command.index("--capture-dir") + 1]
    command = [*champion_command]
    for option, value in (("--model-data", str(model_archive.resolve())), ("--shown-as", shadow.model_data),
                          ("--workers", "1"), ("--capture-variant", shadow.variant)):
        command[command.index(option) + 1] = value
    listener = socket.create_server(("127.0.0.1", 0))
    command[command.index("--listen-fd") + 1] = str(listener.fileno())
    port = listener.getsockname()[1]
    with listener, untrusted_child(extra_env=passed_env, writable=[Path(folder)]) as child:
        process = child.popen([*command, "--capture-copies"], pass_fds=(listener.fileno(),))
        listener.close()
        copier = ShadowCopier(Path(folder), endpoint=capture.endpoint, variant=capture.variant,
                              url=f"http://127.0.0.1:{port}", percent=shadow.percent).start()
        print(f"shadow: {shadow.variant} serves {shadow.model_data} on a copy of {shadow.percent} % of the requests "
              f"(answers captured, never returned)", flush=True)
        try:
            yield
        finally:
            copier.stop()
            print(copier.summary(), flush=True)
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def capture_folder(destination: str, workdir: Path) -> str:
    """The folder the sandboxed server writes capture to: the destination itself, or a
    spool folder under `workdir` that is shipped to an s3:// destination."""
    folder = workdir / "capture" if destination.startswith("s3://") else Path(destination).resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".endpointctl-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise CommandError(f"--capture {destination}: cannot write there: {error.strerror or error}") from None
    return str(folder)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _run_forwarding_signals(start: Callable[[], subprocess.Popen]) -> int:
    """Start the child and wait for it; on SIGTERM or SIGINT stop it, so gunicorn stops its
    workers and the sandbox's scratch HOME is removed after it. A signal that arrives
    while the child is being started reaches it once it exists: exiting then would leave
    the child serving, orphaned. The child is always sent SIGTERM: quiet at every stage of
    its start (a SIGINT while its interpreter initializes is Python's own traceback), and
    gunicorn's graceful stop. The exit code says which signal `serve` received."""
    process: subprocess.Popen | None = None
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        process = start()
        if received and process.poll() is None:
            process.send_signal(signal.SIGTERM)
        code = process.wait()
        if received:  # stopped by signal N: exit 128 + N, as a shell reports it
            return 128 + received[0]
        return 128 - code if code < 0 else code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve_in_sandbox(argv: list[str]) -> int:
    """The sandboxed half of `endpointctl serve`: unpack, load (time-bounded), serve on
    the inherited socket. Run as `python -m endpointctl.serve_child` by `serve_forever` only."""
    import argparse

    parser = argparse.ArgumentParser(prog="endpointctl serve (sandboxed)")
    for option in ("--model-data", "--code", "--program", "--shown-as"):
        parser.add_argument(option, required=True)
    for option in ("--listen-fd", "--workers", "--timeout"):
        parser.add_argument(option, type=int, required=True)
    for option in ("--capture-dir", "--capture-endpoint", "--capture-variant"):
        parser.add_argument(option)
    parser.add_argument("--capture-copies", action="store_true", help="a challenger: keep the copied eventId")
    args = parser.parse_args(argv)
    try:
        # gunicorn takes inherited sockets the systemd way: LISTEN_FDS from fd 3 on, for this pid.
        if args.listen_fd != SD_LISTEN_FDS_START:
            os.dup2(args.listen_fd, SD_LISTEN_FDS_START)
            os.close(args.listen_fd)
        os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
        with socket.socket(fileno=os.dup(SD_LISTEN_FDS_START)) as listener:
            host, port = listener.getsockname()[:2]
        settings = ServerSettings(host=host, port=port, workers=args.workers, timeout=args.timeout)
        # The sandbox's scratch HOME: removed by the parent once this process has exited.
        workdir = Path(os.environ["HOME"])
        model_dir = unpack_model(Path(args.model_data), workdir / "model")
        code_dir = code_folder(args.code, model_dir, workdir)
        default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")

        def build_app() -> InvocationsApp:
            # The model loads once, before the server answers: a slow load stops serve.
            with time_limit(DEFAULT_TIMEOUT_S, f"loading the model took longer than {DEFAULT_TIMEOUT_S} s"):
                handler = load_handler(model_dir, code_dir, args.program)
            print(
                f"serving {args.shown_as} with {code_dir / args.program} on http://{settings.host}:{settings.port} "
                f"(workers {settings.workers}, timeout {settings.timeout}s); GET /ping, POST /invocations",
                flush=True,
            )
            app = InvocationsApp(handler, default_accept=default_accept)
            if args.capture_dir is None:
                return app
            print(f"capturing to {args.capture_dir}/{args.capture_endpoint}/{args.capture_variant}/yyyy/mm/dd/hh/",
                  flush=True)
            return CapturingApp(app, folder=args.capture_dir, endpoint=args.capture_endpoint,
                                variant=args.capture_variant, max_body_bytes=app.max_body_bytes + 1,
                                copied_event_ids=args.capture_copies)

        run_gunicorn(build_app, settings)
    except (ServingError, OSError) as error:
        print(f"endpointctl serve: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # SIGINT passed on while the model was loading: stopped, not a bug
        return 128 + signal.SIGINT
    return 0


SD_LISTEN_FDS_START = 3


@contextmanager
def time_limit(seconds: int, message: str) -> Iterator[None]:
    """Raise ServingError(message) if the block runs longer than `seconds` (main thread)."""
    def expire(_signum: int, _frame: object) -> None:
        raise ServingError(message)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


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
        capture: Capture | None = None,
        shadow: ShadowServing | None = None,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "endpointctl", "serve", "--model-data", str(model_data), "--port", str(self.port)]
        if workers:  # 0: as the container, from SAGEMAKER_MODEL_SERVER_WORKERS or the CPU count
            command += ["--workers", str(workers)]
        if code is not None:
            command += ["--code", str(code)]
        if capture is not None:
            command += ["--capture", capture.destination, "--capture-endpoint", capture.endpoint,
                        "--capture-variant", capture.variant]
        if shadow is not None:
            command += ["--shadow-model-data", shadow.model_data, "--shadow-variant", shadow.variant,
                        "--shadow-percent", str(shadow.percent)]
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

    def challenger_pids(self) -> list[int]:
        """The challenger's server processes (gunicorn master and worker) of this endpoint's
        session: for tests and benchmarks that freeze it (SIGSTOP) to play a hung model."""
        if self.process is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getsid(int(entry.name)) != self.process.pid:
                    continue
                if b"--capture-copies" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except (OSError, ProcessLookupError):
                continue
        return found

