"""A local endpoint that serves a handler the way the sklearn serving container does.

What the container does, and so what this does (tests/handler/test_image_parity.py compares the
two over real HTTP: the image's nginx, gunicorn and sagemaker-containers 2.8.6.post2
against this):
- unpack `model.tar.gz` into a model directory and call `model_fn(model_dir)`;
- import SAGEMAKER_PROGRAM from SAGEMAKER_SUBMIT_DIRECTORY (a gzip tar or a folder);
- nginx's routing: a path whose normalized form does not start /ping, /invocations or
  /execution-parameters is answered `404 {}`; behind it Flask's: `GET /ping`, `POST
  /invocations`, automatic HEAD and OPTIONS, and Werkzeug 0.15's 404/405/500 pages;
- Content-Type from the `ContentType` or `Content-Type` header, default
  application/json; Accept missing or `*/*` becomes SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT;
- the body reaches `input_fn` as str for exactly application/json or text/csv
  (invalid UTF-8 replaced by U+FFFD), as bytes otherwise;
- `output_fn` returning `(body, content_type)` is sent with 200 and Werkzeug's charset
  rules; a response object is sent as it is, status included; any exception from the
  four functions is a 500, with the traceback in the server log.
Where it does not match the container, and why: README, "Where the local endpoint
differs" (model loaded before listening, no nginx process, this machine's
Python and numpy).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from serving_runtime.contract import MIB, TRANSFORM_PAYLOAD_BUDGET_MB
from serving_runtime.errors import ServingError
from serving_runtime.loader import LoadedHandler

DEFAULT_PORT = 8080
UTF8_TYPES = ("application/json", "text/csv")

log = logging.getLogger("endpointctl.serve")


# --------------------------------------------------------------------------- WSGI

StartResponse = Callable[..., Any]

# nginx in the container proxies only paths matching this (sagemaker-containers'
# etc/nginx.conf.template, `location ~ ^/(ping|invocations|execution-parameters)`) and
# answers every other path itself with `return 404 "{}"` under `default_type
# application/octet-stream`. tests/handler/test_image_parity.py reads the template to check both.
NGINX_PROXIED = re.compile(r"^/(ping|invocations|execution-parameters)")
NGINX_NOT_FOUND = ("404 Not Found", b"{}", "application/octet-stream")

def _nginx_uri(path: str) -> str:
    """The URI nginx matches locations against: slashes merged, `.` and `..` resolved.
    It still proxies the path as it came, so Flask routes on the original."""
    segments: list[str] = []
    for segment in re.sub("/+", "/", path).split("/")[1:]:
        if segment == "..":
            if segments:
                segments.pop()
        elif segment != ".":
            segments.append(segment)
    return "/" + "/".join(segments)


# The container's Flask 1.1.1 app has exactly these routes (`/execution-parameters`
# only when the handler defines execution_parameters_fn; ours does not), with Flask's
# automatic HEAD and OPTIONS, in the order Flask lists them in `Allow`.
ROUTES = {"/ping": ("HEAD", "GET", "OPTIONS"), "/invocations": ("POST", "OPTIONS")}

# Werkzeug 0.15.6's error pages, byte for byte, as the container sends them (text/html,
# no charset).
_PAGE = '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<title>{code} {name}</title>\n<h1>{name}</h1>\n<p>{text}</p>\n'
ERROR_PAGES = {
    404: _PAGE.format(code=404, name="Not Found", text="The requested URL was not found on the server. If you entered "
                      "the URL manually please check your spelling and try again.").encode(),
    405: _PAGE.format(code=405, name="Method Not Allowed", text="The method is not allowed for the requested URL.").encode(),
    500: _PAGE.format(code=500, name="Internal Server Error", text="The server encountered an internal error and was "
                      "unable to complete your request. Either the server is overloaded or there is an error in the "
                      "application.").encode(),
}
STATUS_LINES = {200: "200 OK", 404: "404 NOT FOUND", 405: "405 METHOD NOT ALLOWED", 500: "500 INTERNAL SERVER ERROR"}


# Werkzeug 0.15.6's get_content_type: the types that get "; charset=utf-8" appended.
_CHARSET_TYPES = frozenset({
    "application/ecmascript", "application/javascript", "application/sql", "application/xml",
    "application/xml-dtd", "application/xml-external-parsed-entity",
})


def _with_charset(mimetype: str) -> str:
    """What Werkzeug 0.15.6 sends for a response built with `mimetype=`: it appends the
    charset to text/*, +xml and a few known text types, even when one is already there."""
    if mimetype.startswith("text/") or mimetype in _CHARSET_TYPES or mimetype.endswith("+xml"):
        return mimetype + "; charset=utf-8"
    return mimetype


class UnsendableBody(TypeError):
    """A body Werkzeug accepts into a response but cannot send: in the container it
    fails inside gunicorn, which answers with its own 500 page; so does ours."""


def _body_bytes(body: object) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    raise UnsendableBody(f"the response body is a {type(body).__name__}, not str or bytes")


def _as_flask_sends(result: object) -> tuple[bytes, str]:
    """Body and Content-Type for what output_fn returned, when it is not a response
    object: a tuple is the container's `Response(result[0], mimetype=result[1])`
    (default mimetype application/json); anything else goes through Flask 1.1's
    make_response (str/bytes as text/html, dict as JSON)."""
    if isinstance(result, tuple):
        if len(result) < 2:
            raise ValueError(f"output_fn returned a tuple of {len(result)}; the container reads (body, content_type)")
        return _body_bytes(result[0]), _with_charset("application/json" if result[1] is None else result[1])
    if isinstance(result, (str, bytes, bytearray)):
        return _body_bytes(result), _with_charset("text/html")
    if isinstance(result, dict):
        return (json.dumps(result, sort_keys=True, separators=(",", ":")) + "\n").encode(), "application/json"
    raise TypeError(f"output_fn returned a {type(result).__name__}, which is not a valid response")


# The largest body SageMaker hands a container: a Batch Transform mini-batch
# (MaxPayloadInMB within the transform budget); InvokeEndpoint stops at 6 MB.
MAX_DELIVERED_BYTES = TRANSFORM_PAYLOAD_BUDGET_MB * MIB
# nginx's lingering_time: how long an unread body is read and dropped after an early answer.
LINGERING_S = 30


# nginx's own 400 page (it answers malformed requests itself, before gunicorn sees them).
NGINX_BAD_REQUEST = (b"<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n"
                     b"<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _nginx_refuses_target(raw_uri: str) -> bool:
    """The request targets nginx answers 400: not origin- or absolute-form (`ping`, `*`),
    a bad or NUL percent-escape, a `..` that climbs above the root."""
    target = raw_uri.partition("?")[0]
    if target.startswith(("http://", "https://")):
        target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
    if not target.startswith("/") or _PERCENT.search(target) or "%00" in target:
        return True
    depth = 0
    for segment in re.sub("/+", "/", target).split("/")[1:]:
        depth += -1 if segment == ".." else (0 if segment in (".", "") else 1)
        if depth < 0:
            return True
    return False


class _ThenStopReading(list):
    """A WSGI body whose close() stops reading the connection: after a request body
    that does not parse, nothing after it can be trusted (nginx closes it too)."""

    def __init__(self, chunks: list[bytes], environ: dict):
        super().__init__(chunks)
        self._socket = environ.get("gunicorn.socket")

    def close(self) -> None:
        if self._socket is not None:
            try:
                self._socket.shutdown(socket.SHUT_RD)
            except OSError:
                pass


class _ThenDiscard(list):
    """A WSGI body whose close() reads and drops what is left of the request body."""

    def __init__(self, chunks: list[bytes], stream: Any):
        super().__init__(chunks)
        self._stream = stream

    def close(self) -> None:
        deadline = time.monotonic() + LINGERING_S
        try:
            while time.monotonic() < deadline and self._stream.read(1 << 20):
                pass
        except OSError:  # the client went away: nothing left to drop
            pass


class InvocationsApp:
    """The container's nginx routing plus its Flask app's `/ping` and `/invocations`,
    as a plain WSGI callable."""

    def __init__(self, handler: LoadedHandler, *, default_accept: str = "application/json"):
        self.handler = handler
        self.default_accept = default_accept
        # A handler that declares its limit (ours: HANDLER_MAX_REQUEST_BYTES) has a body over
        # it refused before it is read; for others, the most SageMaker ever delivers.
        declared = getattr(handler.module, "MAX_REQUEST_BYTES", None)
        self.max_body_bytes = declared if isinstance(declared, int) and declared > 0 else MAX_DELIVERED_BYTES

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if environ.get("SERVER_PROTOCOL") == "HTTP/1.1" and "HTTP_HOST" not in environ:
            return self._bad_request(start_response)  # nginx: HTTP/1.1 requires Host
        allowed = ROUTES.get(path)
        if allowed is None:  # off the exact routes, which is all SageMaker sends: nginx, then Flask, decide
            if _nginx_refuses_target(environ.get("RAW_URI") or path):
                return self._bad_request(start_response)
            if not NGINX_PROXIED.match(_nginx_uri(path)):
                status, body, mimetype = NGINX_NOT_FOUND
                return self._send(start_response, status, body, mimetype)
            path = "/" + path.lstrip("/")  # Werkzeug 0.15's router ignores extra leading slashes
            allowed = ROUTES.get(path)
            if allowed is None:
                return self._error(start_response, 404)
        if method not in allowed:
            return self._error(start_response, 405, allow=allowed)
        if method == "OPTIONS":
            return self._send(start_response, STATUS_LINES[200], b"", "text/html; charset=utf-8", allow=allowed)
        if path == "/ping":
            return self._send(start_response, STATUS_LINES[200], b"", "application/json")
        return self._invoke(environ, start_response)

    def _invoke(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        content_type = environ.get("HTTP_CONTENTTYPE") or environ.get("CONTENT_TYPE") or "application/json"
        accept = environ.get("HTTP_ACCEPT") or ""
        if accept in ("", "*/*"):
            accept = self.default_accept
        stream = environ["wsgi.input"]
        limit = self.max_body_bytes
        declared = int(environ.get("CONTENT_LENGTH") or 0)  # gunicorn refused a malformed one with 400
        if declared > limit:  # refused before a byte of it is read (or held)
            return self._too_large(start_response, stream, f"{declared}")
        try:
            raw = stream.read(declared) if declared else stream.read(limit + 1)  # chunked: at most limit + 1
        except OSError as error:  # gunicorn's chunk errors are OSErrors; so is a client that stalls past the read timeout
            log.warning("unreadable request body: %s: %s", type(error).__name__, error)
            return _ThenStopReading(self._bad_request(start_response), environ)
        if len(raw) > limit:
            return self._too_large(start_response, stream, f"more than {limit}")
        # Werkzeug's get_data(as_text=True) in the container decodes with errors="replace".
        body: str | bytes = raw.decode("utf-8", errors="replace") if content_type in UTF8_TYPES else raw
        try:
            result = self.handler.invoke(body, content_type, accept)
        except Exception:  # the container: any handler exception is a 500 with an HTML page
            log.error("Exception on /invocations [POST]\n%s", traceback.format_exc())
            return self._error(start_response, 500)
        if callable(result):  # a response object (werkzeug's, from output_fn) is itself a WSGI app
            return result(environ, start_response)
        try:
            data, mimetype = _as_flask_sends(result)
        except UnsendableBody:
            log.error("Exception on /invocations [POST]\n%s", traceback.format_exc())
            raise
        except (TypeError, ValueError) as error:  # Flask raises too: a 500
            log.error("Exception on /invocations [POST]\n%s: %s", type(error).__name__, error)
            return self._error(start_response, 500)
        return self._send(start_response, STATUS_LINES[200], data, mimetype)

    def _bad_request(self, start_response: StartResponse) -> list[bytes]:
        return self._send(start_response, "400 Bad Request", NGINX_BAD_REQUEST, "text/html")

    def _too_large(self, start_response: StartResponse, stream: Any, size: str) -> Iterable[bytes]:
        """413 in the handler's words. The unread body is then read and dropped, as
        nginx does after an early answer: a client still sending would otherwise meet a
        reset connection instead of the 413."""
        body = json.dumps({"error": f"body is {size} bytes; the limit is {self.max_body_bytes} bytes", "status": 413})
        start_response("413 REQUEST ENTITY TOO LARGE",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return _ThenDiscard([body.encode()], stream)

    def _error(self, start_response: StartResponse, code: int, *, allow: tuple[str, ...] = ()) -> list[bytes]:
        return self._send(start_response, STATUS_LINES[code], ERROR_PAGES[code], "text/html", allow=allow)

    @staticmethod
    def _send(start_response: StartResponse, status: str, data: bytes, mimetype: str, *,
              allow: tuple[str, ...] = ()) -> list[bytes]:
        headers = [("Content-Type", mimetype), ("Content-Length", str(len(data)))]
        if allow:
            headers.append(("Allow", ", ".join(allow)))
        start_response(status, headers)
        return [data]


# ----------------------------------------------------------------------- gunicorn


# nginx in the container: client_header_timeout and client_body_timeout (60 s, nginx's
# default: the template sets neither), keepalive_timeout 3. gunicorn has no read timeout
# of its own; the worker below sets this one on each connection's socket.
CLIENT_READ_TIMEOUT_S = 60
KEEPALIVE_S = 3
# The container's gunicorn command line: `-k gevent --worker-connections 1000`.
WORKER_CONNECTIONS = 1000


# What `serve --workers` allows too: each worker holds a copy of the model.
MAX_WORKERS = 256
# SAGEMAKER_MODEL_SERVER_TIMEOUT: the container's default and our upper bound, seconds.
DEFAULT_TIMEOUT_S = 60
MAX_TIMEOUT_S = 3600


def _whole_number(name: str, raw: str, maximum: int, allowed: str) -> int:
    value = int(raw) if raw.isascii() and raw.isdigit() else 0
    if not 1 <= value <= maximum:
        raise ServingError(f"{name}={raw!r}: allowed: {allowed}")
    return value


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    workers: int = os.cpu_count() or 1
    timeout: int = DEFAULT_TIMEOUT_S

    @classmethod
    def from_environment(cls, *, host: str, port: int, workers: int | None, timeout: int | None) -> "ServerSettings":
        """Workers and timeout as the container reads them (arguments win), each checked."""
        env = os.environ
        if not workers:
            raw = env.get("SAGEMAKER_MODEL_SERVER_WORKERS", "").strip()
            workers = _whole_number("SAGEMAKER_MODEL_SERVER_WORKERS", raw, MAX_WORKERS,
                                    f"a whole number of worker processes from 1 to {MAX_WORKERS}") if raw else (os.cpu_count() or 1)
        if not timeout:
            raw = env.get("SAGEMAKER_MODEL_SERVER_TIMEOUT", "").strip()
            timeout = _whole_number("SAGEMAKER_MODEL_SERVER_TIMEOUT", raw, MAX_TIMEOUT_S,
                                    f"a whole number of seconds from 1 to {MAX_TIMEOUT_S}") if raw else DEFAULT_TIMEOUT_S
        return cls(host=host, port=port, workers=workers, timeout=timeout)


def _gevent_worker() -> type:
    """gunicorn's gevent worker, as in the container, with nginx's read timeout: a client
    that stops half-way through its headers or body is dropped after CLIENT_READ_TIMEOUT_S
    (nginx closes such a connection without an answer too). Each connection is a
    greenlet, so slow or idle clients wait beside the others, not in front of them; the
    handler is CPU-bound and runs one request at a time per worker, as in the container."""
    from gunicorn.workers.ggevent import GeventWorker

    class ContainerGeventWorker(GeventWorker):
        def init_process(self) -> None:
            _refuse_chunk_sizes_nginx_refuses()
            super().init_process()

        def patch(self) -> None:
            with _entry_points_read_once():
                super().patch()

        def handle(self, listener, client, addr):  # type: ignore[no-untyped-def]
            client.settimeout(CLIENT_READ_TIMEOUT_S)
            super().handle(listener, client, addr)

        def handle_request(self, listener_name, req, sock, addr):  # type: ignore[no-untyped-def]
            # nginx ignores header names with an underscore (underscores_in_headers off):
            # a `SCRIPT_NAME` header never reaches the container's gunicorn, where it
            # would be taken as the app's mount point (a 500 when the path does not start with it).
            req.headers = [(name, value) for name, value in req.headers if "_" not in name]
            return super().handle_request(listener_name, req, sock, addr)

    return ContainerGeventWorker


@contextmanager
def _entry_points_read_once() -> Iterator[None]:
    """gevent's monkey.patch_all looks its plugins up some 25 times, and each look-up
    reads the metadata of every installed distribution: ~170 ms of each worker's start in
    this project's venv (~100 distributions). They cannot change while it patches, so
    they are read once for it."""
    from importlib import metadata

    original = metadata.entry_points
    everything = original()
    if not hasattr(everything, "select"):  # Python < 3.10: gevent reads them another way
        yield
        return

    def entry_points(**selection: Any) -> Any:
        return everything.select(**selection) if selection else everything

    metadata.entry_points = entry_points
    try:
        yield
    finally:
        metadata.entry_points = original


def _refuse_chunk_sizes_nginx_refuses() -> None:
    """nginx answers 400 to a chunk size past its off_t (2**63 - 1); gunicorn would wait
    for that much data. Patched in the worker process only."""
    from gunicorn.http import body, errors

    original = body.ChunkedReader.parse_chunk_size
    if getattr(original, "refuses_overflow", False):
        return

    def parse_chunk_size(self, unreader, data=None):  # type: ignore[no-untyped-def]
        size, rest = original(self, unreader, data)
        if size >= 2**63:
            raise errors.InvalidChunkSize(f"{size:x}")
        return size, rest

    parse_chunk_size.refuses_overflow = True  # type: ignore[attr-defined]
    body.ChunkedReader.parse_chunk_size = parse_chunk_size  # type: ignore[method-assign]


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)  # gunicorn's master stops workers with TERM or QUIT


