"""`endpointctl serve --capture`: real HTTP through the sandboxed server, records read
back with monitoring.capture, and compared field by field with AWS's published capture."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest

from endpointctl.invoke import post_local
from endpointctl.local import Capture, LocalEndpoint, free_port
from endpointctl.serve_capture import INFERENCE_ID_HEADER
from monitoring.capture import ReadCounts, capture_line, parse_capture_line, read_capture

ROW = [0.5, 1.2, 0.3, 0.8, 0.1]
JSON_BODY = json.dumps({"instances": [ROW]}).encode()
CSV_BODY = ",".join(map(str, ROW)).encode()

# AWS's published example: aws/sagemaker-python-sdk, tests/data/monitor/captured-data.jsonl
# (commit 35484d21a8f880a824129da467b1403ece3ea2b7, the file's last version), its first record.
AWS_EXAMPLE = (
    '{"captureData":{"endpointInput":{"observedContentType":"application/json","mode":"INPUT",'
    '"data":"{\\"instances\\": [1.0, 2.0, 5.0]}","encoding":"JSON"},"endpointOutput":{"observedContentType":'
    '"application/json","mode":"OUTPUT","data":"{\\n    \\"predictions\\": [3.5, 4.0, 5.5\\n    ]\\n}",'
    '"encoding":"JSON"}},"eventMetadata":{"eventId":"12b73486-e916-45de-9d82-7fa23d4a39a6",'
    '"inferenceTime":"2019-11-24T07:30:50Z"},"eventVersion":"0"}'
)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SECOND_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
LAYOUT = re.compile(r"^local-endpoint/AllTraffic/\d{4}/\d\d/\d\d/\d\d/[^/]+\.jsonl$")


def _post(url: str, body: bytes, content_type: str, accept: str = "application/json", **headers: str):
    request = urllib.request.Request(f"{url}/invocations", data=body, method="POST",
                                     headers={"Content-Type": content_type, "Accept": accept, **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jsonl"))


@pytest.fixture(scope="module")
def captured(sample_model, tmp_path_factory):
    """A capturing server with two workers, fed a mix; yields (folder, answers, raw lines)."""
    folder = tmp_path_factory.mktemp("capture")
    answers = {}
    with LocalEndpoint(model_data=sample_model, workers=2,
                       capture=Capture(str(folder), "local-endpoint", "AllTraffic")) as endpoint:
        answers["json"] = post_local(endpoint.url, JSON_BODY, "application/json", "application/json",
                                     inference_id="txn-0001")
        answers["csv"] = post_local(endpoint.url, CSV_BODY, "text/csv", "text/csv")
        answers["csv_charset"] = post_local(endpoint.url, CSV_BODY, "text/csv; charset=utf-8", "application/json")
        answers["short_row"] = post_local(endpoint.url, b"1,2", "text/csv", "application/json")
        answers["xml"] = post_local(endpoint.url, b"<a/>", "application/xml", "application/json")
        answers["bad_id"] = _post(endpoint.url, JSON_BODY, "application/json", **{INFERENCE_ID_HEADER: "x" * 65})
        answers["ping"] = urllib.request.urlopen(f"{endpoint.url}/ping", timeout=10).status
    lines = [line for path in folder.rglob("*.jsonl") for line in path.read_text().splitlines()]
    return folder, answers, lines


def test_every_answered_request_is_one_record_in_the_sagemaker_layout(captured):
    folder, answers, lines = captured
    assert [answers[k][0] for k in ("json", "csv", "csv_charset")] == [200, 200, 200]
    assert answers["short_row"][0] == 400 and answers["xml"][0] == 415  # refused: not captured
    assert len(lines) == 3
    assert _files(folder) and all(LAYOUT.match(f) for f in _files(folder)), _files(folder)

    counts = ReadCounts()
    records = {r.input_data: r for r in read_capture(str(folder), counts=counts)}
    assert counts.records == 3 and counts.invalid == 0
    by_id = [r for r in records.values() if r.inference_id == "txn-0001"]
    assert len(by_id) == 1 and by_id[0].input_data == JSON_BODY.decode()
    assert by_id[0].output_data == answers["json"][2].decode() and by_id[0].output_type == "application/json"
    assert by_id[0].endpoint == "local-endpoint" and by_id[0].variant == "AllTraffic"
    csv_records = [r for r in records.values() if r.input_type == "text/csv"]
    assert {r.output_data for r in read_capture(str(folder)) if r.input_type == "text/csv"} == {
        answers["csv"][2].decode(), answers["csv_charset"][2].decode()}
    assert all(r.inference_id is None and r.join_key == r.event_id for r in csv_records)
    now = datetime.now(timezone.utc)
    assert all(now - timedelta(minutes=5) < r.inference_time <= now for r in read_capture(str(folder)))


def test_csv_with_a_charset_is_still_captured_as_csv_text(captured):
    _, _, lines = captured
    charset = [json.loads(line) for line in lines if "charset" in line.split('"endpointOutput"')[0]]
    assert len(charset) == 1
    request = charset[0]["captureData"]["endpointInput"]
    assert request == {"observedContentType": "text/csv; charset=utf-8", "mode": "INPUT",
                       "data": CSV_BODY.decode(), "encoding": "CSV"}


def test_a_bad_inference_id_is_refused_with_a_400_that_says_why(captured):
    _, answers, _ = captured
    status, body = answers["bad_id"]
    assert status == 400 and INFERENCE_ID_HEADER in json.loads(body)["error"]


def _shape(value):
    """The structure of a JSON value: keys (in order) and the type of each leaf."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    return type(value).__name__


