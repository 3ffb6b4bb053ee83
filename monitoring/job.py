"""The scheduled monitoring job: a SageMaker Processing job in the endpoint's own
scikit-learn image, network-isolated. SageMaker copies its inputs to local folders
(capture, ground truth, baseline) and uploads what it writes to `--out`; it cannot call
CloudWatch itself, so it writes the metric data beside the report for the orchestration
to publish (PutMetricData runs outside the job).

    PYTHONPATH=<code> python3 -m monitoring.job --baseline B --capture DIR [--ground-truth DIR]
        --out DIR --until T [--window-hours 1] --endpoint NAME --production-variant V
        [--shadow-variant S] [--psi 0.2 ...]

Writes report.json, report.md and metrics.json (PutMetricData's MetricData, namespace and
dimensions) to --out. Exits 0 whenever it produced a report, whatever the verdict (the
verdict is in the metrics and the report; alarms judge it); 1 on bad input, in one line.

With a shadow variant (`--shadow-variant`), the shadow is monitored as production is, and
compared with it on the same requests (`watch_shadow`): its figures and the comparison go
under "shadow" in report.json, the comparison's Markdown to compare.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import timedelta

from monitoring import baseline as baselines
from monitoring.capture import parse_time
from monitoring.monitor import DEFAULT_THRESHOLDS, MonitorError, markdown, metric_data, run

NAMESPACE_DEFAULT = "FraudModel/Monitoring"


def _time(value):
    try:
        return parse_time(value)
    except ValueError:
        raise argparse.ArgumentTypeError("got %r; allowed: an ISO-8601 time" % value)


def parser():
    p = argparse.ArgumentParser(prog="monitoring.job", description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True, help="baseline.json, or a folder holding one")
    p.add_argument("--capture", required=True, help="the capture folder (endpoint or destination level)")
    p.add_argument("--ground-truth", help="ground-truth folder; its absence or emptiness is not an error")
    p.add_argument("--out", required=True, help="folder SageMaker uploads to monitoring/")
    p.add_argument("--until", type=_time, required=True, help="window end (the schedule's time)")
    p.add_argument("--window-hours", type=float, default=1.0, help="window length, hours (default 1)")
    p.add_argument("--endpoint", required=True, help="endpoint name: the metrics' dimension")
    p.add_argument("--production-variant", required=True, help="the variant whose traffic is judged")
    p.add_argument("--shadow-variant", help="a shadow variant, compared with production when given")
    p.add_argument("--namespace", default=NAMESPACE_DEFAULT, help="CloudWatch namespace (default %s)" % NAMESPACE_DEFAULT)
    p.add_argument("--kind", default="drift", choices=("drift", "quality"),
                   help="which schedule ran it: the metrics' dimension (quality windows are longer)")
    for key, value in DEFAULT_THRESHOLDS.items():
        p.add_argument("--" + key.replace("_", "-"), type=float, default=value, help="threshold (default %s)" % value)
    return p


def _baseline_file(location):
    if os.path.isdir(location):
        found = sorted(name for name in os.listdir(location) if name.endswith(".json"))
        if len(found) != 1:
            raise MonitorError("%s: expected one baseline .json, found %d" % (location, len(found)))
        return os.path.join(location, found[0])
    return location


def watch_shadow(args, baseline, capture, ground_truth, since, until, thresholds):
    """A shadow variant is monitored as production is (its own figures, its own
    `VariantName`) and compared with production on the same requests (monitoring.compare):
    agreement and both flag rates are published too, and the comparison's Markdown is
    written beside the report, for the promotion's pull request."""
    from monitoring import compare

    shadow_report = run(baseline, capture, since=since, until=until, ground_truth=ground_truth,
                        thresholds=thresholds, variant=args.shadow_variant)
    comparison = compare.compare(capture, args.production_variant, args.shadow_variant,
                                 ground_truth=ground_truth, since=since, until=until)
    dimensions = {"EndpointName": args.endpoint, "VariantName": args.shadow_variant, "Check": args.kind}
    metrics = metric_data(shadow_report, dimensions) + [
        {"MetricName": name, "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
         "Value": value, "Unit": "None"}
        for name, value in comparison.metrics().items()]
    return {"monitor": shadow_report, "comparison": comparison.as_json()}, compare.render_markdown(comparison), metrics


def main(argv=None):
    args = parser().parse_args(argv)
    until = args.until
    since = until - timedelta(hours=args.window_hours)
    thresholds = {key: getattr(args, key) for key in DEFAULT_THRESHOLDS}
    thresholds["min_labelled_positives"] = int(thresholds["min_labelled_positives"])
    ground_truth = args.ground_truth if args.ground_truth and os.path.isdir(args.ground_truth) else None
    try:
        baseline = baselines.load(_baseline_file(args.baseline))
        capture = args.capture if os.path.isdir(args.capture) else None
        if capture is None:  # nothing captured yet: SageMaker made no folder
            os.makedirs(args.capture, exist_ok=True)
            capture = args.capture
        report = run(baseline, capture, since=since, until=until, ground_truth=ground_truth,
                     thresholds=thresholds, variant=args.production_variant)
        shadow_markdown, shadow_metrics = None, []
        if args.shadow_variant:
            report["shadow"], shadow_markdown, shadow_metrics = watch_shadow(
                args, baseline, capture, ground_truth, since, until, thresholds)
    except (baselines.BaselineError, MonitorError) as error:
        print("monitoring.job: %s" % error, file=sys.stderr)
        return 1
    dimensions = {"EndpointName": args.endpoint, "VariantName": args.production_variant, "Check": args.kind}
    metrics = {"Namespace": args.namespace, "MetricData": metric_data(report, dimensions) + shadow_metrics}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "report.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    with open(os.path.join(args.out, "report.md"), "w", encoding="utf-8") as handle:
        handle.write(markdown(report))
    if shadow_markdown is not None:
        with open(os.path.join(args.out, "compare.md"), "w", encoding="utf-8") as handle:
            handle.write(shadow_markdown)
    with open(os.path.join(args.out, "metrics.json"), "w", encoding="utf-8") as handle:
        json.dump(metrics, handle)
    print("monitoring.job: %s, %d records, %d invalid" % (report["verdict"], report["records"], report["invalid_records"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
