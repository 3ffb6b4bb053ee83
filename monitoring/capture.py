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
BLOCK_BYTES = 1 << 22  # capture files are read and parsed 4 MiB of lines at a time


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


def _cached(cache, key, compute):
    """compute(key), remembered in `cache` (cleared when it outgrows _CACHE_LIMIT)."""
    found = cache.get(key)
    if found is None:
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        found = cache[key] = compute(key)
    return found


def _cached_media_type(header):
    return _cached(_media_types, header, media_type)


def _cached_time(value):
    return _cached(_times, value, parse_time)


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

    def text_blocks(self, relative, counts):
        """The file's lines (str, without their ends) in lists of about BLOCK_BYTES, each
        block decoded at once. The lines are those `lines` gives; one that is not UTF-8
        is counted (a line, garbage) and left out."""
        for block in self._line_blocks(relative):
            try:
                yield block.decode("utf-8").split("\n")
            except UnicodeDecodeError:
                yield list(_utf8_lines(block.split(b"\n"), counts))

    def _line_blocks(self, relative):
        """Bytes of whole lines joined by b'\\n'; a line longer than a block is kept whole."""
        if self.bucket is not None:  # S3 lines are botocore's iter_lines (which also splits at \r)
            lines, size = [], 0
            for line in self.lines(relative):
                lines.append(line)
                size += len(line) + 1
                if size >= BLOCK_BYTES:
                    yield b"\n".join(lines)
                    lines, size = [], 0
            if lines:
                yield b"\n".join(lines)
            return
        with open(os.path.join(self.prefix, relative), "rb") as handle:
            pending = []
            for chunk in iter(lambda: handle.read(BLOCK_BYTES), b""):
                cut = chunk.rfind(b"\n") + 1
                if cut == 0:
                    pending.append(chunk)
                    continue
                pending.append(chunk[:cut])
                yield b"".join(pending)
                pending = [chunk[cut:]]
            tail = b"".join(pending)
            if tail:
                yield tail


def _utf8_lines(lines, counts):
    for line in lines:
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError:
            counts.lines += 1
            counts.garbage += 1


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

# Where an inferenceTime falls (a record whose time is not a time is garbage).
INSIDE, OUTSIDE, NOT_A_TIME = 0, 1, 2
# A time with a fraction as fromisoformat reads it on Python 3.9 and later alike (3 or 6
# digits), every field in range: it falls where its whole second falls.
_TIME_WITH_FRACTION = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.(?:[0-9]{3}|[0-9]{6})Z\Z")


class _Window:
    """[since, until) for inferenceTime strings. Each string is judged once (`verdicts`):
    a day of capture at SageMaker's resolution, the second, is 86,400 of them. With whole-
    second bounds, a time with milliseconds or microseconds takes its second's verdict (a
    fraction of a second cannot cross a whole-second bound), so it adds no entry."""

    def __init__(self, since=None, until=None):
        self.since, self.until = since, until
        self.verdicts = {}
        self._by_second = all(bound is None or bound.microsecond == 0 for bound in (since, until))

    def verdict(self, value):
        """INSIDE, OUTSIDE or NOT_A_TIME; the hot loop asks `verdicts` first."""
        found = self.verdicts.get(value)
        if found is not None:
            return found
        if not isinstance(value, str):
            return NOT_A_TIME
        if self._by_second and _TIME_WITH_FRACTION.match(value):
            return self.verdict(value[:19] + "Z")
        try:
            moment = parse_time(value)
        except (ValueError, OverflowError):  # OverflowError: a UTC offset past year 1 or 9999
            found = NOT_A_TIME
        else:
            inside = (self.since is None or moment >= self.since) and (self.until is None or moment < self.until)
            found = INSIDE if inside else OUTSIDE
        if len(self.verdicts) > _CACHE_LIMIT:
            self.verdicts.clear()
        self.verdicts[value] = found
        return found


_ANY_TIME = _Window()
_UNREADABLE = object()  # a payload in an unknown encoding, or base64 that is not UTF-8 text
_BLANK = " \t\n\r\x0b\x0c"  # what bytes.strip() strips: a line of only these is not a line


def _binary_payload(encoding, data):
    """The text of a payload SageMaker base64-encoded, or _UNREADABLE. A non-str encoding
    raises (AttributeError): the line is garbage."""
    if encoding.upper() == BASE64_ENCODING:
        try:
            return base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return _UNREADABLE
    return _UNREADABLE


