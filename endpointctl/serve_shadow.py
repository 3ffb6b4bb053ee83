"""`endpointctl serve --shadow-model-data`: a challenger on a copy of the local
endpoint's requests, as SageMaker's shadow variant (issue 20), off the caller's path.

The champion answers callers and captures each answered request (serve --capture). The
challenger runs in its own sandboxed child on its own socket. `ShadowCopier`, a thread
in `serve` (never in either sandbox), reads the champion's new capture records and
sends the configured share of them to the challenger, which captures its own answers
under its variant's folder. The caller's request is finished before its record exists,
so a slow, failing or dead challenger can only lose copies (counted), never delay or
fail a caller.

Pairing: a copy carries the caller's inference id, if any, and the champion record's
eventId in `X-Endpointctl-Event-Id`, which the challenger's capture keeps as its eventId.
SageMaker documents neither that the shadow's record keeps the eventId nor the
opposite; `endpointctl compare` pairs by inferenceId first for that reason.

The share: a record is copied when its eventId hashes below `percent` of 100 buckets,
so the same request is always copied or never (the sample is reproducible).
"""

from __future__ import annotations

import hashlib
import queue
import threading
import urllib.error
import urllib.request
from pathlib import Path

from endpointctl.serve_capture import EVENT_ID_HEADER, INFERENCE_ID_HEADER
from monitoring.capture import parse_capture_line

POLL_S = 0.1
COPY_TIMEOUT_S = 60  # InvokeEndpoint's own timeout
QUEUE_LIMIT = 1000  # copies waiting for a slow challenger; beyond it they are dropped (counted)
SENDERS = 2


def copied(event_id: str, percent: int) -> bool:
    return int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:4], "big") % 100 < percent


class ShadowCopier:
    """Tails `<folder>/<endpoint>/<variant>/` for new capture lines and POSTs the sampled
    share to `url` from a bounded queue; `stop()` ends it. Counts what it did."""

    def __init__(self, folder: Path, *, endpoint: str, variant: str, url: str, percent: int):
        self.root = Path(folder) / endpoint / variant
        self.url, self.percent = url.rstrip("/") + "/invocations", percent
        self.sent = self.failed = self.dropped = self.skipped = 0
        self._offsets: dict[Path, int] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_LIMIT)
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._tail, name="shadow-tail", daemon=True)]
        self._threads += [threading.Thread(target=self._send_loop, name=f"shadow-send-{i}", daemon=True)
                          for i in range(SENDERS)]

    def start(self) -> "ShadowCopier":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=COPY_TIMEOUT_S)

    def _tail(self) -> None:
        while not self._stopping.wait(POLL_S):
            for line in self.new_lines():
                record = parse_capture_line(line)
                if record is None or not copied(record.event_id, self.percent):
                    self.skipped += 1
                    continue
                try:
                    self._queue.put_nowait(record)
                except queue.Full:  # the challenger is behind: lose the copy, never wait
                    self.dropped += 1

    def new_lines(self) -> list[bytes]:
        """Complete lines appended since the last call, file by file."""
        lines: list[bytes] = []
        for path in sorted(self.root.rglob("*.jsonl")) if self.root.is_dir() else ():
            start = self._offsets.get(path, 0)
            with open(path, "rb") as handle:
                handle.seek(start)
                data = handle.read()
            complete = data[: data.rfind(b"\n") + 1]
            self._offsets[path] = start + len(complete)
            lines += [line for line in complete.splitlines() if line.strip()]
        return lines

    def _send_loop(self) -> None:
        while not (self._stopping.is_set() and self._queue.empty()):
            try:
                record = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                continue
            self.send(record)

    def send(self, record) -> None:
        headers = {"Content-Type": record.input_type, "Accept": record.output_type, EVENT_ID_HEADER: record.event_id}
        if record.inference_id is not None:
            headers[INFERENCE_ID_HEADER] = record.inference_id
        request = urllib.request.Request(self.url, data=record.input_data.encode("utf-8"), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=COPY_TIMEOUT_S) as response:
                response.read()
            self.sent += 1
        except (urllib.error.URLError, OSError, ValueError):  # the challenger failed: its alarm, not the caller's
            self.failed += 1

    def summary(self) -> str:
        return (f"shadow: {self.sent} copies answered, {self.failed} failed, {self.dropped} dropped "
                f"(challenger behind), {self.skipped} not sampled or unreadable")
