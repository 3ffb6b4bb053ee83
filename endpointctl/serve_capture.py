"""`endpointctl serve --capture`: every answered request written as SageMaker's data
capture writes it (monitoring.capture's format and layout), off the caller's path.

Two halves, because the server runs in a sandbox with neither network nor credentials:
- `CapturingApp` (in the sandboxed server) wraps the container's WSGI app and writes a
  record once the response has been sent (the WSGI body's close()); a failure to write
  is logged and counted, never the caller's problem.
- `S3Shipper` (in `serve`, which has the credentials) copies the files the server
  writes into a local spool folder to an s3:// destination, every few seconds and once
  more when serve stops. Files are re-uploaded whole when they grow: SageMaker's own
  files appear minutes late too, and readers list the prefix instead of trusting names.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from monitoring.capture import INFERENCE_ID, JSON_TYPE, CaptureWriter

log = logging.getLogger("endpointctl.serve")

# SageMaker's name for the only variant of a single-variant endpoint (the stack's too).
DEFAULT_CAPTURE_ENDPOINT = "local-endpoint"
DEFAULT_CAPTURE_VARIANT = "AllTraffic"
INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
_INFERENCE_ID_ENVIRON = "HTTP_" + INFERENCE_ID_HEADER.upper().replace("-", "_")
# A shadow's copy names the champion record it copies (endpointctl.serve_shadow); only a
# challenger's server (`copied_event_ids`) keeps it as its record's eventId.
EVENT_ID_HEADER = "X-Endpointctl-Event-Id"
_EVENT_ID_ENVIRON = "HTTP_" + EVENT_ID_HEADER.upper().replace("-", "_")


def valid_inference_id(value: str) -> bool:
    """InvokeEndpoint's InferenceId: 1-64 printable characters, not starting with a space."""
    return bool(INFERENCE_ID.match(value)) and not value[0].isspace()


class _RecordingInput:
    """The request body stream, keeping what the app reads (up to `limit` bytes)."""

    def __init__(self, stream: Any, limit: int):
        self._stream = stream
        self._limit = limit
        self.chunks: list[bytes] = []
        self._kept = 0

    def read(self, *size: int) -> bytes:
        data = self._stream.read(*size)
        if self._kept < self._limit:
            self.chunks.append(data[: self._limit - self._kept])
            self._kept += len(self.chunks[-1])
        return data

    def __getattr__(self, name: str) -> Any:  # readline, etc.: passed through, not recorded
        return getattr(self._stream, name)


class _CaptureOnClose:
    """The app's response body, passed through unchanged; when the server closes it (the
    response has been sent) the record is written."""

    def __init__(self, body: Iterable[bytes], on_close: Callable[[bytes], None]):
        self._body = body
        self._on_close = on_close
        self._sent: list[bytes] = []

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._sent.append(chunk)
            yield chunk

    def close(self) -> None:
        try:
            if hasattr(self._body, "close"):
                self._body.close()
        finally:
            self._on_close(b"".join(self._sent))


class CapturingApp:
    """WSGI middleware: captures each POST /invocations answered 200 (as SageMaker, which
    captures invocations the model answered), with the caller's inference id if sent."""

    def __init__(self, app: Callable, *, folder: str, endpoint: str, variant: str, max_body_bytes: int,
                 copied_event_ids: bool = False):
        self.app = app
        self.copied_event_ids = copied_event_ids
        self.folder, self.endpoint, self.variant = folder, endpoint, variant
        self.max_body_bytes = max_body_bytes
        self.failures = 0
        self._writer: CaptureWriter | None = None
        self._writer_pid = 0

    def writer(self) -> CaptureWriter:
        """One writer, so one file per hour, per worker process (made after the fork)."""
        if self._writer is None or self._writer_pid != os.getpid():
            self._writer, self._writer_pid = CaptureWriter(self.folder, self.endpoint, self.variant), os.getpid()
        return self._writer

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/invocations" or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        inference_id = environ.get(_INFERENCE_ID_ENVIRON)
        if inference_id is not None and not valid_inference_id(inference_id):
            return _refuse_inference_id(inference_id, start_response)
        arrived = datetime.now(timezone.utc)
        event_id = environ.get(_EVENT_ID_ENVIRON) if self.copied_event_ids else None
        request = _RecordingInput(environ["wsgi.input"], self.max_body_bytes)
        environ["wsgi.input"] = request
        input_type = environ.get("HTTP_CONTENTTYPE") or environ.get("CONTENT_TYPE") or JSON_TYPE
        answer: dict[str, Any] = {}

        def remember(status: str, headers: list, *exc_info: Any) -> Any:
            answer.update(status=status, headers=headers)
            return start_response(status, headers, *exc_info)

        def capture(sent: bytes) -> None:
            if not str(answer.get("status", "")).startswith("200"):
                return
            output_type = next((v for k, v in answer["headers"] if k.lower() == "content-type"), JSON_TYPE)
            try:
                self.writer().write(input_type, b"".join(request.chunks), output_type, sent,
                                    inference_id=inference_id, event_id=event_id, when=arrived)
            except Exception as error:  # the caller has its answer; a lost record is logged, not raised
                self.failures += 1
                log.warning("capture failed (%d so far): %s: %s", self.failures, type(error).__name__, error)

        return _CaptureOnClose(self.app(environ, remember), capture)


def _refuse_inference_id(value: str, start_response: Callable) -> list[bytes]:
    """SageMaker's runtime refuses a bad InferenceId with a 400 ValidationError before any
    model sees it; so does the local endpoint."""
    body = json.dumps({"error": f"{INFERENCE_ID_HEADER} {value!r} is not 1-64 printable ASCII characters "
                                "starting with a non-space", "status": 400}).encode()
    start_response("400 BAD REQUEST", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class S3Shipper:
    """Copies a spool folder's .jsonl files to s3://bucket/prefix/<same relative path>,
    each time one has grown; `stop()` ships what is left. Run in `serve`, never in the sandbox."""

    INTERVAL_S = 2.0

    def __init__(self, spool: Path, destination: str, *, s3_client: Any = None):
        self.spool = spool
        self.bucket, _, prefix = destination.removeprefix("s3://").partition("/")
        self.prefix = prefix.strip("/")
        self._s3 = s3_client
        self._shipped: dict[Path, int] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture-to-s3", daemon=True)

    def _client(self) -> Any:
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    def start(self) -> "S3Shipper":
        self._client().head_bucket(Bucket=self.bucket)  # a wrong bucket stops serve now, in one line
        self._thread.start()
        return self

    def ship_once(self) -> int:
        """Uploads every file that grew since it was last shipped; returns how many."""
        shipped = 0
        for path in sorted(self.spool.rglob("*.jsonl")):
            size = path.stat().st_size
            if self._shipped.get(path) == size:
                continue
            key = "/".join(filter(None, (self.prefix, path.relative_to(self.spool).as_posix())))
            self._client().put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes()[:size])
            self._shipped[path] = size
            shipped += 1
        return shipped

    def _run(self) -> None:
        while not self._stopping.wait(self.INTERVAL_S):
            self._ship_logging_failures()

    def _ship_logging_failures(self) -> None:
        try:
            self.ship_once()
        except Exception as error:  # S3 away for a moment: the next round ships it
            print(f"endpointctl serve: capture not shipped to s3://{self.bucket}/{self.prefix} yet: "
                  f"{type(error).__name__}: {error}", flush=True)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._ship_logging_failures()
