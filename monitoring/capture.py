"""Captured traffic and late labels, read and written in SageMaker's own formats.

One reader for every caller: the monitor, the champion-vs-challenger comparison, the
scheduled job (which runs this file in the scikit-learn serving image: Python 3.9,
standard library and numpy only, no project imports) and the tests. The local endpoint
writes with `CaptureWriter`, so what it captures reads exactly like what SageMaker
captures. The formats are in ../shared/reference/SAGEMAKER.md, "Watching a live endpoint":

  <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<any name>.jsonl
  {"captureData": {"endpointInput":  {"observedContentType", "mode": "INPUT",  "data", "encoding"},
                   "endpointOutput": {"observedContentType", "mode": "OUTPUT", "data", "encoding"}},
   "eventMetadata": {"eventId", "inferenceTime", "inferenceId"?}, "eventVersion": "0"}

Ground truth (labels collected later), partitioned by the hour the label was collected:

  <destination>/yyyy/mm/dd/hh/<any name>.jsonl
  {"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "<id>"}, "eventVersion": "0"}

Nothing here raises on bad data: a line that is not a record is counted in
`ReadCounts` and skipped, so an hour of garbage is a figure in the report, not a crash.
"""

from __future__ import annotations

import base64
import binascii
import json
import json.scanner
import os
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import IO, Callable, Iterable, Iterator, List, Optional, Tuple

CSV_TYPE = "text/csv"
JSON_TYPE = "application/json"
# `encoding` values: SageMaker writes CSV or JSON for the types its CaptureContentTypeHeader
# lists, base64 for every other. The base64 spelling is not documented (reference): any
# other value is an invalid record.
TEXT_ENCODINGS = {"CSV": CSV_TYPE, "JSON": JSON_TYPE}
BASE64_ENCODING = "BASE64"
# The SageMaker inference id: 1-64 printable ASCII characters (InvokeEndpoint's InferenceId).
INFERENCE_ID = re.compile(r"^[\x20-\x7e]{1,64}$")
_HOUR_PARTS = re.compile(r"^\d{4}/\d{2}/\d{2}/\d{2}$")


class CaptureRecord:
    """One captured request and its response, payloads decoded to text."""

    __slots__ = ("endpoint", "variant", "event_id", "inference_id", "inference_time",
                 "input_type", "input_data", "output_type", "output_data")

    def __init__(self, endpoint, variant, event_id, inference_id, inference_time,
                 input_type, input_data, output_type, output_data):
        self.endpoint = endpoint            # str | None: from the path, None if the layout has no such level
        self.variant = variant              # str | None
        self.event_id = event_id            # str
        self.inference_id = inference_id    # str | None: only when the caller sent one
        self.inference_time = inference_time  # datetime, UTC
        self.input_type = input_type        # media type, lower case, parameters dropped
        self.input_data = input_data        # str
        self.output_type = output_type
        self.output_data = output_data

    @property
    def join_key(self):
        """The key a label or a shadow's record joins on: inferenceId, else eventId."""
        return self.inference_id if self.inference_id is not None else self.event_id

    def __repr__(self):
        return "CaptureRecord(%s/%s %s %s)" % (self.endpoint, self.variant, self.join_key, self.inference_time.isoformat())


class ReadCounts:
    """What a read saw besides good records; every figure goes into the report."""

    __slots__ = ("files", "lines", "records", "garbage", "unknown_encoding", "outside_window")

    def __init__(self):
        self.files = 0
        self.lines = 0
        self.records = 0           # good records inside the window
        self.garbage = 0           # not JSON, not an object, or a field missing or of the wrong type
        self.unknown_encoding = 0  # an `encoding` that is neither CSV, JSON nor base64, or base64 that is not text
        self.outside_window = 0    # good records whose inferenceTime is outside [since, until)

    @property
    def invalid(self):
        return self.garbage + self.unknown_encoding

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}


def media_type(header):
    """'text/csv; charset=utf-8' -> 'text/csv'."""
    return (header or "").partition(";")[0].strip().lower()


# A day of capture repeats a handful of content types and one time per second: each is
# parsed once (the caches are emptied when they grow past _CACHE_LIMIT).
_CACHE_LIMIT = 100_000
_media_types = {}
_times = {}
_decoder = json.JSONDecoder()
_scan = json.scanner.make_scanner(_decoder)  # the C scanner json.loads itself ends in