def _parse_lines(lines, window, counts):
    """The records among `lines` (str, one line each) inside the window, as tuples
    (eventId, inferenceId or None, inferenceTime as written, input media type, input text,
    output media type, output text); every other line is counted in `counts`, blank lines
    skipped. The one parser of capture lines: a block of lines per call, so the hot path
    is this loop's body and no call per record (the C scanner json.loads ends in, two
    cached look-ups, dict subscripts). Anything unusual takes the exact, slower road in
    place: decode_json for whitespace around the line, `_Window.verdict` for a time not
    seen yet, `_binary_payload` for base64."""
    found = []
    keep = found.append
    verdicts, judge = window.verdicts, window.verdict
    types, text_encodings, scan = _media_types, TEXT_ENCODINGS, _scan
    blank = garbage = unreadable = outside = 0
    for line in lines:
        try:
            try:
                raw, end = scan(line, 0)
            except StopIteration:  # leading whitespace, a blank line, or not JSON
                if not line.strip(_BLANK):
                    blank += 1
                    continue
                raw, end = decode_json(line), len(line)
            if end != len(line):
                raw = decode_json(line)  # trailing whitespace is fine; extra data raises
            capture = raw["captureData"]
            metadata = raw["eventMetadata"]
            event_id = metadata["eventId"]
            inference_id = metadata.get("inferenceId")
            when = metadata["inferenceTime"]
            verdict = verdicts.get(when)
            if verdict is None:
                verdict = judge(when)
            if verdict == NOT_A_TIME:
                raise ValueError("inferenceTime is not a time")
            request = capture["endpointInput"]
            input_encoding, input_data, header = request["encoding"], request["data"], request["observedContentType"]
            input_type = types.get(header)
            if input_type is None:
                input_type = _cached_media_type(header)
            if input_encoding not in text_encodings:
                input_data = _binary_payload(input_encoding, input_data)
            response = capture["endpointOutput"]
            output_encoding, output_data, header = response["encoding"], response["data"], response["observedContentType"]
            output_type = types.get(header)
            if output_type is None:
                output_type = _cached_media_type(header)
            if output_encoding not in text_encodings:
                output_data = _binary_payload(output_encoding, output_data)
            if not isinstance(event_id, str) or not (inference_id is None or isinstance(inference_id, str)):
                raise TypeError("ids are strings")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):  # RecursionError: JSON nested too deeply
            garbage += 1
            continue
        if input_data is _UNREADABLE or output_data is _UNREADABLE:
            unreadable += 1
        elif verdict == OUTSIDE:
            outside += 1
        else:
            keep((event_id, inference_id, when, input_type, input_data, output_type, output_data))
    counts.lines += len(lines) - blank
    counts.garbage += garbage
    counts.unknown_encoding += unreadable
    counts.outside_window += outside
    counts.records += len(found)
    return found


def _record(endpoint, variant, fields):
    event_id, inference_id, when, input_type, input_data, output_type, output_data = fields
    return CaptureRecord(endpoint, variant, event_id, inference_id, _cached_time(when),
                         input_type, input_data, output_type, output_data)


def parse_capture_line(line, endpoint=None, variant=None, counts=None):
    """A CaptureRecord from one line (bytes or str), or None (counted) if it is not one."""
    counts = counts if counts is not None else ReadCounts()
    try:
        text = line if isinstance(line, str) else line.decode("utf-8")
    except UnicodeDecodeError:
        counts.garbage += 1
        return None
    seen = ReadCounts()
    found = _parse_lines([text], _ANY_TIME, seen)
    counts.garbage += seen.garbage + (1 - seen.lines)  # a blank line is garbage here too
    counts.unknown_encoding += seen.unknown_encoding
    return _record(endpoint, variant, found[0]) if found else None


def read_capture_blocks(location, since=None, until=None, counts=None, variant=None, s3_client=None):
    """What `read_capture` reads, a block of lines at a time: (endpoint, variant, records)
    with the records as `_parse_lines` gives them. For readers that want the payloads of a
    million records and not a million objects (the monitor)."""
    counts = counts if counts is not None else ReadCounts()
    source = Source(location, s3_client=s3_client)
    window = _Window(since, until)
    for relative, (endpoint, folder_variant) in _partitioned_files(source, since, until, 2):
        if variant is not None and folder_variant != variant:
            continue
        counts.files += 1
        for lines in source.text_blocks(relative, counts):
            found = _parse_lines(lines, window, counts)
            if found:
                yield endpoint, folder_variant, found


def read_capture(location, since=None, until=None, counts=None, variant=None, s3_client=None):
    """Every captured record under `location` (the capture destination, an endpoint's or
    a variant's folder) with since <= inferenceTime < until, file by file, line by line.
    `variant` keeps only that variant's folder. Bad lines are counted in `counts`."""
    for endpoint, folder_variant, found in read_capture_blocks(location, since, until, counts, variant, s3_client):
        for fields in found:
            yield _record(endpoint, folder_variant, fields)


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