def test_our_records_match_aws_published_example_field_by_field(captured):
    _, _, lines = captured
    example = json.loads(AWS_EXAMPLE)
    ours = json.loads(next(line for line in lines if '"inferenceId"' not in line))
    with_id = json.loads(next(line for line in lines if '"inferenceId"' in line))
    for record in (ours, with_id):
        assert list(record) == list(example)
        assert _shape(record["captureData"]) == _shape(example["captureData"])
        assert record["eventVersion"] == example["eventVersion"] == "0"
        for part, mode in (("endpointInput", "INPUT"), ("endpointOutput", "OUTPUT")):
            assert record["captureData"][part]["mode"] == example["captureData"][part]["mode"] == mode
        metadata = record["eventMetadata"]
        assert UUID.match(metadata["eventId"]) and UUID.match(example["eventMetadata"]["eventId"])
        assert SECOND_Z.match(metadata["inferenceTime"]) and SECOND_Z.match(example["eventMetadata"]["inferenceTime"])
    # The only difference the contract allows: inferenceId, after the two AWS always writes.
    assert list(with_id["eventMetadata"]) == ["eventId", "inferenceTime", "inferenceId"]
    assert with_id["eventMetadata"]["inferenceId"] == "txn-0001"
    assert list(ours["eventMetadata"]) == list(example["eventMetadata"])
    json_record = with_id["captureData"]
    assert json_record["endpointInput"]["encoding"] == example["captureData"]["endpointInput"]["encoding"] == "JSON"


def test_the_writer_round_trips_aws_example_exactly():
    example = json.loads(AWS_EXAMPLE)
    record = parse_capture_line(AWS_EXAMPLE)
    rewritten = capture_line(record.input_type, record.input_data, record.output_type, record.output_data,
                             when=record.inference_time, event_id=record.event_id)
    assert json.loads(rewritten) == example
    assert rewritten == json.dumps(example, separators=(",", ":"))  # same keys in the same order


def test_a_failed_capture_never_fails_the_request(sample_model, tmp_path):
    folder = tmp_path / "capture"
    with LocalEndpoint(model_data=sample_model, workers=1,
                       capture=Capture(str(folder), "local-endpoint", "AllTraffic")) as endpoint:
        (folder / "local-endpoint").write_text("a file where the endpoint's folder should be")
        status, _, payload = post_local(endpoint.url, JSON_BODY, "application/json", "application/json")
        log = endpoint.stop()
    assert status == 200 and json.loads(payload)["predictions"]
    assert "capture failed (1 so far)" in log


def endpointctl(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "endpointctl", *args], capture_output=True, text=True, **kwargs)


@pytest.mark.parametrize("value", ["", " starts-with-space", "x" * 65, "tab\there", "é"])
def test_invoke_refuses_a_bad_inference_id_in_one_line(value):
    result = endpointctl("invoke", "--local", "http://127.0.0.1:9", "--body", "1", "--inference-id", value)
    assert result.returncode == 2 and "--inference-id" in result.stderr and len(result.stderr.splitlines()) == 1


def test_serve_refuses_a_capture_folder_it_cannot_write_in_one_line(sample_model, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = endpointctl("serve", "--model-data", str(sample_model), "--port", str(free_port()),
                         "--capture", str(blocker / "below"), timeout=60)
    assert result.returncode == 1 and "--capture" in result.stderr and len(result.stderr.splitlines()) == 1


def test_capture_to_s3_is_shipped_by_serve_with_the_same_layout(sample_model):
    from devtools.demo import local_aws

    with local_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="capture-bucket")
        destination = "s3://capture-bucket/data-capture"
        with LocalEndpoint(model_data=sample_model, workers=1,
                           capture=Capture(destination, "rc-fraud-detection-prod", "Blue")) as endpoint:
            for n in range(3):
                assert post_local(endpoint.url, JSON_BODY, "application/json", "application/json",
                                  inference_id=f"id-{n}")[0] == 200
        keys = [item["Key"] for item in s3.list_objects_v2(Bucket="capture-bucket")["Contents"]]
        assert keys and all(re.match(r"^data-capture/rc-fraud-detection-prod/Blue/\d{4}/\d\d/\d\d/\d\d/[^/]+\.jsonl$", k)
                            for k in keys), keys
        records = list(read_capture(destination, s3_client=s3))
    assert sorted(r.inference_id for r in records) == ["id-0", "id-1", "id-2"]
    assert {r.variant for r in records} == {"Blue"}