def decode_json(text):
    """json.loads of a str, exactly (same scanner, same errors as ValueError), without
    its per-call Python layers: a day of capture is three decodes per record."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:  # leading whitespace, or not JSON: the full decoder says which
        return _decoder.decode(text)
    if end != len(text) and not text[end:].isspace():
        return _decoder.decode(text)  # extra data after the value: raises as json.loads does
    return value


def _cached_media_type(header):
    found = _media_types.get(header)
    if found is None:
        if len(_media_types) > _CACHE_LIMIT:
            _media_types.clear()
        found = _media_types[header] = media_type(header)
    return found


def _cached_time(value):
    found = _times.get(value)
    if found is None:
        if len(_times) > _CACHE_LIMIT:
            _times.clear()
        found = _times[value] = parse_time(value)
    return found


def parse_time(value):
    """An ISO-8601 time as SageMaker writes it ('2022-02-14T17:25:49Z', with or without
    milliseconds), or as a user types it ('2022-02-14', '2022-02-14T17:00'), in UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)  # Python 3.9 takes up to microseconds and an offset
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def format_time(moment):
    """The inferenceTime format of AWS's published capture (sagemaker-python-sdk
    tests/data/monitor/captured-data.jsonl, the developer guide's samples): UTC to the
    second, with a Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------- sources

class Source:
    """A local folder or an s3:// prefix, listed and read the same way. S3 is read with
    boto3 (the CLI has it; the scheduled job never does: SageMaker copies its inputs to
    a local folder first)."""

    def __init__(self, location, s3_client=None):
        self.location = location
        self._s3 = s3_client
        if location.startswith("s3://"):
            bucket, _, prefix = location[len("s3://"):].partition("/")
            if not bucket:
                raise ValueError("%s: an s3:// location needs a bucket" % location)
            self.bucket, self.prefix = bucket, prefix.rstrip("/")
        else:
            self.bucket, self.prefix = None, location.rstrip("/") or "/"
            if not os.path.isdir(location):
                raise ValueError("%s: no such folder" % location)

    def _client(self):
        if self._s3 is None:
            import boto3  # only where an s3:// location is read: the CLI and the tests

            self._s3 = boto3.client("s3")
        return self._s3

    def files(self, suffix=".jsonl"):
        """(path relative to the location, with '/' separators) of every file, sorted."""
        if self.bucket is None:
            found = []
            for folder, _, names in os.walk(self.prefix):
                for name in names:
                    if name.endswith(suffix):
                        relative = os.path.relpath(os.path.join(folder, name), self.prefix)
                        found.append(relative.replace(os.sep, "/"))
            return sorted(found)
        start = self.prefix + "/" if self.prefix else ""
        found = []
        for page in self._client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
            for item in page.get("Contents", ()):
                if item["Key"].endswith(suffix):
                    found.append(item["Key"][len(start):])
        return sorted(found)

    def lines(self, relative):
        """The file's lines as bytes, streamed (never the whole file in memory on S3)."""
        if self.bucket is None:
            with open(os.path.join(self.prefix, relative), "rb") as handle:
                for line in handle:
                    yield line
            return
        key = (self.prefix + "/" if self.prefix else "") + relative
        body = self._client().get_object(Bucket=self.bucket, Key=key)["Body"]
        for line in body.iter_lines():
            yield line


def _hour_of(parts):
    """datetime of an hour partition 'yyyy/mm/dd/hh' (the four path parts), or None."""
    if not _HOUR_PARTS.match("/".join(parts)):
        return None
    try:
        return datetime(int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3]), tzinfo=timezone.utc)
    except ValueError:
        return None


def _partitioned_files(source, since, until, levels_above_hour):
    """(relative path, the parts above the hour partition) of each file whose hour can
    hold a record of [since, until); a file outside the layout is skipped."""
    for relative in source.files():
        parts = relative.split("/")
        if len(parts) < 5:
            continue
        hour = _hour_of(parts[-5:-1])
        if hour is None:
            continue
        if since is not None and hour + timedelta(hours=1) <= since:
            continue
        if until is not None and hour >= until:
            continue
        above = parts[:-5]
        yield relative, ([None] * levels_above_hour + above)[-levels_above_hour:] if levels_above_hour else []


