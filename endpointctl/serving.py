"""A local endpoint that serves a handler the way the sklearn serving container does.

What the container does, and so what this does (checked against its own serving code,
sagemaker-containers 2.8.6.post2, in tests/test_image_parity.py):
- unpack `model.tar.gz` into a model directory and call `model_fn(model_dir)`;
- import SAGEMAKER_PROGRAM from SAGEMAKER_SUBMIT_DIRECTORY (a gzip tar or a folder);
- `GET /ping` and `POST /invocations`; everything else is 404, a wrong method 405;
- Content-Type from the `ContentType` or `Content-Type` header, default
  application/json; Accept missing or `*/*` becomes SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT;
- the body reaches `input_fn` as str for exactly application/json or text/csv
  (invalid UTF-8 replaced by U+FFFD), as bytes otherwise;
- `output_fn` returning `(body, content_type)` is sent with 200; a response object is
  sent as it is, status included; any exception from the four functions is a 500.
Differences, on purpose: the model is loaded once before the server listens (the
container loads it on each worker's first request), so `/ping` answers 200 only when
the model is ready; and there is no nginx in front.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import tarfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CODE_DIR = PROJECT_ROOT / "inference"
DEFAULT_PROGRAM = "inference.py"
DEFAULT_PORT = 8080
UTF8_TYPES = ("application/json", "text/csv")
HANDLER_FUNCTIONS = ("model_fn", "input_fn", "predict_fn", "output_fn")

log = logging.getLogger("endpointctl.serve")


class ServingError(Exception):
    """The artifact or the handler cannot be served; the message says why."""


def safe_extract(archive: Path, destination: Path) -> None:
    """Extract a gzip tar, refusing absolute paths, `..` and links out of the tree."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(destination, filter="data")
    except tarfile.ReadError as error:
        raise ServingError(f"{archive} is not a gzip tar archive ({error}); SageMaker extracts it as tar.gz") from error
    except tarfile.FilterError as error:
        raise ServingError(f"{archive} holds an unsafe member: {error}") from error


def unpack_model(model_data: Path, model_dir: Path) -> Path:
    """What the container does with ModelDataUrl: extract it into /opt/ml/model."""
    if not model_data.is_file():
        raise ServingError(f"model data {model_data} does not exist")
    model_dir.mkdir(parents=True, exist_ok=True)
    safe_extract(model_data, model_dir)
    return model_dir


def prepare_code(code: Path, workdir: Path) -> Path:
    """SAGEMAKER_SUBMIT_DIRECTORY: a folder is used as it is, a tar.gz is extracted."""
    if code.is_dir():
        return code
    if code.is_file():
        target = workdir / "code"
        target.mkdir(parents=True, exist_ok=True)
        safe_extract(code, target)
        return target
    raise ServingError(f"handler code {code} is neither a folder nor a .tar.gz file")


def import_handler(code_dir: Path, program: str) -> ModuleType:
    """Import SAGEMAKER_PROGRAM from the code folder, which also goes on sys.path so
    the handler can import its neighbours (the container pip-installs the folder)."""
    path = code_dir / program
    if not path.is_file():
        raise ServingError(f"SAGEMAKER_PROGRAM {program!r} is not in {code_dir}")
    module_name = Path(program).stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the handler's own import failed: show where
        raise ServingError(f"{program} failed to import: {type(error).__name__}: {error}") from error
    missing = [name for name in HANDLER_FUNCTIONS if not callable(getattr(module, name, None))]
    if missing:
        raise ServingError(
            f"{program} does not define {', '.join(missing)}; this tool serves handlers that define all of "
            f"{', '.join(HANDLER_FUNCTIONS)} (the image's defaults answer 500 to common requests)"
        )
    return module


@dataclass
class LoadedHandler:
    module: ModuleType
    model: Any

    def invoke(self, body: str | bytes, content_type: str, accept: str) -> Any:
        """input_fn -> predict_fn -> output_fn, as the container chains them."""
        m = self.module
        return m.output_fn(m.predict_fn(m.input_fn(body, content_type), self.model), accept)


