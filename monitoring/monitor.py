"""The monitor: captured traffic of one window against a model version's baseline.

One library for its three callers (the scheduled job, `endpointctl monitor`, the tests),
one report:

  {verdict: ok|drift|no_data, window: {start, end}, records, invalid_records,
   features: [{index, name?, psi, ks, drift, ...}],
   predictions: {flag_rate, baseline_flag_rate, psi, drift, ...},
   quality: null | {labelled, precision, recall, roc_auc, baseline_recall, breach, ...},
   data_quality: {...}, thresholds: {...}, counts: {...}}

How each figure is judged (the thresholds are in the report beside the figures):
- a feature, or the score, drifts when its PSI on the baseline's decile bins is above
  `psi` AND its KS statistic is above the value two samples of these sizes exceed by
  chance once in 1000 (`ks_critical`): PSI says the change matters, KS that it is real
  (PSI alone is noisy on a small window; KS alone flags harmless shifts on a big one);
- the flag rate drifts when it is over `flag_rate_ratio` times the baseline's, or under
  the baseline's divided by it, and that is beyond chance (|z| > 3.29, two-sided 0.001);
- data quality breaches when more than `max_invalid_rate` of the records cannot be read,
  or a feature has more than `max_out_of_range_rate` of its values non-finite or outside
  the baseline's range;
- realized quality breaches when recall on labelled traffic is more than `recall_drop`
  below the baseline's, judged only once `min_labelled_positives` frauds are labelled.
Verdict: no_data when no record could be used, drift when anything above breached, ok.

It streams: capture files are read a block of lines at a time (monitoring.capture), each
block's records typed and binned with numpy at once, and dropped; only labelled records'
scores are kept (as many as there are labels).
Python 3.9, standard library and numpy; no project imports (it runs in the serving image).
"""

from __future__ import annotations

import math

import numpy as np

from monitoring.capture import CSV_TYPE, JSON_TYPE, ReadCounts, decode_json, format_time, read_capture_blocks, read_ground_truth
from monitoring.stats import Binned, classification_quality, ks_critical, rounded

BATCH_RECORDS = 65536  # records `add` keeps before binning them
Z_CRITICAL = 3.29  # two-sided 0.001

DEFAULT_THRESHOLDS = {
    "psi": 0.2,
    "flag_rate_ratio": 2.0,
    "recall_drop": 0.1,
    "min_labelled_positives": 20,
    "max_invalid_rate": 0.01,
    "max_out_of_range_rate": 0.05,
}


class MonitorError(ValueError):
    """Input the monitor cannot work with (a bad baseline, a bad location); one line."""


def thresholds_with(overrides=None):
    merged = dict(DEFAULT_THRESHOLDS)
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_THRESHOLDS:
            raise MonitorError("unknown threshold %r; known: %s" % (key, ", ".join(sorted(DEFAULT_THRESHOLDS))))
        if value is not None:
            merged[key] = value
    return merged


class _Unusable(Exception):
    """A record the handler would refuse, or of a type the monitor does not read."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _input_rows(input_type, data, width):
    """The request's rows, each a list of `width` values (not yet numbers)."""
    if input_type == JSON_TYPE:
        try:
            rows = decode_json(data)["instances"]
        except (ValueError, KeyError, TypeError, RecursionError):
            raise _Unusable("refused_input")
    elif input_type == CSV_TYPE:
        if not isinstance(data, str):
            raise _Unusable("refused_input")
        rows = [line.split(",") for line in data.split("\n") if line.strip()]
    else:
        raise _Unusable("other_content_type")
    if not isinstance(rows, list) or not rows:
        raise _Unusable("refused_input")
    for row in rows:
        if not isinstance(row, list) or len(row) != width:
            raise _Unusable("refused_input")
    return rows


def _output_scores(output_type, data, rows):
    """(p(fraud) per row, flagged per row) from the response."""
    try:
        if output_type == JSON_TYPE:
            answer = decode_json(data)
            scores = [float(p[-1]) if isinstance(p, list) else float(p) for p in answer["probabilities"]]
            flags = [label == 1 or label == "1" for label in answer["predictions"]]
        elif output_type == CSV_TYPE:
            lines = [line.split(",") for line in data.split("\n") if line.strip()]
            scores = [float(fields[-1]) for fields in lines]
            flags = [fields[0].strip() == "1" for fields in lines]
        else:
            raise _Unusable("other_content_type")
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError):
        raise _Unusable("refused_output")
    if len(scores) != rows or len(flags) != rows:
        raise _Unusable("refused_output")
    return scores, flags