def _stop_on_signals_until_serving(arbiter: Any, _worker: object) -> None:
    """A forked worker holds the master's handlers until it installs its own; a stop
    signal in between only queues in the worker's copy of the master, which then waits
    its 30 s graceful timeout for a worker that never stops. Until the worker's own
    handlers are in, a stop signal ends it at once (it has no request to finish), and
    one that arrived since the fork ends it now."""
    def stop_now(_signum: int, _frame: object) -> None:
        os._exit(0)

    for stop in STOP_SIGNALS:
        signal.signal(stop, stop_now)
    if any(queued in STOP_SIGNALS for queued in arbiter.SIG_QUEUE):
        os._exit(0)


def run_gunicorn(app_factory: Callable[[], InvocationsApp], settings: ServerSettings) -> None:
    """Pre-fork gunicorn with gevent workers, as in the container. The app (and so the
    model) is built in the master before it binds, so the first 200 from /ping means the
    model is loaded."""
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", settings.workers)
            self.cfg.set("timeout", settings.timeout)
            self.cfg.set("preload_app", True)
            self.cfg.set("worker_class", _gevent_worker())
            self.cfg.set("worker_connections", WORKER_CONNECTIONS)
            self.cfg.set("keepalive", KEEPALIVE_S)
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", "warning")
            self.cfg.set("post_fork", _stop_on_signals_until_serving)

        def load(self) -> InvocationsApp:
            return app_factory()

    _Server().run()
