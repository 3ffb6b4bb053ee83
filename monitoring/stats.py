"""The statistics the baseline stores and the monitor compares: binned shares and CDFs,
PSI, the two-sample KS statistic on the baseline's CDF grid, and classification quality.
Python 3.9, numpy only; everything works on counts, so live data is binned in batches
and never held."""

from __future__ import annotations

import math

import numpy as np

PSI_BINS = 10         # decile bins of the baseline: the usual PSI grid
CDF_POINTS = 1000     # quantile grid the KS statistic is read on (resolution 0.1 %)
EPSILON = 1e-4        # share given to an empty bin, so PSI stays finite
# KS critical value factor c(alpha) for alpha = 0.001: sqrt(-ln(alpha / 2) / 2).
KS_C_ALPHA = math.sqrt(-math.log(0.001 / 2) / 2)


def _unique_quantiles(values, points):
    return np.unique(np.quantile(values, np.linspace(0.0, 1.0, points + 1)))


def distribution(values):
    """What the baseline keeps of one variable's finite values: PSI bins (interior decile
    edges and each bin's share) and the CDF at up to CDF_POINTS + 1 quantile edges."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    interior = _unique_quantiles(values, PSI_BINS)[1:-1]
    grid = _unique_quantiles(values, CDF_POINTS)
    shares = np.bincount(np.searchsorted(interior, values, side="left"), minlength=len(interior) + 1) / len(values)
    cdf = np.searchsorted(values, grid, side="right") / len(values)
    return {"bins": {"edges": interior.tolist(), "shares": shares.tolist()},
            "cdf": {"edges": grid.tolist(), "values": cdf.tolist()}}


class Binned:
    """Live counts of one variable on a baseline's PSI bins and CDF grid, added in batches."""

    __slots__ = ("psi_edges", "psi_shares", "cdf_edges", "cdf_values", "psi_counts", "cdf_counts", "n")

    def __init__(self, kept):
        self.psi_edges = np.asarray(kept["bins"]["edges"], dtype=np.float64)
        self.psi_shares = np.asarray(kept["bins"]["shares"], dtype=np.float64)
        self.cdf_edges = np.asarray(kept["cdf"]["edges"], dtype=np.float64)
        self.cdf_values = np.asarray(kept["cdf"]["values"], dtype=np.float64)
        self.psi_counts = np.zeros(len(self.psi_edges) + 1, dtype=np.int64)
        self.cdf_counts = np.zeros(len(self.cdf_edges) + 1, dtype=np.int64)
        self.n = 0

    def add(self, values):
        """Counts a batch of finite values."""
        if len(values) == 0:
            return
        self.psi_counts += np.bincount(np.searchsorted(self.psi_edges, values, side="left"),
                                       minlength=len(self.psi_counts))
        self.cdf_counts += np.bincount(np.searchsorted(self.cdf_edges, values, side="left"),
                                       minlength=len(self.cdf_counts))
        self.n += len(values)

    def psi(self):
        if self.n == 0:
            return None
        return psi(self.psi_shares, self.psi_counts / self.n)

    def ks(self):
        """sup |F_baseline - F_live| over the baseline's quantile grid (the live CDF at
        each edge counts the values <= it)."""
        if self.n == 0:
            return None
        live = np.cumsum(self.cdf_counts)[:-1] / self.n
        return float(np.max(np.abs(live - self.cdf_values)))


def psi(expected, actual):
    """Population stability index, empty bins floored at EPSILON."""
    expected = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    actual = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_critical(n_live, n_baseline):
    """The KS statistic that two samples of these sizes exceed by chance once in 1000."""
    if n_live == 0 or n_baseline == 0:
        return None
    return KS_C_ALPHA * math.sqrt((n_live + n_baseline) / (n_live * n_baseline))


def roc_auc(scores, labels):
    """Mann-Whitney ROC AUC with tied scores given their average rank; None without both classes."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average_rank = first + (counts + 1) / 2.0  # 1-based average rank of each distinct score
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(average_rank, counts)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def classification_quality(scores, flags, labels):
    """{labelled, positives, precision, recall, roc_auc}; a ratio with no denominator is None."""
    flags = np.asarray(flags, dtype=bool)
    labels = np.asarray(labels, dtype=bool)
    true_positives = int(np.sum(flags & labels))
    flagged, positives = int(flags.sum()), int(labels.sum())
    return {
        "labelled": int(len(labels)),
        "positives": positives,
        "precision": true_positives / flagged if flagged else None,
        "recall": true_positives / positives if positives else None,
        "roc_auc": roc_auc(scores, labels),
    }


def rounded(value, digits=6):
    return None if value is None else round(float(value), digits)
