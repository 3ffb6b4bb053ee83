"""A sample fraud-style model: 5 numeric features, rare positives, pickled for the image."""

from __future__ import annotations

import io
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


def train_sample_model(*, rows: int = 20_000, seed: int = 7) -> RandomForestClassifier:
    features, labels = synthetic_transactions(rows, seed)
    model = RandomForestClassifier(
        n_estimators=100, max_depth=10, class_weight="balanced", random_state=seed, n_jobs=1
    )
    return model.fit(features, labels)


def model_archive_bytes(model: object) -> bytes:
    """`model.tar.gz` with `model.joblib` at its root, byte-for-byte reproducible."""
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return reproducible_targz([("model.joblib", buffer.getvalue())])


def write_sample_model(out: Path, *, rows: int = 20_000, seed: int = 7) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(model_archive_bytes(train_sample_model(rows=rows, seed=seed)))
    return out