def _numbers(rows, width):
    """The rows as floats, as float() reads each value; a boolean, a value float() refuses
    or a nested list is refused, as the handler refuses it."""
    if any(isinstance(value, bool) for row in rows for value in row):
        raise _Unusable("refused_input")
    try:
        features = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise _Unusable("refused_input")
    if features.shape != (len(rows), width):
        raise _Unusable("refused_input")
    return features


class _NotNumbers(Exception):
    """A value of the block that float() refuses: the block is read again record by record."""


class Monitor:
    """Feed it records (`add_block` with what read_capture_blocks gives, or `add` with
    CaptureRecords), then ask for the `report`."""

    def __init__(self, baseline, thresholds=None):
        self.baseline = baseline
        self.thresholds = thresholds_with(thresholds)
        self.width = len(baseline["features"])
        self.features = [Binned(f) for f in baseline["features"]]
        self.score = Binned(baseline["score"])
        self.low = np.array([f["min"] for f in baseline["features"]])
        self.high = np.array([f["max"] for f in baseline["features"]])
        self.non_finite = np.zeros(self.width, dtype=np.int64)
        self.out_of_range = np.zeros(self.width, dtype=np.int64)
        self.rows = 0
        self.records = 0
        self.flagged = 0
        self.unusable = {"other_content_type": 0, "refused_input": 0, "refused_output": 0}
        self.labels = {}
        self.labelled = ([], [], [])  # score, flag, label of each labelled single-row record
        self._batch = []  # records given to `add`, not yet binned

    def add(self, record):
        self._batch.append((record.event_id, record.inference_id, None, record.input_type, record.input_data,
                            record.output_type, record.output_data))
        if len(self._batch) >= BATCH_RECORDS:
            self.flush()

    def add_all(self, records):
        for record in records:
            self.add(record)
        self.flush()
        return self

    def flush(self):
        batch, self._batch = self._batch, []
        if batch:
            self.add_block(batch)

    def add_block(self, block):
        """Counts and bins a block of records, tuples as read_capture_blocks gives them."""
        try:
            self._bin(*self._read(block, fast=True))
        except _NotNumbers:
            self._bin(*self._read(block, fast=False))

    def _read(self, block, fast):
        """(features, scores, flags, records, labelled) of a block; unusable records counted.
        Fast: a one-line CSV request or response is split here, and float() of its values
        is left to numpy over the whole block; a JSON request's values are typed with the
        block's too, unless its text may hold a boolean (numpy would take true for 1.0).
        A value float() refuses raises _NotNumbers: the block is then read again, not
        fast, every record typed on its own (`_numbers`). Either way a record is judged in
        one order: its request (`_input_rows`), its response (`_output_scores`), its values."""
        width, labels = self.width, self.labels
        csv_values, rows, scores, flags, labelled = [], [], [], [], []
        unusable = dict.fromkeys(self.unusable, 0)
        records = 0
        for event_id, inference_id, _, input_type, input_data, output_type, output_data in block:
            try:
                alone = not fast or type(input_data) is not str
                if not alone and input_type == CSV_TYPE and "\n" not in input_data:
                    csv_row, count = input_data.split(","), 1
                    if len(csv_row) != width:
                        raise _Unusable("refused_input")
                else:
                    alone = alone or input_type != JSON_TYPE or "true" in input_data or "false" in input_data
                    csv_row, request = None, _input_rows(input_type, input_data, width)
                    count = len(request)
                if not alone and output_type == CSV_TYPE and type(output_data) is str and "\n" not in output_data:
                    if count != 1:
                        raise _Unusable("refused_output")
                    answer, record_scores = output_data.split(","), None
                else:
                    record_scores, record_flags = _output_scores(output_type, output_data, count)
                if alone:
                    request = _numbers(request, width)
            except _Unusable as refused:
                unusable[refused.reason] += 1
                continue
            if record_scores is None:
                scores.append(answer[-1])  # float() with the block's
                flags.append(answer[0].strip() == "1")
            else:
                scores += record_scores
                flags += record_flags
            if csv_row is None:
                rows.extend(request)  # (a list: += would make it an array)
            else:
                csv_values += csv_row
            records += 1
            if labels and count == 1:
                label = labels.get(inference_id if inference_id is not None else event_id)
                if label is not None:
                    labelled.append((len(scores) - 1, label))
        try:
            features = [np.array(csv_values, dtype=np.float64).reshape(-1, width)]
            if rows:
                features.append(np.array(rows, dtype=np.float64))
                if features[-1].ndim != 2:
                    raise ValueError("a value is a list")
            scores = np.array(scores, dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            raise _NotNumbers()
        for reason, count in unusable.items():
            self.unusable[reason] += count
        return np.concatenate(features), scores, flags, records, labelled

    def _bin(self, features, scores, flags, records, labelled):
        self.records += records
        self.rows += len(features)
        self.flagged += flags.count(True)
        finite = np.isfinite(features)
        self.non_finite += (~finite).sum(axis=0)
        with np.errstate(invalid="ignore"):
            self.out_of_range += (finite & ((features < self.low) | (features > self.high))).sum(axis=0)
        for index, binned in enumerate(self.features):
            binned.add(features[finite[:, index], index])
        self.score.add(scores[np.isfinite(scores)])
        for position, label in labelled:
            self.labelled[0].append(float(scores[position]))
            self.labelled[1].append(flags[position])
            self.labelled[2].append(label)

    # ------------------------------------------------------------------ report

    def report(self, *, start=None, end=None, counts=None):
        counts = counts or ReadCounts()
        t = self.thresholds
        invalid = counts.invalid + sum(self.unusable.values())
        features = [self._feature(i, f) for i, f in enumerate(self.features)]
        predictions = self._predictions()
        quality = self._quality() if self.labels else None
        seen = self.records + invalid
        invalid_rate = invalid / seen if seen else None
        data_breach = (invalid_rate is not None and invalid_rate > t["max_invalid_rate"]) or any(
            f["out_of_range_rate"] is not None and f["non_finite_rate"] + f["out_of_range_rate"] > t["max_out_of_range_rate"]
            for f in features)
        if self.records == 0:
            verdict = "no_data"
        elif data_breach or predictions["drift"] or any(f["drift"] for f in features) or (quality and quality["breach"]):
            verdict = "drift"
        else:
            verdict = "ok"
        return {
            "verdict": verdict,
            "window": {"start": format_time(start) if start else None, "end": format_time(end) if end else None},
            "records": self.records,
            "invalid_records": invalid,
            "features": features,
            "predictions": predictions,
            "quality": quality,
            "data_quality": {"rows": self.rows, "invalid_rate": rounded(invalid_rate), "breach": bool(data_breach)},
            "thresholds": dict(t, ks_alpha=0.001, flag_rate_z=Z_CRITICAL),
            "counts": dict(counts.as_dict(), **self.unusable),
        }

    def _drifted(self, binned):
        psi, ks = binned.psi(), binned.ks()
        critical = ks_critical(binned.n, self.baseline["scored_rows"])
        drift = psi is not None and psi > self.thresholds["psi"] and ks > critical
        return {"psi": rounded(psi), "ks": rounded(ks), "ks_critical": rounded(critical), "drift": bool(drift)}

    def _feature(self, index, binned):
        kept = self.baseline["features"][index]
        figure = {"index": index}
        if "name" in kept:
            figure["name"] = kept["name"]
        figure.update(self._drifted(binned))
        figure["non_finite_rate"] = rounded(self.non_finite[index] / self.rows) if self.rows else None
        figure["out_of_range_rate"] = rounded(self.out_of_range[index] / self.rows) if self.rows else None
        return figure

    def _predictions(self):
        baseline_rate = float(self.baseline["flag_rate"])
        rate = self.flagged / self.rows if self.rows else None
        drifted = self._drifted(self.score)
        rate_drift = False
        if rate is not None:
            ratio = self.thresholds["flag_rate_ratio"]
            outside = rate > baseline_rate * ratio or rate < baseline_rate / ratio
            spread = math.sqrt(max(baseline_rate * (1 - baseline_rate), 1e-12) / self.rows)
            rate_drift = outside and abs(rate - baseline_rate) / spread > Z_CRITICAL
        return {"flag_rate": rounded(rate), "baseline_flag_rate": rounded(baseline_rate), "psi": drifted["psi"],
                "drift": bool(drifted["drift"] or rate_drift), "ks": drifted["ks"], "ks_critical": drifted["ks_critical"],
                "score_drift": drifted["drift"], "flag_rate_drift": bool(rate_drift)}

    def _quality(self):
        scores, flags, labels = self.labelled
        figures = classification_quality(scores, flags, labels)
        kept = self.baseline.get("quality") or {}
        baseline_recall = kept.get("recall")
        judged = figures["positives"] >= self.thresholds["min_labelled_positives"]
        breach = bool(judged and baseline_recall is not None and figures["recall"] is not None
                      and figures["recall"] < baseline_recall - self.thresholds["recall_drop"])
        return {"labelled": figures["labelled"], "precision": rounded(figures["precision"]),
                "recall": rounded(figures["recall"]), "roc_auc": rounded(figures["roc_auc"]),
                "baseline_recall": baseline_recall, "breach": breach,
                "positives": figures["positives"], "judged": judged, "labels_read": len(self.labels)}


def run(baseline, capture, *, since=None, until=None, ground_truth=None, thresholds=None, variant=None,
        s3_client=None):
    """The report of one window: reads the labels (collected since the window began),
    then streams the capture through a Monitor."""
    monitor = Monitor(baseline, thresholds)
    label_counts = ReadCounts()
    try:
        if ground_truth is not None:
            monitor.labels = read_ground_truth(ground_truth, since=since, counts=label_counts, s3_client=s3_client)
        counts = ReadCounts()
        for _, _, block in read_capture_blocks(capture, since=since, until=until, counts=counts, variant=variant,
                                               s3_client=s3_client):
            monitor.add_block(block)
    except ValueError as error:  # Source: no such folder, an s3:// without a bucket
        raise MonitorError(str(error))
    report = monitor.report(start=since, end=until, counts=counts)
    if ground_truth is not None:
        report["counts"]["ground_truth"] = label_counts.as_dict()
    return report


METRICS = (  # (CloudWatch metric name, unit, how to read it from a report)
    ("MaxFeaturePSI", "None", lambda r: max((f["psi"] for f in r["features"] if f["psi"] is not None), default=None)),
    ("ScorePSI", "None", lambda r: r["predictions"]["psi"]),
    ("FlagRate", "None", lambda r: r["predictions"]["flag_rate"]),
    ("InvalidRate", "None", lambda r: r["data_quality"]["invalid_rate"]),
    ("Recall", "None", lambda r: (r["quality"] or {}).get("recall")),
    ("Records", "Count", lambda r: r["records"]),
    # 1 when the verdict is drift (features, flag rate, data or realized quality), 0 when ok;
    # absent on no_data, which the silent-monitor alarm and Records judge instead.
    ("Breach", "None", lambda r: {"drift": 1, "ok": 0}.get(r["verdict"])),
)


def metric_data(report, dimensions):
    """PutMetricData's MetricData for a report: a figure that is None (no data, no
    labels yet) is left out, so a silent monitor shows as missing data."""
    found = []
    for name, unit, read in METRICS:
        value = read(report)
        if value is None or not math.isfinite(float(value)):
            continue
        found.append({"MetricName": name, "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                      "Value": float(value), "Unit": unit})
    return found


def markdown(report):
    """The report for a pull request or a terminal."""
    lines = ["## Monitor: %s" % report["verdict"].upper(), "",
             "Window %s to %s: %d records, %d invalid." % (report["window"]["start"], report["window"]["end"],
                                                            report["records"], report["invalid_records"]), ""]
    t = report["thresholds"]
    lines += ["| feature | PSI | KS | KS critical | non-finite | out of range | drift |", "|---|---|---|---|---|---|---|"]
    for f in report["features"]:
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            f.get("name", f["index"]), f["psi"], f["ks"], f["ks_critical"], f["non_finite_rate"], f["out_of_range_rate"],
            "**yes**" if f["drift"] else "no"))
    p = report["predictions"]
    lines += ["", "Predictions: flag rate %s (baseline %s), score PSI %s, KS %s: %s." % (
        p["flag_rate"], p["baseline_flag_rate"], p["psi"], p["ks"], "**drift**" if p["drift"] else "no drift")]
    q = report["quality"]
    if q is None:
        lines.append("Realized quality: no ground truth given.")
    else:
        lines.append("Realized quality on %d labelled records (%d frauds): precision %s, recall %s (baseline %s), "
                     "ROC AUC %s: %s." % (q["labelled"], q["positives"], q["precision"], q["recall"], q["baseline_recall"],
                                          q["roc_auc"], "**breach**" if q["breach"] else
                                          ("no breach" if q["judged"] else "not judged (too few frauds labelled)")))
    d = report["data_quality"]
    lines.append("Data quality: invalid rate %s: %s." % (d["invalid_rate"], "**breach**" if d["breach"] else "ok"))
    lines += ["", "Thresholds: PSI > %s with KS beyond chance (alpha %s); flag rate beyond x%s or /%s (|z| > %s); "
              "recall more than %s below baseline (from %d labelled frauds); invalid records > %s; a feature's "
              "non-finite + out-of-range values > %s." % (t["psi"], t["ks_alpha"], t["flag_rate_ratio"], t["flag_rate_ratio"],
                                                         t["flag_rate_z"], t["recall_drop"], t["min_labelled_positives"],
                                                         t["max_invalid_rate"], t["max_out_of_range_rate"]), ""]
    return "\n".join(lines)
