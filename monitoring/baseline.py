"""The baseline a model version is watched against, built from a holdout the model scored.

Per feature: PSI bins and shares, the CDF grid for KS, the range, and the missing and
invalid rates of the holdout. For the score (p(fraud)): the same bins and grid, the
decision threshold and the fraud-flag rate. With labels: precision, recall, ROC AUC.
The scores come from serving the archive through its own handler (endpointctl runs that
in the sandboxed child); this module only counts. Python 3.9, numpy only.
"""

from __future__ import annotations

import json
import math

import numpy as np

from monitoring.stats import classification_quality, distribution, rounded

FORMAT = "fraud-monitor-baseline/1"
# The handler flags the most probable class; for a binary model that is p(fraud) > 0.5
# (argmax keeps the first of a tie: class 0).
ARGMAX_THRESHOLD = 0.5


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message says why, in one line."""


class Holdout:
    """The holdout's rows that hold a finite number in every field, and what the others held."""

    def __init__(self, rows, kept, missing, invalid):
        self.rows = rows          # list of rows of floats
        self.kept = kept          # per non-blank line: whether it is in rows
        self.missing = missing    # per feature: empty fields
        self.invalid = invalid    # per feature: fields that are not a finite number

    @property
    def total(self):
        return len(self.kept)


def parse_holdout(text):
    """The Holdout of a CSV text. A line whose width differs from the first line's is an
    error: the holdout is the endpoint's own CSV."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise BaselineError("the holdout holds no rows")
    width = len(lines[0].split(","))
    missing = [0] * width
    invalid = [0] * width
    rows, kept = [], []
    for number, line in enumerate(lines, 1):
        fields = line.split(",")
        if len(fields) != width:
            raise BaselineError("holdout line %d has %d values; the first line has %d" % (number, len(fields), width))
        row, good = [], True
        for index, field in enumerate(fields):
            if not field.strip():
                missing[index] += 1
                good = False
                continue
            try:
                value = float(field)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                invalid[index] += 1
                good = False
            row.append(value)
        if good:
            rows.append(row)
        kept.append(good)
    return Holdout(rows, kept, missing, invalid)


def parse_labels(text, rows_expected):
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if len(labels) != rows_expected:
        raise BaselineError("the labels file has %d labels; the holdout has %d rows" % (len(labels), rows_expected))
    bad = next((i for i, label in enumerate(labels, 1) if label not in ("0", "1")), None)
    if bad is not None:
        raise BaselineError("label %d is %r; labels are 0 or 1, one per line" % (bad, labels[bad - 1][:20]))
    return [int(label) for label in labels]


def build(rows, scores, *, total_rows, missing, invalid, labels=None, feature_names=None,
          threshold=ARGMAX_THRESHOLD, flags=None):
    """The baseline document. `rows` are the holdout's valid rows and `scores` their
    p(fraud); `flags` the handler's labels for them (default: score > threshold)."""
    features = np.asarray(rows, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2 or len(scores) != len(features):
        raise BaselineError("a baseline needs at least 2 scored rows")
    flags = np.asarray(flags if flags is not None else scores > threshold, dtype=bool)
    document = {
        "format": FORMAT,
        "rows": int(total_rows),
        "scored_rows": int(len(features)),
        "features": [],
        "score": distribution(scores),
        "decision_threshold": threshold,
        "flag_rate": rounded(flags.mean()),
        "quality": None,
    }
    for index in range(features.shape[1]):
        column = features[:, index]
        feature = {"index": index}
        if feature_names:
            feature["name"] = feature_names[index]
        feature.update(min=float(column.min()), max=float(column.max()),
                       missing_rate=rounded(missing[index] / total_rows), invalid_rate=rounded(invalid[index] / total_rows))
        feature.update(distribution(column))
        document["features"].append(feature)
    if labels is not None:
        quality = classification_quality(scores, flags, labels)
        document["quality"] = {key: rounded(value) if isinstance(value, float) else value for key, value in quality.items()}
    return document


def load(path_or_text):
    """A baseline document, checked enough that the monitor can trust its shape."""
    try:
        if path_or_text.lstrip().startswith("{"):
            document = json.loads(path_or_text)
        else:
            with open(path_or_text, encoding="utf-8") as handle:
                document = json.load(handle)
    except OSError as error:
        raise BaselineError("%s: %s" % (path_or_text, error.strerror or error))
    except ValueError as error:
        raise BaselineError("the baseline is not JSON: %s" % error)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BaselineError("not a baseline (its format is not %r): build one with `endpointctl baseline`" % FORMAT)
    try:
        for kept in [document["score"]] + [f for f in document["features"]]:
            if len(kept["bins"]["shares"]) != len(kept["bins"]["edges"]) + 1 or \
                    len(kept["cdf"]["values"]) != len(kept["cdf"]["edges"]):
                raise BaselineError("the baseline's bins and shares do not match")
        float(document["flag_rate"])
        float(document["decision_threshold"])
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, BaselineError):
            raise
        raise BaselineError("the baseline is incomplete (%s: %s)" % (type(error).__name__, error))
    if not document["features"]:
        raise BaselineError("the baseline has no features")
    return document