def load_handler(model_dir: Path, code_dir: Path, program: str = DEFAULT_PROGRAM) -> LoadedHandler:
    module = import_handler(code_dir, program)
    try:
        model = module.model_fn(str(model_dir))
    except Exception as error:
        raise ServingError(f"model_fn({model_dir}) failed: {type(error).__name__}: {error}") from error
    return LoadedHandler(module=module, model=model)


# --------------------------------------------------------------------------- WSGI

StartResponse = Callable[..., Any]

_ERROR_PAGE = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<title>500 Internal Server Error</title>\n'
    b"<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was unable to complete "
    b"your request. Either the server is overloaded or there is an error in the application.</p>\n"
)


class InvocationsApp:
    """The container's `/ping` + `/invocations` contract as a plain WSGI callable."""

    def __init__(self, handler: LoadedHandler, *, default_accept: str = "application/json"):
        self.handler = handler
        self.default_accept = default_accept

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/ping":
            if method not in ("GET", "HEAD"):
                return self._plain(start_response, "405 METHOD NOT ALLOWED", b"")
            return self._plain(start_response, "200 OK", b"", "application/json")
        if path == "/invocations":
            if method != "POST":
                return self._plain(start_response, "405 METHOD NOT ALLOWED", b"")
            return self._invoke(environ, start_response)
        return self._plain(start_response, "404 NOT FOUND", b"")

    def _invoke(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        content_type = environ.get("HTTP_CONTENTTYPE") or environ.get("CONTENT_TYPE") or "application/json"
        accept = environ.get("HTTP_ACCEPT") or ""
        if accept in ("", "*/*"):
            accept = self.default_accept
        length = int(environ.get("CONTENT_LENGTH") or 0)
        stream = environ["wsgi.input"]
        raw = stream.read(length) if length else stream.read()
        # Werkzeug's get_data(as_text=True) in the container decodes with errors="replace".
        body: str | bytes = raw.decode("utf-8", errors="replace") if content_type in UTF8_TYPES else raw
        try:
            result = self.handler.invoke(body, content_type, accept)
        except Exception:  # the container: any handler exception is a 500 with an HTML page
            log.error("handler raised:\n%s", traceback.format_exc())
            return self._plain(start_response, "500 INTERNAL SERVER ERROR", _ERROR_PAGE, "text/html")
        if isinstance(result, tuple):
            payload, mimetype = result
            data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
            return self._plain(start_response, "200 OK", data, mimetype)
        # A response object (werkzeug's, from output_fn) is itself a WSGI app.
        return result(environ, start_response)

    @staticmethod
    def _plain(start_response: StartResponse, status: str, data: bytes, mimetype: str = "text/html") -> list[bytes]:
        if mimetype.startswith("text/") and "charset" not in mimetype:
            mimetype += "; charset=utf-8"
        start_response(status, [("Content-Type", mimetype), ("Content-Length", str(len(data)))])
        return [data]


# ----------------------------------------------------------------------- gunicorn


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    workers: int = os.cpu_count() or 1
    timeout: int = 60

    @classmethod
    def from_environment(cls, *, host: str, port: int, workers: int | None, timeout: int | None) -> "ServerSettings":
        """Workers and timeout as the container reads them."""
        env = os.environ
        return cls(
            host=host,
            port=port,
            workers=workers or int(env.get("SAGEMAKER_MODEL_SERVER_WORKERS") or os.cpu_count() or 1),
            timeout=timeout or int(env.get("SAGEMAKER_MODEL_SERVER_TIMEOUT") or 60),
        )


def run_gunicorn(app_factory: Callable[[], InvocationsApp], settings: ServerSettings) -> None:
    """Pre-fork gunicorn, as in the container. The app (and so the model) is built in
    the master before it binds, so the first 200 from /ping means the model is loaded."""
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", settings.workers)
            self.cfg.set("timeout", settings.timeout)
            self.cfg.set("preload_app", True)
            self.cfg.set("worker_class", "sync")
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", "warning")

        def load(self) -> InvocationsApp:
            return app_factory()

    _Server().run()
