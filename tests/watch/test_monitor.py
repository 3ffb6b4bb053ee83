"""The monitor over hand-made captures in AWS's documented format, written here with
json.dumps (not the project's writer): verdicts, exit statuses, recall by hand, garbage
and empty windows as counts, and the scheduled job's outputs."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from monitoring import baseline as baselines
from monitoring import job
from monitoring.monitor import Monitor, markdown, metric_data, run
from monitoring.capture import read_capture

HOUR = datetime(2026, 11, 3, 14, tzinfo=timezone.utc)
WIDTH = 5


def model_score(rows):
    """A stand-in model: p(fraud) rises with the sum of the features."""
    return 1 / (1 + np.exp(-(np.asarray(rows).sum(axis=1) - 3.5)))


def make_baseline(rng, rows=4000):
    features = rng.normal(size=(rows, WIDTH))
    scores = model_score(features)
    labels = (rng.random(rows) < scores).astype(int)
    return baselines.build(features.tolist(), scores, total_rows=rows, missing=[0] * WIDTH, invalid=[0] * WIDTH,
                           labels=labels.tolist(), feature_names=["amount", "age", "velocity", "distance", "hour"])


def aws_record(row, *, csv: bool, when: datetime, inference_id=None, event_id=None):
    """One capture line exactly as AWS documents it (keys in its order)."""
    score = float(model_score([row])[0])
    label = int(score > 0.5)
    if csv:
        request = {"observedContentType": "text/csv", "mode": "INPUT", "data": ",".join(repr(float(v)) for v in row),
                   "encoding": "CSV"}
        response = {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                    "data": f"{label},{1 - score!r},{score!r}", "encoding": "CSV"}
    else:
        request = {"observedContentType": "application/json", "mode": "INPUT",
                   "data": json.dumps({"instances": [[float(v) for v in row]]}), "encoding": "JSON"}
        response = {"observedContentType": "application/json", "mode": "OUTPUT",
                    "data": json.dumps({"predictions": [label], "probabilities": [[1 - score, score]]}), "encoding": "JSON"}
    metadata = {"eventId": event_id or str(uuid.uuid4()), "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if inference_id:
        metadata["inferenceId"] = inference_id
    return json.dumps({"captureData": {"endpointInput": request, "endpointOutput": response},
                       "eventMetadata": metadata, "eventVersion": "0"})


def write_capture(folder: Path, rows, *, hour=HOUR, extra_lines=(), ids=False, variant="AllTraffic"):
    target = folder / "rc-fraud-detection-prod" / variant / hour.strftime("%Y/%m/%d/%H")
    target.mkdir(parents=True, exist_ok=True)
    lines = [aws_record(row, csv=i % 2 == 0, when=hour + timedelta(seconds=i % 3600),
                        inference_id=f"txn-{i}" if ids else None) for i, row in enumerate(rows)]
    (target / "14-02-051-0d7c.jsonl").write_text("\n".join(list(lines) + list(extra_lines)) + "\n")
    return folder


def judge(baseline, folder, **kwargs):
    return run(baseline, str(folder), since=HOUR, until=HOUR + timedelta(hours=1), **kwargs)


@pytest.mark.parametrize("seed", range(12))
def test_same_distribution_traffic_says_ok(seed, tmp_path):
    rng = np.random.default_rng(seed)
    baseline = make_baseline(rng)
    live = rng.normal(size=(int(rng.integers(150, 3000)), WIDTH))
    report = judge(baseline, write_capture(tmp_path, live))
    assert report["verdict"] == "ok", json.dumps(report, indent=1)
    assert report["records"] == len(live) and report["invalid_records"] == 0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shifted", [0, 3])
def test_one_shifted_feature_is_flagged_alone(seed, shifted, tmp_path):
    rng = np.random.default_rng(100 + seed)
    baseline = make_baseline(rng)
    live = rng.normal(size=(1500, WIDTH))
    live[:, shifted] = live[:, shifted] * 1.0 + 1.0
    report = judge(baseline, write_capture(tmp_path, live))
    assert report["verdict"] == "drift"
    assert [f["index"] for f in report["features"] if f["drift"]] == [shifted]
    assert report["features"][shifted]["name"] == ["amount", "age", "velocity", "distance", "hour"][shifted]


def test_recall_matches_a_count_by_hand(tmp_path):
    rng = np.random.default_rng(5)
    baseline = make_baseline(rng)
    live = rng.normal(size=(600, WIDTH))
    write_capture(tmp_path / "capture", live, ids=True)
    scores = model_score(live)
    truth = {f"txn-{i}": int(rng.random() < scores[i]) for i in range(0, 600, 2)}
    gt = tmp_path / "ground-truth" / (HOUR + timedelta(days=3)).strftime("%Y/%m/%d/%H")
    gt.mkdir(parents=True)
    (gt / "labels.jsonl").write_text("\n".join(
        json.dumps({"groundTruthData": {"data": str(label), "encoding": "CSV"}, "eventMetadata": {"eventId": key},
                    "eventVersion": "0"}) for key, label in truth.items()) + "\nnot json\n")
    report = judge(baseline, tmp_path / "capture", ground_truth=str(tmp_path / "ground-truth"))
    flagged = {f"txn-{i}": scores[i] > 0.5 for i in range(600)}
    frauds = [key for key, label in truth.items() if label == 1]
    caught = sum(flagged[key] for key in frauds)
    assert report["quality"]["labelled"] == len(truth)
    assert report["quality"]["recall"] == round(caught / len(frauds), 6)
    all_flagged = [key for key in truth if flagged[key]]
    assert report["quality"]["precision"] == round(sum(truth[k] for k in all_flagged) / len(all_flagged), 6)
    assert report["quality"]["baseline_recall"] == baseline["quality"]["recall"]
    assert report["counts"]["ground_truth"]["garbage"] == 1


def test_recall_falling_far_below_the_baseline_is_a_breach(tmp_path):
    rng = np.random.default_rng(6)
    baseline = make_baseline(rng)
    live = rng.normal(size=(800, WIDTH))
    write_capture(tmp_path / "capture", live, ids=True)
    missed = [i for i in range(800) if model_score([live[i]])[0] <= 0.5][:60]  # frauds the model let through
    gt = tmp_path / "gt" / HOUR.strftime("%Y/%m/%d/%H")
    gt.mkdir(parents=True)
    (gt / "a.jsonl").write_text("\n".join(json.dumps({"groundTruthData": {"data": "1", "encoding": "CSV"},
                                                       "eventMetadata": {"eventId": f"txn-{i}"}, "eventVersion": "0"})
                                          for i in missed))
    report = judge(baseline, tmp_path / "capture", ground_truth=str(tmp_path / "gt"))
    assert report["quality"]["recall"] == 0.0 and report["quality"]["breach"] is True
    assert report["verdict"] == "drift"


GARBAGE = [
    "", "not json", "[]", "{}", '{"captureData": 5}', "\x00\xff",
    json.dumps({"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2",
                                                  "encoding": "ROT13"},
                                "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": "0",
                                                   "encoding": "CSV"}},
                "eventMetadata": {"eventId": "x", "inferenceTime": "2026-11-03T14:00:01Z"}, "eventVersion": "0"}),
]


def _record(request, response, content=("text/csv", "text/csv"), encoding=("CSV", "CSV")):
    return json.dumps({"captureData": {
        "endpointInput": {"observedContentType": content[0], "mode": "INPUT", "data": request, "encoding": encoding[0]},
        "endpointOutput": {"observedContentType": content[1], "mode": "OUTPUT", "data": response, "encoding": encoding[1]}},
        "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": "2026-11-03T14:10:00Z"}, "eventVersion": "0"})


REFUSED = [
    _record("1,2,3", "0,0.9,0.1"),                                    # 3 features: the handler would refuse it
    _record("a,b,c,d,e", "0,0.9,0.1"),                                # not numbers
    _record("<x/>", "0", content=("application/xml", "text/csv")),   # another content type
    _record(json.dumps({"rows": [[1, 2, 3, 4, 5]]}), json.dumps({"predictions": [0]}),
            content=("application/json", "application/json"), encoding=("JSON", "JSON")),
    _record(base64.b64encode(b"1,2,3,4,5").decode(), "0,0.5,0.5", encoding=("BASE64", "CSV")),  # base64 is read: a valid one
]


def test_garbage_and_refused_records_are_counted_never_a_crash(tmp_path):
    rng = np.random.default_rng(8)
    baseline = make_baseline(rng)
    live = rng.normal(size=(300, WIDTH))
    report = judge(baseline, write_capture(tmp_path, live, extra_lines=GARBAGE + REFUSED))
    assert report["records"] == 301  # 300 + the base64 one
    counts = report["counts"]
    assert counts["garbage"] == 5 and counts["unknown_encoding"] == 1  # the blank line is not a line
    assert counts["refused_input"] == 3 and counts["other_content_type"] == 1
    assert report["invalid_records"] == 10
    assert report["data_quality"]["breach"] is True and report["verdict"] == "drift"  # 10 of 311 > 1 %
    markdown(report)


def test_an_empty_window_is_no_data(tmp_path):
    rng = np.random.default_rng(9)
    baseline = make_baseline(rng)
    write_capture(tmp_path, rng.normal(size=(50, WIDTH)), hour=HOUR - timedelta(hours=3))
    report = judge(baseline, tmp_path)
    assert report["verdict"] == "no_data" and report["records"] == 0
    assert all(f["psi"] is None for f in report["features"]) and report["predictions"]["flag_rate"] is None
    assert metric_data(report, {"EndpointName": "e"}) == [
        {"MetricName": "Records", "Dimensions": [{"Name": "EndpointName", "Value": "e"}], "Value": 0.0, "Unit": "Count"}]
    markdown(report)


def test_a_record_outside_the_window_in_an_hour_that_is_read_is_counted(tmp_path):
    rng = np.random.default_rng(10)
    baseline = make_baseline(rng)
    write_capture(tmp_path, rng.normal(size=(200, WIDTH)))
    report = run(baseline, str(tmp_path), since=HOUR + timedelta(seconds=100), until=HOUR + timedelta(hours=1))
    assert 0 < report["records"] < 200 and report["records"] + report["counts"]["outside_window"] == 200


def test_the_window_keeps_only_the_named_variant(tmp_path):
    rng = np.random.default_rng(11)
    baseline = make_baseline(rng)
    write_capture(tmp_path, rng.normal(size=(100, WIDTH)), variant="Blue")
    write_capture(tmp_path, rng.normal(size=(40, WIDTH)) + 3, variant="Shadow")
    assert judge(baseline, tmp_path, variant="Blue")["records"] == 100
    assert judge(baseline, tmp_path, variant="Blue")["verdict"] == "ok"


def test_streaming_keeps_memory_flat(tmp_path):
    """Counts only: the monitor holds bins, never the records (a batch at most)."""
    rng = np.random.default_rng(12)
    baseline = make_baseline(rng)
    monitor = Monitor(baseline)
    write_capture(tmp_path, rng.normal(size=(2000, WIDTH)))
    monitor.add_all(read_capture(str(tmp_path)))
    assert monitor.rows == 2000 and monitor._batch == [] and monitor.labelled == ([], [], [])


# ---------------------------------------------------------------- the CLI and the job

def endpointctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "endpointctl", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cli_case(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(21)
    (root / "baseline.json").write_text(json.dumps(make_baseline(rng)))
    write_capture(root / "ok", rng.normal(size=(400, WIDTH)))
    shifted = rng.normal(size=(400, WIDTH))
    shifted[:, 1] += 1.5
    write_capture(root / "drift", shifted)
    (root / "empty").mkdir()
    return root


WINDOW = ["--since", "2026-11-03T14:00Z", "--until", "2026-11-03T15:00Z"]


@pytest.mark.parametrize("case, status, verdict", [("ok", 0, "ok"), ("drift", 3, "drift"), ("empty", 3, "no_data")])
def test_monitor_cli_exit_status_and_json_follow_the_contract(cli_case, case, status, verdict):
    result = endpointctl("monitor", "--baseline", str(cli_case / "baseline.json"), "--capture", str(cli_case / case),
                         *WINDOW, "--format", "json")
    assert result.returncode == status, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == verdict
    assert report["window"] == {"start": "2026-11-03T14:00:00Z", "end": "2026-11-03T15:00:00Z"}
    assert {"verdict", "window", "records", "invalid_records", "features", "predictions", "quality"} <= set(report)
    assert all({"index", "psi", "ks", "drift"} <= set(f) for f in report["features"])
    assert {"flag_rate", "baseline_flag_rate", "psi", "drift"} <= set(report["predictions"])
    assert report["quality"] is None


@pytest.mark.parametrize("args, message", [
    (["--baseline", "missing.json", "--capture", "."], "missing.json"),
    (["--baseline", "{baseline}", "--capture", "no/such/folder"], "no such folder"),
    (["--baseline", "{capture}", "--capture", "."], "not a baseline"),
    (["--baseline", "{baseline}", "--capture", ".", "--since", "yesterday"], "--since"),
    (["--baseline", "{baseline}", "--capture", ".", "--since", "2026-11-03T15:00Z", "--until", "2026-11-03T14:00Z"],
     "not before"),
])
def test_monitor_cli_bad_input_is_one_line_and_exit_1_or_2(cli_case, tmp_path, args, message):
    (tmp_path / "not-a-baseline.json").write_text("[1, 2]")
    filled = [a.replace("{baseline}", str(cli_case / "baseline.json")).replace("{capture}", str(tmp_path / "not-a-baseline.json"))
              for a in args]
    result = endpointctl("monitor", *filled)
    assert result.returncode in (1, 2) and message in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_monitor_cli_markdown_names_the_drifted_feature(cli_case):
    result = endpointctl("monitor", "--baseline", str(cli_case / "baseline.json"), "--capture", str(cli_case / "drift"), *WINDOW)
    assert result.returncode == 3 and "## Monitor: DRIFT" in result.stdout
    assert [line for line in result.stdout.splitlines() if "**yes**" in line][0].startswith("| age |")


def test_the_job_writes_report_markdown_and_metrics(cli_case, tmp_path):
    out = tmp_path / "out"
    status = job.main(["--baseline", str(cli_case / "baseline.json"), "--capture", str(cli_case / "drift"),
                       "--ground-truth", str(tmp_path / "none-yet"), "--out", str(out), "--until", "2026-11-03T15:00:00Z",
                       "--endpoint", "rc-fraud-detection-prod", "--production-variant", "AllTraffic", "--psi", "0.25"])
    assert status == 0
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "drift" and report["thresholds"]["psi"] == 0.25
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["Namespace"] == job.NAMESPACE_DEFAULT
    names = {m["MetricName"]: m for m in metrics["MetricData"]}
    assert set(names) == {"MaxFeaturePSI", "ScorePSI", "FlagRate", "InvalidRate", "Records", "Breach"}  # no labels: no Recall
    assert names["Breach"]["Value"] == 1
    assert names["Records"]["Value"] == 400
    assert {"Name": "VariantName", "Value": "AllTraffic"} in names["Records"]["Dimensions"]
    assert (out / "report.md").read_text().startswith("## Monitor: DRIFT")


def test_the_job_runs_under_the_serving_images_python_without_the_project(cli_case, tmp_path):
    """As the Processing job starts it: `python -m monitoring.job` with only monitoring/ on the path."""
    code = tmp_path / "code"
    (code / "monitoring").mkdir(parents=True)
    for source in (Path(job.__file__).parent).glob("*.py"):
        (code / "monitoring" / source.name).write_text(source.read_text())
    result = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                             "from monitoring.job import main; sys.exit(main(sys.argv[2:]))", str(code),
                             "--baseline", str(cli_case / "baseline.json"), "--capture", str(tmp_path / "never-captured"),
                             "--out", str(tmp_path / "out"), "--until", "2026-11-03T15:00:00Z", "--endpoint", "e",
                             "--production-variant", "AllTraffic"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "no_data" in result.stdout