# ---------------------------------------------------------------------------- capture

def _decode_payload(part):
    """(media type, text) of endpointInput/endpointOutput, or None if its encoding is unknown."""
    encoding = part["encoding"]
    data = part["data"]
    content_type = _cached_media_type(part["observedContentType"])
    if encoding in TEXT_ENCODINGS:
        return content_type, data
    if encoding.upper() == BASE64_ENCODING:
        try:
            return content_type, base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
    return None


def parse_capture_line(line, endpoint=None, variant=None, counts=None):
    """A CaptureRecord from one line (bytes or str), or None (counted) if it is not one."""
    counts = counts if counts is not None else ReadCounts()
    try:
        raw = decode_json(line if isinstance(line, str) else line.decode("utf-8"))
        capture = raw["captureData"]
        metadata = raw["eventMetadata"]
        event_id = metadata["eventId"]
        inference_id = metadata.get("inferenceId")
        when = _cached_time(metadata["inferenceTime"])
        request = _decode_payload(capture["endpointInput"])
        response = _decode_payload(capture["endpointOutput"])
        if not isinstance(event_id, str) or not (inference_id is None or isinstance(inference_id, str)):
            raise TypeError("ids are strings")
    except (ValueError, KeyError, TypeError, AttributeError):
        counts.garbage += 1
        return None
    if request is None or response is None:
        counts.unknown_encoding += 1
        return None
    return CaptureRecord(endpoint, variant, event_id, inference_id, when,
                         request[0], request[1], response[0], response[1])


def read_capture(location, since=None, until=None, counts=None, variant=None, s3_client=None):
    """Every captured record under `location` (the capture destination, an endpoint's or
    a variant's folder) with since <= inferenceTime < until, file by file, line by line.
    `variant` keeps only that variant's folder. Bad lines are counted in `counts`."""
    counts = counts if counts is not None else ReadCounts()
    source = Source(location, s3_client=s3_client)
    for relative, (endpoint, folder_variant) in _partitioned_files(source, since, until, 2):
        if variant is not None and folder_variant != variant:
            continue
        counts.files += 1
        for line in source.lines(relative):
            if not line.strip():
                continue
            counts.lines += 1
            record = parse_capture_line(line, endpoint, folder_variant, counts)
            if record is None:
                continue
            if (since is not None and record.inference_time < since) or (until is not None and record.inference_time >= until):
                counts.outside_window += 1
                continue
            counts.records += 1
            yield record


# ---------------------------------------------------------------------------- ground truth

def parse_ground_truth_line(line, counts=None):
    """(join key, label as int 0/1) from one ground-truth line, or None (counted)."""
    counts = counts if counts is not None else ReadCounts()
    try:
        raw = json.loads(line)
        truth = raw["groundTruthData"]
        key = raw["eventMetadata"]["eventId"]
        encoding = truth.get("encoding", "CSV")
        data = truth["data"]
        if not isinstance(key, str):
            raise TypeError("eventId is a string")
    except (ValueError, KeyError, TypeError, AttributeError):
        counts.garbage += 1
        return None
    if encoding == BASE64_ENCODING:
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            counts.unknown_encoding += 1
            return None
    elif encoding not in TEXT_ENCODINGS:
        counts.unknown_encoding += 1
        return None
    label = str(data).strip()
    if label not in ("0", "1"):
        counts.garbage += 1
        return None
    return key, int(label)


def read_ground_truth(location, since=None, until=None, counts=None, s3_client=None):
    """{join key: label} of every label collected in [since, until) (by its hour partition;
    labels carry no time of their own). A key labelled twice keeps the later label."""
    counts = counts if counts is not None else ReadCounts()
    source = Source(location, s3_client=s3_client)
    labels = {}
    for relative, _ in _partitioned_files(source, since, until, 0):
        counts.files += 1
        for line in source.lines(relative):
            if not line.strip():
                continue
            counts.lines += 1
            parsed = parse_ground_truth_line(line, counts)
            if parsed is not None:
                counts.records += 1
                labels[parsed[0]] = parsed[1]
    return labels


# ---------------------------------------------------------------------------- writing

