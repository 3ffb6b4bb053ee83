"""The demo's monitoring step: serve the deployed archives with capture into the local
S3, send normal then shifted traffic, judge each window against the model's baseline,
label some inference ids, run the scheduled job's own code on the captured data and
publish its metrics to the local CloudWatch as the workflow does (moto runs neither
EventBridge schedules nor Step Functions' SageMaker `.sync`: the template tests check those).
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import numpy as np

from endpointctl.errors import CommandError
from endpointctl.invoke import post_local
from endpointctl.local import Capture, LocalEndpoint
from endpointctl.training import synthetic_transactions
from endpointctl.watch import build_baseline
from monitoring import job
from monitoring.capture import hour_partition, write_ground_truth
from monitoring.monitor import run

SHIFTED_FEATURE = 2
TRAFFIC = 300


def _send(url: str, rows: np.ndarray, first_id: int) -> list[str]:
    """One request per row, JSON and CSV alternately, each with an inference id."""
    sent = []
    for offset, row in enumerate(rows):
        inference_id = f"txn-{first_id + offset:06d}"
        if offset % 2:
            body, content_type = json.dumps({"instances": [row.tolist()]}).encode(), "application/json"
        else:
            body, content_type = ",".join(repr(v) for v in row.tolist()).encode(), "text/csv"
        status, _, payload = post_local(url, body, content_type, "application/json", inference_id=inference_id)
        if status != 200:
            raise CommandError(f"the capturing endpoint answered {status}: {payload[:200]!r}")
        sent.append(inference_id)
    return sent


def _second() -> datetime:
    """Now, after the next whole second: captured times are to the second, so windows
    that must not share a record start on a fresh second."""
    time.sleep(1.05 - (time.time() % 1))
    return datetime.now(timezone.utc).replace(microsecond=0)


def watch_live_model(*, model_archive: Path, code_archive: Path, bucket: str, endpoint_name: str,
                     workdir: Path) -> dict:
    features, labels = synthetic_transactions(20_000, seed=7)  # the deployed sample model's own distribution
    holdout, normal, shifted = features[:2000], features[2000:2000 + TRAFFIC], features[4000:4000 + TRAFFIC].copy()
    shifted[:, SHIFTED_FEATURE] += 1.5
    (workdir / "holdout.csv").write_text("\n".join(",".join(repr(v) for v in row) for row in holdout.tolist()) + "\n")
    (workdir / "holdout-labels.csv").write_text("\n".join(str(int(v)) for v in labels[:2000]) + "\n")
    baseline = build_baseline(model_data=str(model_archive), code=str(code_archive), program="inference.py",
                              data=workdir / "holdout.csv", labels=workdir / "holdout-labels.csv")
    print(f"    baseline: {baseline['scored_rows']} holdout rows scored through the handler in the sandbox; "
          f"flag rate {baseline['flag_rate']}, recall {baseline['quality']['recall']}")
    destination = f"s3://{bucket}/data-capture"
    capture = Capture(destination, endpoint_name, "AllTraffic")
    s3 = boto3.client("s3")
    with LocalEndpoint(model_data=model_archive, code=code_archive, workers=2, capture=capture) as endpoint:
        start = _second()
        sent = _send(endpoint.url, normal, 0)
        middle = _second()
        _send(endpoint.url, shifted, TRAFFIC)
        end = _second()
    # serve has shipped every record to the local S3 as it stopped.
    seen = {"ok": run(baseline, destination, since=start, until=middle, s3_client=s3),
            "shifted": run(baseline, destination, since=middle, until=end, s3_client=s3)}
    for name, report in seen.items():
        drifted = [f["index"] for f in report["features"] if f["drift"]]
        print(f"    {name} traffic: {report['records']} records from {destination} -> verdict {report['verdict']}"
              f"{', drift in feature ' + str(drifted) if drifted else ''}")
    truth = [(inference_id, int(labels[2000 + i])) for i, inference_id in enumerate(sent) if i % 2 == 0]
    labelled = _upload_labels(s3, bucket, truth, workdir)
    seen["labelled"] = run(baseline, destination, since=start, until=middle, s3_client=s3,
                           ground_truth=f"s3://{bucket}/ground-truth")
    quality = seen["labelled"]["quality"]
    print(f"    {len(truth)} labels uploaded to {labelled}: recall {quality['recall']} "
          f"(baseline {quality['baseline_recall']}), precision {quality['precision']}, ROC AUC {quality['roc_auc']}")
    seen["published"] = _job_and_publish(s3, bucket, baseline, endpoint_name, start, end, workdir)
    return seen


def _upload_labels(s3, bucket: str, truth: list[tuple[str, int]], workdir: Path) -> str:
    path = Path(write_ground_truth(str(workdir / "ground-truth"), truth))
    key = f"ground-truth/{hour_partition(datetime.now(timezone.utc))}/{path.name}"
    s3.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"


def _job_and_publish(s3, bucket: str, baseline: dict, endpoint_name: str, start: datetime, end: datetime,
                     workdir: Path) -> list[str]:
    """What the scheduled workflow does: SageMaker copies the window's capture in, the
    isolated job writes metrics.json, the workflow publishes it with PutMetricData."""
    inputs = workdir / "job-input"
    inputs.mkdir(parents=True, exist_ok=True)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="data-capture/"):
        for item in page.get("Contents", ()):
            target = inputs / "capture" / item["Key"].removeprefix("data-capture/")
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(target))
    (inputs / "baseline.json").write_text(json.dumps(baseline))
    out = Path(tempfile.mkdtemp(dir=workdir))
    until = end + timedelta(seconds=1)
    status = job.main(["--baseline", str(inputs / "baseline.json"), "--capture", str(inputs / "capture"),
                       "--out", str(out), "--until", until.isoformat(), "--window-hours",
                       str((until - start).total_seconds() / 3600), "--endpoint", endpoint_name,
                       "--production-variant", "AllTraffic"])
    if status != 0:
        raise CommandError("monitoring.job failed on the captured data")
    metrics = json.loads((out / "metrics.json").read_text())
    cloudwatch = boto3.client("cloudwatch")
    cloudwatch.put_metric_data(Namespace=metrics["Namespace"], MetricData=metrics["MetricData"])
    listed = sorted({m["MetricName"] for m in cloudwatch.list_metrics(Namespace=metrics["Namespace"])["Metrics"]})
    print(f"    monitoring.job over the whole window -> {json.loads((out / 'report.json').read_text())['verdict']}; "
          f"published to the local CloudWatch {metrics['Namespace']}: {', '.join(listed)}")
    return listed
