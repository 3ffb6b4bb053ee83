"""Local batch transform: rows per second against parsing plus `predict_proba` on the
whole file at once. Target: >= 70 % of the floor's rows per second.

Input: 200,000 rows x 5 features, one CSV record per line (Python float reprs, ~19 MB).
Measured: `endpointctl.transform.transform_local` (split by line into mini-batches of
at most 6 MB, POST text/csv, Accept text/csv, write <input>.out) against
`LocalEndpoint(workers=1)` with MaxConcurrentTransforms 1, so it has one core as the
floor has; a row with 2 concurrent mini-batches and 2 workers is informational.
Floor: `np.loadtxt` of the whole file + `predict_proba` on it, in this process.
Alternated, order flipped each round; medians.

    python -m bench.batch_transform
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from bench._common import Result, csv_body, feature_rows, load_sample_handler, main_for, median, sample_model

ROWS = 200_000
MAX_PAYLOAD_MB = 6
ROUNDS = 3
TARGET = 0.70


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="bench-transform-") as workdir:
        return _run(Path(workdir))


def _run(workdir: Path) -> list[Result]:
    from endpointctl.local import LocalEndpoint

    archive, _ = sample_model()
    model = load_sample_handler().model
    from endpointctl.transform import transform_local as transform

    input_path = workdir / "transactions.csv"
    features = feature_rows(ROWS, seed=23)
    input_path.write_text(csv_body(features) + "\n")
    expected_labels = model.classes_[model.predict_proba(features).argmax(axis=1)]

    def floor() -> float:
        start = time.perf_counter()
        array = np.loadtxt(input_path, delimiter=",", dtype=np.float64, ndmin=2)
        model.predict_proba(array)
        return time.perf_counter() - start

    def measured(url: str, concurrent: int) -> float:
        out_dir = workdir / f"out-{concurrent}"
        start = time.perf_counter()
        out = transform(url, input_path, out_dir, max_payload_mb=MAX_PAYLOAD_MB, max_concurrent=concurrent,
                        progress=False)
        elapsed = time.perf_counter() - start
        labels = np.loadtxt(out, delimiter=",", usecols=0, dtype=expected_labels.dtype)
        assert labels.shape == expected_labels.shape and (labels == expected_labels).all(), "wrong transform output"
        return elapsed

    floors, ones, twos = [], [], []
    with LocalEndpoint(model_data=archive, workers=1) as one, LocalEndpoint(model_data=archive, workers=2) as two:
        measured(one.url, 1)  # warm up, and check the output once
        for i in range(ROUNDS):
            steps = [lambda: floors.append(floor()), lambda: ones.append(measured(one.url, 1)),
                     lambda: twos.append(measured(two.url, 2))]
            for step in (steps if i % 2 == 0 else steps[::-1]):
                step()

    floor_rps = ROWS / median(floors)
    size = input_path.stat().st_size
    rows = []
    for label, times, target in (("1 worker, 1 mini-batch at a time", ones, TARGET), ("2 workers, 2 concurrent", twos, None)):
        rps = ROWS / median(times)
        share = rps / floor_rps
        rows.append(Result(
            f"local batch transform, {label}", f"{rps:,.0f} rows/s", f"{floor_rps:,.0f} rows/s", f"{share:.0%}",
            f"≥ {target:.0%}" if target else "— (info)", (share >= target) if target else None,
            [f"{ROUNDS} alternated rounds: {', '.join(f'{t:.2f}' for t in times)} s vs floor "
             f"{', '.join(f'{t:.2f}' for t in floors)} s; {ROWS:,} rows, {size / 1e6:.1f} MB, "
             f"{-(-size // (MAX_PAYLOAD_MB * 1024 * 1024))}+ mini-batches ≤ {MAX_PAYLOAD_MB} MB; via endpointctl.transform.transform_local"],
        ))
    return rows


if __name__ == "__main__":
    main_for(run)