def _encoded(content_type, mode, data):
    """endpointInput/endpointOutput, keys in SageMaker's order. CSV and JSON as text (str,
    or bytes decoded with U+FFFD for what is not UTF-8); any other type base64."""
    kind = media_type(content_type)
    for encoding, encoded_type in TEXT_ENCODINGS.items():
        if kind == encoded_type:
            text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
            return {"observedContentType": content_type, "mode": mode, "data": text, "encoding": encoding}
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return {"observedContentType": content_type, "mode": mode, "data": base64.b64encode(raw).decode("ascii"),
            "encoding": BASE64_ENCODING}


def capture_line(input_type, input_data, output_type, output_data, *, when, event_id=None, inference_id=None):
    """One capture record as SageMaker writes it (a str without the newline). CSV and JSON
    payloads as text, as an endpoint whose CaptureContentTypeHeader lists both does."""
    request = _encoded(input_type, "INPUT", input_data)
    response = _encoded(output_type, "OUTPUT", output_data)
    metadata = {"eventId": event_id or str(uuid.uuid4()), "inferenceTime": format_time(when)}
    if inference_id is not None:
        metadata["inferenceId"] = inference_id
    return json.dumps({"captureData": {"endpointInput": request, "endpointOutput": response},
                       "eventMetadata": metadata, "eventVersion": "0"}, separators=(",", ":"))


def ground_truth_line(key, label):
    """One ground-truth record as AWS's sample writes it: the inference id under eventId."""
    return json.dumps({"groundTruthData": {"data": str(int(label)), "encoding": "CSV"},
                       "eventMetadata": {"eventId": key}, "eventVersion": "0"}, separators=(",", ":"))


def hour_partition(when):
    return when.astimezone(timezone.utc).strftime("%Y/%m/%d/%H")


class CaptureWriter:
    """Appends records under <folder>/<endpoint>/<variant>/yyyy/mm/dd/hh/, one file per
    writer and hour (the name is not a contract: readers list the prefix). Safe to share
    between threads of one process; each process writes its own files."""

    def __init__(self, folder, endpoint, variant, *, clock: Callable[[], datetime] = None):
        self.root = os.path.join(folder, endpoint, variant)
        self._name = "%d-%s.jsonl" % (os.getpid(), uuid.uuid4().hex[:12])
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._open_hour = None  # type: Optional[str]
        self._handle = None  # type: Optional[IO[str]]
        import threading

        self._lock = threading.Lock()

    def write(self, input_type, input_data, output_type, output_data, *, inference_id=None, event_id=None, when=None):
        """Writes one record and returns its eventId."""
        moment = when or self._clock()
        event = event_id or str(uuid.uuid4())
        line = capture_line(input_type, input_data, output_type, output_data,
                            when=moment, event_id=event, inference_id=inference_id)
        hour = hour_partition(moment)
        with self._lock:
            if hour != self._open_hour:
                self.close_unlocked()
                folder = os.path.join(self.root, *hour.split("/"))
                os.makedirs(folder, exist_ok=True)
                self._handle = open(os.path.join(folder, self._name), "a", encoding="utf-8")
                self._open_hour = hour
            self._handle.write(line + "\n")
            self._handle.flush()  # a reader (the monitor, a test) sees each record at once
        return event

    def close_unlocked(self):
        if self._handle is not None:
            self._handle.close()
            self._handle, self._open_hour = None, None

    def close(self):
        with self._lock:
            self.close_unlocked()


def write_ground_truth(folder, labels: Iterable[Tuple[str, int]], *, when=None):
    """Writes (key, label) pairs as one file in `folder`'s hour partition of `when`
    (default now: labels are partitioned by the hour they were collected). Returns its path."""
    moment = when or datetime.now(timezone.utc)
    target = os.path.join(folder, *hour_partition(moment).split("/"))
    os.makedirs(target, exist_ok=True)
    path = os.path.join(target, "%s.jsonl" % uuid.uuid4().hex)
    with open(path, "w", encoding="utf-8") as handle:
        for key, label in labels:
            handle.write(ground_truth_line(key, label) + "\n")
    return path


__all__: List[str] = [
    "CaptureRecord", "ReadCounts", "CaptureWriter", "Source", "read_capture", "read_ground_truth",
    "parse_capture_line", "parse_ground_truth_line", "capture_line", "ground_truth_line",
    "write_ground_truth", "parse_time", "format_time", "media_type", "hour_partition",
]
