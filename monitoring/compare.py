"""Champion against challenger on the same captured requests: the shadow report.

Runs in the CLI (`endpointctl compare`) and in the scikit-learn serving image as part of
the scheduled monitoring job: Python 3.9, standard library and numpy only, no project
imports beyond this folder.

Pairing. SageMaker copies a share of the production variant's requests to the shadow
variant, and data capture logs both, each under its variant's folder
(../shared/reference/SAGEMAKER.md, "Watching a live endpoint"). A production record and
a shadow record are the same request when they carry the same `inferenceId` (the
caller's InferenceId, part of the request SageMaker copies). AWS documents no rule that
the shadow's copy keeps the production record's `eventId`, so an equal `eventId` pairs
records only as a fallback: if SageMaker gives the copy its own eventId, records without
an inferenceId simply stay unpaired, and the report counts them. Send InferenceId.

What is compared. Each response holds one prediction per input row (the handler's
`{"predictions", "probabilities"}` JSON or `label,p0,p1` CSV lines). A row is flagged
when its label is 1 (fraud); p is the probability of the last class (fraud). Paired
records are compared row by row: agreement is the share of rows with the same label,
delta_p the absolute difference of p. A response that holds no predictions (a refused
request's error body) is counted as unreadable and left out.

The JSON is the contract of `endpointctl compare --format json`:
  {production: {variant, records, flag_rate}, shadow: {variant, records, flag_rate},
   paired, agreement, delta_p: {p50, p99, max},
   quality: null | {labelled, production: {precision, recall}, shadow: {precision, recall}}}
"""

from __future__ import annotations

import csv
import io
import json
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

try:
    from monitoring.capture import CaptureRecord, ReadCounts, read_capture, read_ground_truth
except ImportError:  # run from its own folder in the serving image, without the package
    from capture import CaptureRecord, ReadCounts, read_capture, read_ground_truth  # type: ignore[no-redef]

FRAUD_LABEL = "1"


class Scored:
    """One captured record's predictions: labels as text, p of the last class."""

    __slots__ = ("record", "labels", "p")

    def __init__(self, record, labels, p):
        self.record = record  # CaptureRecord
        self.labels = labels  # List[str]
        self.p = p            # List[float]


def _label_text(value) -> str:
    """1, 1.0, '1' and '1.0' are the same label."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else repr(number)


def parse_predictions(output_type: str, text: str) -> Optional[Tuple[List[str], List[float]]]:
    """(labels, p of the last class) of a handler response, or None if it holds none."""
    try:
        if output_type == "application/json":
            body = json.loads(text)
            labels, probabilities = body["predictions"], body["probabilities"]
            if len(labels) != len(probabilities):
                return None
            rows = [(label, float(row[-1])) for label, row in zip(labels, probabilities)]
        elif output_type == "text/csv":
            lines = [cells for cells in csv.reader(io.StringIO(text)) if cells]
            if any(len(cells) < 2 for cells in lines):
                return None
            rows = [(cells[0], float(cells[-1])) for cells in lines]
        else:
            return None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None
    if not rows or any(not np.isfinite(p) for _, p in rows):
        return None
    return [_label_text(label) for label, _ in rows], [p for _, p in rows]


class VariantSide:
    """What one variant's capture holds: its scored records and what was skipped."""

    def __init__(self, variant: str):
        self.variant = variant
        self.scored = []  # type: List[Scored]
        self.counts = ReadCounts()
        self.unreadable = 0  # records whose response holds no predictions

    def add(self, records: Iterable[CaptureRecord]) -> "VariantSide":
        for record in records:
            parsed = parse_predictions(record.output_type, record.output_data)
            if parsed is None:
                self.unreadable += 1
            else:
                self.scored.append(Scored(record, parsed[0], parsed[1]))
        return self

    @property
    def rows(self) -> int:
        return sum(len(s.labels) for s in self.scored)

    def flag_rate(self) -> Optional[float]:
        rows = self.rows
        flagged = sum(label == FRAUD_LABEL for s in self.scored for label in s.labels)
        return flagged / rows if rows else None

    def summary(self) -> dict:
        return {"variant": self.variant, "records": len(self.scored), "flag_rate": _rounded(self.flag_rate())}


