"""The monitor's fast reading (issue 21, "Speed"): capture files read in blocks, a block's
lines parsed in one loop, its values typed by numpy at once. Each test holds the fast
road to the exact one: same records, same counts, same figures, wherever a block or a
batch happens to end. Capture lines are written here with json.dumps in AWS's documented
format, not by the project's writer."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from monitoring import baseline as baselines
from monitoring import capture, monitor
from monitoring.capture import INSIDE, NOT_A_TIME, OUTSIDE, ReadCounts, parse_time, read_capture, read_capture_blocks
from monitoring.monitor import Monitor, run

HOUR = datetime(2026, 11, 3, 14, tzinfo=timezone.utc)
WIDTH = 5


def model_score(rows):
    return 1 / (1 + np.exp(-(np.asarray(rows, dtype=float).sum(axis=1) - 3.5)))


@pytest.fixture(scope="module")
def baseline():
    rng = np.random.default_rng(31)
    rows = rng.normal(size=(3000, WIDTH))
    scores = model_score(rows)
    labels = (rng.random(len(rows)) < scores).astype(int)
    return baselines.build(rows.tolist(), scores, total_rows=len(rows), missing=[0] * WIDTH, invalid=[0] * WIDTH,
                           labels=labels.tolist())


def line(request, response, *, when="2026-11-03T14:10:00Z", inference_id=None,
         types=("text/csv", "text/csv"), encodings=("CSV", "CSV")) -> str:
    metadata = {"eventId": str(uuid.uuid4()), "inferenceTime": when}
    if inference_id is not None:
        metadata["inferenceId"] = inference_id
    return json.dumps({"captureData": {
        "endpointInput": {"observedContentType": types[0], "mode": "INPUT", "data": request, "encoding": encodings[0]},
        "endpointOutput": {"observedContentType": types[1], "mode": "OUTPUT", "data": response, "encoding": encodings[1]}},
        "eventMetadata": metadata, "eventVersion": "0"}, separators=(",", ":"))


def good(row, i, *, csv: bool, inference_id=None) -> str:
    score = float(model_score([row])[0])
    when = (HOUR + timedelta(seconds=i % 3600)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if csv:
        return line(",".join(map(repr, row)), f"{int(score > 0.5)},{1 - score!r},{score!r}", when=when,
                    inference_id=inference_id, types=("text/csv", "text/csv; charset=utf-8"))
    return line(json.dumps({"instances": [row]}), json.dumps({"predictions": [int(score > 0.5)],
                                                              "probabilities": [[1 - score, score]]}),
                when=when, inference_id=inference_id, types=("application/json",) * 2, encodings=("JSON", "JSON"))


# Records every reader must take as they are, each unusual in its own way.
ODD = [
    line("1,2,3,4,5\n6,7,8,9,10", "0,0.9,0.1\n1,0.2,0.8"),                      # two rows in one request
    line("1,2,3,4,5\n", "0,0.9,0.1"),                                          # a trailing newline
    line(" 1, 2 ,3,nan,inf", "1,0.5,0.5"),                                     # spaces, nan, inf: float() takes them
    line("1_0,2,3,4,\u0665", " 1 ,0.4, 0.6 "),                                 # what float() also takes
    line(json.dumps({"instances": [["1.5", 2, None, 4, 5]]}), json.dumps({"predictions": ["1"], "probabilities": [0.7]}),
         types=("application/json",) * 2, encodings=("JSON", "JSON")),        # a number in a string, a null
    line(json.dumps({"instances": [[1, 2, 3, 4, 5]], "note": "true"}), "0,0.9,0.1",
         types=("application/json", "text/csv"), encodings=("JSON", "CSV")),  # 'true' that is no value
    line(base64.b64encode(b"1,2,3,4,5").decode(), "0,0.5,0.5", encodings=("BASE64", "CSV")),
    line("1,2,3", "0,0.9,0.1"),                                                # refused: 3 features
    line("1,2,3,4,5", "0,0.9,0.1\n1,0.1,0.9"),                                 # refused: two answers for a row
    line("<x/>", "0,0.9,0.1", types=("application/xml", "text/csv")),         # another content type
    line(json.dumps({"instances": [[True, 2, 3, 4, 5]]}), "1,0.1,0.9",
         types=("application/json", "text/csv"), encodings=("JSON", "CSV")),  # refused: a boolean
    line("1,2,3,4,5", "0,0.9,0.1", encodings=("ROT13", "CSV")),                # an unknown encoding
    line("1,2,3,4,5", "0,0.9,0.1", when="2026-11-03T15:00:00.000Z"),           # outside the window
    line("1,2,3,4,5", "0,0.9,0.1", when="2026-11-03T14:59:59.999Z"),           # inside, by its second
    line("1,2,3,4,5", "0,0.9,0.1", when="2026-02-30T14:00:00Z"),               # garbage: not a date
    "not json", "[1, 2", "42", " " + line("1,2,3,4,5", "0,0.9,0.1"),           # garbage, garbage, garbage, a record
    line("1,2,3,4,5", "0,0.9,0.1") + " x",                                     # garbage: extra data
    "\x0b", "   ",                                                              # blank: not lines
]
# Records with a value float() refuses, which sends a block to the exact road.
NOT_NUMBERS = [line("a,b,c,d,e", "0,0.9,0.1"), line("1,2,3,4,5", "1,0.5,x"), line("1,2,3,4,5", ""),
               line(json.dumps({"instances": [[[1], 2, 3, 4, 5]]}), "0,0.5,0.5",
                    types=("application/json", "text/csv"), encodings=("JSON", "CSV"))]


def write(folder: Path, lines, *, newline=b"\n", tail=b"\n") -> Path:
    target = folder / "rc-fraud-detection-prod" / "AllTraffic" / HOUR.strftime("%Y/%m/%d/%H")
    target.mkdir(parents=True, exist_ok=True)
    raw = [text.encode("utf-8") if isinstance(text, str) else text for text in lines]
    (target / "14-02-051-0d7c.jsonl").write_bytes(newline.join(raw) + tail)
    return folder


def traffic(rng, n, *, ids=False):
    live = rng.normal(size=(n, WIDTH))
    return [good(row.tolist(), i, csv=i % 2 == 0, inference_id=f"txn-{i}" if ids else None)
            for i, row in enumerate(live)]


def judge(baseline, folder, **kwargs):
    return run(baseline, str(folder), since=HOUR, until=HOUR + timedelta(hours=1), **kwargs)


def test_fast_and_record_by_record_readings_of_a_block_agree(baseline, tmp_path):
    """Every record read fast (one loop, values typed with the block's) as the exact road
    reads it: features, scores, flags, counts and the labelled records' positions."""
    rng = np.random.default_rng(1)
    lines = traffic(rng, 400, ids=True) + ODD * 3
    rng.shuffle(lines)
    write(tmp_path, lines)
    block = [record for _, _, found in read_capture_blocks(str(tmp_path)) for record in found]
    readings = []
    for fast in (True, False):
        reader = Monitor(baseline)
        reader.labels = {f"txn-{i}": i % 3 == 0 for i in range(0, 400, 2)}
        readings.append((reader._read(block, fast), dict(reader.unusable)))
    (fast_features, fast_scores, fast_flags, fast_records, fast_labelled), fast_unusable = readings[0]
    (features, scores, flags, records, labelled), unusable = readings[1]
    # Of ODD, 10 records are read, 2 refused for their request, 1 for its response, 1 of another type.
    assert fast_unusable == unusable == {"other_content_type": 3, "refused_input": 6, "refused_output": 3}
    assert fast_records == records == 400 + 3 * 10
    # Rows come in another order (one-line CSV first), the same rows all the same.
    assert sorted(map(repr, fast_features.tolist())) == sorted(map(repr, features.tolist()))  # repr: nan sorts
    assert np.array_equal(fast_scores, scores, equal_nan=True) and fast_flags == flags
    assert fast_labelled == labelled and len(labelled) == 200


def test_a_value_that_is_not_a_number_refuses_its_record_alone(baseline, tmp_path):
    """A block with a value float() refuses is read again record by record: that record
    is refused, every other one counted, and labels still meet their own scores."""
    rng = np.random.default_rng(2)
    lines = traffic(rng, 300, ids=True)
    write(tmp_path / "clean", lines)
    write(tmp_path / "dirty", lines[:150] + NOT_NUMBERS + lines[150:])
    truth = {f"txn-{i}": int(i % 4 == 0) for i in range(300)}
    clean, dirty = (Monitor(baseline), Monitor(baseline))
    for reader, folder in ((clean, "clean"), (dirty, "dirty")):
        reader.labels = truth
        for _, _, block in read_capture_blocks(str(tmp_path / folder)):
            reader.add_block(block)
    assert dirty.unusable == {"other_content_type": 0, "refused_input": 2, "refused_output": 2}
    assert (dirty.records, dirty.rows, dirty.flagged) == (clean.records, clean.rows, clean.flagged) == (
        300, 300, clean.flagged)
    assert dirty.labelled == clean.labelled and len(clean.labelled[0]) == 300
    assert [b.cdf_counts.tolist() for b in dirty.features + [dirty.score]] == [
        b.cdf_counts.tolist() for b in clean.features + [clean.score]]


def test_labelled_scores_are_the_records_own(baseline, tmp_path):
    """Recall by hand over a block mixing CSV and JSON answers, odd records between them."""
    rng = np.random.default_rng(3)
    live = rng.normal(size=(500, WIDTH))
    lines = [good(row.tolist(), i, csv=i % 3 != 0, inference_id=f"txn-{i}") for i, row in enumerate(live)]
    write(tmp_path / "capture", [x for pair in zip(lines, ODD * 30) for x in pair] + NOT_NUMBERS)
    truth = {f"txn-{i}": int(rng.random() < 0.3) for i in range(500)}
    gt = tmp_path / "ground-truth" / (HOUR + timedelta(days=1)).strftime("%Y/%m/%d/%H")
    gt.mkdir(parents=True)
    (gt / "labels.jsonl").write_text("\n".join(json.dumps({"groundTruthData": {"data": str(label), "encoding": "CSV"},
                                                           "eventMetadata": {"eventId": key}, "eventVersion": "0"})
                                               for key, label in truth.items()))
    report = judge(baseline, tmp_path / "capture", ground_truth=str(tmp_path / "ground-truth"))
    flagged = {f"txn-{i}": bool(model_score([row])[0] > 0.5) for i, row in enumerate(live)}
    frauds = [key for key, label in truth.items() if label]
    assert report["quality"]["labelled"] == 500
    assert report["quality"]["recall"] == round(sum(flagged[key] for key in frauds) / len(frauds), 6)


@pytest.mark.parametrize("block_bytes", [1, 97, 4096])
def test_where_a_block_ends_changes_nothing(baseline, tmp_path, monkeypatch, block_bytes):
    """Blocks that cut lines anywhere (CRLF line ends, a line that is not UTF-8, blank
    lines, no newline at the end) read as one block does."""
    rng = np.random.default_rng(4)
    lines = traffic(rng, 120) + ODD + NOT_NUMBERS + [b"\xff\xfe" + b"not utf-8", b""]
    rng.shuffle(lines)
    write(tmp_path, lines, newline=b"\r\n", tail=b"")
    whole = judge(baseline, tmp_path)
    monkeypatch.setattr(capture, "BLOCK_BYTES", block_bytes)
    assert judge(baseline, tmp_path) == whole
    counts = whole["counts"]
    assert counts["lines"] == len(lines) - 3  # the blank ones: '\x0b', '   ' and ''
    # garbage: ODD's five and the line that is not UTF-8
    assert counts["garbage"] == 6 and counts["unknown_encoding"] == 1 and counts["outside_window"] == 1


def test_records_given_one_by_one_in_batches_read_as_blocks(baseline, tmp_path, monkeypatch):
    """Monitor.add (CaptureRecords, binned every BATCH_RECORDS) against add_block."""
    rng = np.random.default_rng(5)
    write(tmp_path, traffic(rng, 200, ids=True) + ODD + NOT_NUMBERS)
    monkeypatch.setattr(monitor, "BATCH_RECORDS", 7)
    window = {"since": HOUR, "until": HOUR + timedelta(hours=1)}
    labels = {f"txn-{i}": i % 2 for i in range(200)}
    one_by_one, by_block = Monitor(baseline), Monitor(baseline)
    one_by_one.labels = by_block.labels = labels
    one_by_one.add_all(read_capture(str(tmp_path), **window))
    for _, _, block in read_capture_blocks(str(tmp_path), **window):
        by_block.add_block(block)
    assert one_by_one._batch == []
    assert (one_by_one.records, one_by_one.rows, one_by_one.flagged, one_by_one.unusable, one_by_one.labelled) == (
        by_block.records, by_block.rows, by_block.flagged, by_block.unusable, by_block.labelled)
    assert one_by_one.records == 200 + 9 and len(one_by_one.labelled[0]) == 200
    assert [b.cdf_counts.tolist() for b in one_by_one.features + [one_by_one.score]] == [
        b.cdf_counts.tolist() for b in by_block.features + [by_block.score]]


def test_a_boolean_is_refused_whatever_else_the_block_holds(baseline, tmp_path):
    """numpy would read true as 1.0 beside numbers; the handler refuses it, so does the monitor."""
    rng = np.random.default_rng(6)
    boolean = line(json.dumps({"instances": [[1.0, True, 0.5, 0.1, 0.2]]}), "0,0.9,0.1",
                   types=("application/json", "text/csv"), encodings=("JSON", "CSV"))
    report = judge(baseline, write(tmp_path, traffic(rng, 50) + [boolean]))
    assert report["records"] == 50 and report["counts"]["refused_input"] == 1


def test_lines_that_once_raised_are_counted(baseline, tmp_path):
    """Requests whose data is not text, JSON nested past the recursion limit, an integer
    beyond float64, a time past year 1 in UTC: counts, never a traceback."""
    rng = np.random.default_rng(7)
    odd = [line(12345, "0,0.9,0.1"), line("1,2,3,4,5", 5), line("1,2,3,4,5", None),
           line("[" * 5000, "0,0.9,0.1", types=("application/json", "text/csv"), encodings=("JSON", "CSV")),
           line('{"instances": [[1' + "0" * 400 + ', 2, 3, 4, 5]]}', "0,0.9,0.1",
                types=("application/json", "text/csv"), encodings=("JSON", "CSV")),
           line("1,2,3,4,5", "0,0.9,0.1", when="0001-01-01T00:00:00+01:00"),
           "[" * 100_000]
    report = run(baseline, str(write(tmp_path, traffic(rng, 30) + odd)))
    assert report["records"] == 30
    assert report["counts"]["refused_input"] == 3 and report["counts"]["refused_output"] == 2
    assert report["counts"]["garbage"] == 2


TIMES = ["2026-11-03T14:00:00Z", "2026-11-03T13:59:59Z", "2026-11-03T15:00:00Z", "2026-11-03T14:59:59.999Z",
         "2026-11-03T13:59:59.999Z", "2026-11-03T15:00:00.000Z", "2026-11-03T14:00:00.000000Z",
         "2026-11-03T14:00:00.400Z", "2026-11-03T14:00:00.600Z", "2026-11-03T14:00:00.500000Z",
         "2026-11-03T14:20:00+00:00", "2026-11-03T16:20:00+02:00", "2026-11-03T14:20:00z", "2026-11-03 14:20:00Z",
         "2026-11-03T14:20:00.12Z", "2026-11-03T14:20:60.123Z", "2026-11-03T24:00:00.000Z", "2026-02-30T14:00:00.000Z",
         "2026-11-03", "nope", "", "0001-01-01T00:00:00+01:00"]


@pytest.mark.parametrize("since", [HOUR, HOUR + timedelta(microseconds=500_000), None])
def test_a_time_falls_where_parsing_it_says(since):
    """The window's verdicts (one per second for times with a fraction) against parsing
    every time: with and without milliseconds, Z or an offset, and times that are not."""
    window = capture._Window(since, HOUR + timedelta(hours=1))
    for value in TIMES * 2:  # twice: the second verdict comes from the cache
        try:
            moment = parse_time(value)
        except (ValueError, OverflowError):
            expected = NOT_A_TIME
        else:
            expected = INSIDE if (since is None or moment >= since) and moment < HOUR + timedelta(hours=1) else OUTSIDE
        assert window.verdict(value) == expected, value
    if since is None or since.microsecond == 0:  # a time with a fraction is kept under its second
        assert not [key for key in window.verdicts if key.startswith("2026-11-03T14:00:00.")]


def test_s3_lines_read_as_a_folders(baseline, tmp_path, monkeypatch):
    """The same file on the local S3 and in a folder, read in small blocks: same report."""
    import boto3

    from devtools.demo import local_aws

    rng = np.random.default_rng(8)
    lines = traffic(rng, 60) + ODD + NOT_NUMBERS + [b"\xc3\x28"]
    write(tmp_path, lines)
    monkeypatch.setattr(capture, "BLOCK_BYTES", 500)
    with local_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="capture-bucket")
        for path in tmp_path.rglob("*.jsonl"):
            s3.upload_file(str(path), "capture-bucket", "data-capture/" + path.relative_to(tmp_path).as_posix())
        counts = ReadCounts()
        from_s3 = judge(baseline, "s3://capture-bucket/data-capture", s3_client=s3)
        records = list(read_capture("s3://capture-bucket/data-capture", counts=counts, s3_client=s3))
    assert from_s3 == judge(baseline, tmp_path)
    # records: ODD's 14 (all but 5 garbage, 1 unknown encoding, 2 blank) and NOT_NUMBERS' 4
    assert len(records) == counts.records == 60 + 14 + 4 and counts.garbage == 5 + 1
