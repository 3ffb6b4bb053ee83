"""A sample fraud-style model: 5 numeric features, rare positives, pickled for the image."""

from __future__ import annotations

import io
import json
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from serving_runtime.bundle import reproducible_targz

N_FEATURES = 5


def synthetic_transactions(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Five numeric features, about 3 % fraud: the shape of the guide's requests."""
    return make_classification(
        n_samples=rows,
        n_features=N_FEATURES,
        n_informative=4,
        n_redundant=1,
        weights=[0.97, 0.03],
        class_sep=1.5,
        random_state=seed,
    )


def train_sample_model(*, rows: int = 20_000, seed: int = 7, holdout_rows: int = 0) -> RandomForestClassifier:
    """Trained on the rows after the first `holdout_rows` (those are the holdout: the
    same distribution, never seen in training)."""
    features, labels = synthetic_transactions(rows, seed)
    features, labels = features[holdout_rows:], labels[holdout_rows:]
    model = RandomForestClassifier(
        n_estimators=100, max_depth=10, class_weight="balanced", random_state=seed, n_jobs=1
    )
    return model.fit(features, labels)


def model_archive_bytes(model: object) -> bytes:
    """`model.tar.gz` with `model.joblib` at its root, byte-for-byte reproducible."""
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return reproducible_targz([("model.joblib", buffer.getvalue())])


def write_sample_model(out: Path, *, rows: int = 20_000, seed: int = 7, holdout_rows: int = 0) -> Path:
    """The archive; with `holdout_rows`, also the holdout beside it (`sidecar(out, ...)`),
    as CSV rows the endpoint takes and one 0/1 label per row."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(model_archive_bytes(train_sample_model(rows=rows, seed=seed, holdout_rows=holdout_rows)))
    if holdout_rows:
        features, labels = synthetic_transactions(rows, seed)
        np.savetxt(sidecar(out, HOLDOUT_SUFFIX), features[:holdout_rows], delimiter=",", fmt="%.17g")
        np.savetxt(sidecar(out, LABELS_SUFFIX), labels[:holdout_rows], fmt="%d")
    return out


HOLDOUT_SUFFIX = ".holdout.csv"
LABELS_SUFFIX = ".holdout-labels.csv"
BASELINE_SUFFIX = ".baseline.json"


def sidecar(archive: Path, suffix: str) -> Path:
    """model.tar.gz -> model<suffix>, beside it (the stack finds model.baseline.json so)."""
    return archive.with_name(archive.name.removesuffix(".tar.gz") + suffix)


def sample_baseline(archive: Path, *, rows: int, seed: int) -> Path:
    """A baseline for tests that only need one to exist: the sample model's own scores on
    fresh rows, computed here (the archive is our own; real baselines are scored in the
    sandbox by `endpointctl baseline`)."""
    import tarfile

    from monitoring.baseline import build

    with tarfile.open(archive) as tar:  # our own archive, just written: safe to load here
        model = joblib.load(io.BytesIO(tar.extractfile("model.joblib").read()))
    features, labels = synthetic_transactions(rows, seed + 1000)
    scores = model.predict_proba(features)[:, 1]
    document = build(features.tolist(), scores, flags=(model.predict(features) == 1).tolist(), total_rows=rows,
                     missing=[0] * N_FEATURES, invalid=[0] * N_FEATURES, labels=labels.tolist())
    path = sidecar(archive, BASELINE_SUFFIX)
    path.write_text(json.dumps(document))
    return path