def pair(production: List[Scored], shadow: List[Scored]) -> Tuple[List[Tuple[Scored, Scored]], int]:
    """(pairs, shadow records left unpaired). By inferenceId when both have one, else by
    eventId; each shadow record pairs at most once (a repeated key pairs its first)."""
    by_inference, by_event = {}, {}  # type: Dict[str, int], Dict[str, int]
    for index, s in enumerate(shadow):
        if s.record.inference_id is not None:
            by_inference.setdefault(s.record.inference_id, index)
        by_event.setdefault(s.record.event_id, index)
    used = set()
    pairs = []
    for p in production:
        index = by_inference.get(p.record.inference_id) if p.record.inference_id is not None else None
        if index is None:
            index = by_event.get(p.record.event_id)
        if index is None or index in used:
            continue
        used.add(index)
        pairs.append((p, shadow[index]))
    return pairs, len(shadow) - len(used)


def _rounded(value: Optional[float], digits: int = 6) -> Optional[float]:
    return None if value is None else round(float(value), digits)


def _precision_recall(predicted: List[bool], actual: List[bool]) -> dict:
    true_positive = sum(p and a for p, a in zip(predicted, actual))
    flagged, positive = sum(predicted), sum(actual)
    return {"precision": _rounded(true_positive / flagged) if flagged else None,
            "recall": _rounded(true_positive / positive) if positive else None}


def _quality(pairs: List[Tuple[Scored, Scored]], labels: Optional[Dict[str, int]]) -> Optional[dict]:
    """Precision and recall of both on the paired single-row records that have a label
    (a label belongs to a request, so a request of several rows cannot be scored)."""
    if labels is None:
        return None
    production, shadow, actual = [], [], []
    for p, s in pairs:
        label = labels.get(p.record.join_key)
        if label is None or len(p.labels) != 1 or len(s.labels) != 1:
            continue
        production.append(p.labels[0] == FRAUD_LABEL)
        shadow.append(s.labels[0] == FRAUD_LABEL)
        actual.append(label == 1)
    return {"labelled": len(actual), "production": _precision_recall(production, actual),
            "shadow": _precision_recall(shadow, actual)}


class Comparison:
    """The report: `as_json()` is the contract; the counts behind it go into Markdown."""

    def __init__(self, production: VariantSide, shadow: VariantSide, labels: Optional[Dict[str, int]] = None,
                 label_counts: Optional[ReadCounts] = None):
        self.production, self.shadow = production, shadow
        self.pairs, self.unpaired_shadow = pair(production.scored, shadow.scored)
        self.unpaired_production = len(production.scored) - len(self.pairs)
        self.row_mismatch = 0  # pairs whose responses hold different numbers of rows: not compared
        same, deltas = 0, []
        for p, s in self.pairs:
            if len(p.labels) != len(s.labels):
                self.row_mismatch += 1
                continue
            same += sum(a == b for a, b in zip(p.labels, s.labels))
            deltas.extend(abs(a - b) for a, b in zip(p.p, s.p))
        self.compared_rows = len(deltas)
        self.agreement = same / len(deltas) if deltas else None
        self.deltas = np.array(deltas, dtype=float)
        self.quality = _quality(self.pairs, labels)
        self.label_counts = label_counts

    def delta_p(self) -> dict:
        if not self.deltas.size:
            return {"p50": None, "p99": None, "max": None}
        p50, p99 = np.percentile(self.deltas, [50, 99])
        return {"p50": _rounded(p50), "p99": _rounded(p99), "max": _rounded(self.deltas.max())}

    def as_json(self) -> dict:
        return {"production": self.production.summary(), "shadow": self.shadow.summary(),
                "paired": len(self.pairs), "agreement": _rounded(self.agreement),
                "delta_p": self.delta_p(), "quality": self.quality}

    def metrics(self) -> Dict[str, float]:
        """What the scheduled job publishes (CloudWatch takes no NaN: absent values are left out)."""
        values = {"Agreement": self.agreement, "ProductionFlagRate": self.production.flag_rate(),
                  "ShadowFlagRate": self.shadow.flag_rate()}
        return {name: float(value) for name, value in values.items() if value is not None}


def compare(capture: str, production: str, shadow: str, *, ground_truth: Optional[str] = None,
            since=None, until=None, s3_client=None) -> Comparison:
    """The report of `capture` (a destination, endpoint or variant-parent folder, or s3://)."""
    sides = []
    for variant in (production, shadow):
        side = VariantSide(variant)
        side.add(read_capture(capture, since, until, side.counts, variant=variant, s3_client=s3_client))
        sides.append(side)
    labels, label_counts = None, None
    if ground_truth is not None:
        label_counts = ReadCounts()
        labels = read_ground_truth(ground_truth, None, None, label_counts, s3_client=s3_client)
    return Comparison(sides[0], sides[1], labels, label_counts)


# ---------------------------------------------------------------------------- Markdown

def _percent(value: Optional[float]) -> str:
    return "n/a" if value is None else "%.2f %%" % (100 * value)


def _number(value: Optional[float]) -> str:
    return "n/a" if value is None else "%.4f" % value


def render_markdown(report: Comparison) -> str:
    """The report for the promotion pull request and the monitoring job's output."""
    data = report.as_json()
    production, shadow = report.production, report.shadow
    lines = [
        "## Champion vs challenger: `%s` (production) against `%s` (shadow)" % (production.variant, shadow.variant),
        "",
        "| | production `%s` | shadow `%s` |" % (production.variant, shadow.variant),
        "|---|---:|---:|",
        "| records | %d | %d |" % (len(production.scored), len(shadow.scored)),
        "| predictions (rows) | %d | %d |" % (production.rows, shadow.rows),
        "| flag rate | %s | %s |" % (_percent(production.flag_rate()), _percent(shadow.flag_rate())),
        "| unpaired records | %d | %d |" % (report.unpaired_production, report.unpaired_shadow),
        "| unreadable responses | %d | %d |" % (production.unreadable, shadow.unreadable),
        "| invalid capture lines | %d | %d |" % (production.counts.invalid, shadow.counts.invalid),
        "| outside the window | %d | %d |" % (production.counts.outside_window, shadow.counts.outside_window),
        "",
        "- Paired records: **%d** (by inferenceId, else eventId); rows compared: %d%s"
        % (data["paired"], report.compared_rows,
           "; %d pairs with different row counts left out" % report.row_mismatch if report.row_mismatch else ""),
        "- Agreement (same label): **%s**" % _percent(report.agreement),
        "- |Δp(fraud)|: p50 %s, p99 %s, max %s" % tuple(_number(data["delta_p"][k]) for k in ("p50", "p99", "max")),
    ]
    quality = data["quality"]
    if quality is None:
        lines.append("- Quality: no ground truth given")
    else:
        lines += [
            "- Quality on %d labelled pairs%s:" % (quality["labelled"], _label_note(report.label_counts)),
            "",
            "| | precision | recall |",
            "|---|---:|---:|",
        ]
        for side in ("production", "shadow"):
            lines.append("| %s | %s | %s |" % (side, _number(quality[side]["precision"]), _number(quality[side]["recall"])))
    return "\n".join(lines) + "\n"


def _label_note(counts: Optional[ReadCounts]) -> str:
    if counts is None or not counts.invalid:
        return ""
    return " (%d invalid ground-truth lines skipped)" % counts.invalid


__all__ = ["Comparison", "VariantSide", "compare", "pair", "parse_predictions", "render_markdown"]
