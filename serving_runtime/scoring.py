"""Score a reference sample with a model archive as the container would serve it.

Run only as a child started through `serving_runtime.sandbox.untrusted_child`: loading
the model runs whatever code its pickle names.

    python -m serving_runtime.scoring MODEL_ARCHIVE CODE PROGRAM SAMPLE_CSV

CODE is a folder, a sourcedir.tar.gz, or `/opt/ml/model/<dir>` for a handler packed
inside the model archive (network isolation). Prints one JSON object: each row's
label and p(class 1), the time to load the model, and the time per row for one batch
request and for one-row requests.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from serving_runtime.archive import prepare_code, unpack_model
from serving_runtime.contract import MODEL_DIR
from serving_runtime.errors import ServingError
from serving_runtime.loader import LoadedHandler, load_handler

MODEL_DIR_IN_CONTAINER = f"{MODEL_DIR}/"
JSON = "application/json"
SINGLE_ROW_REQUESTS = 25


def _body(result: Any) -> bytes:
    """What the container would send: output_fn's (body, type), or a response object."""
    if isinstance(result, tuple):
        result = result[0]
    status = getattr(result, "status_code", 200)
    if hasattr(result, "get_data"):
        result = result.get_data()
    if status >= 400:
        raise ServingError(f"the handler answered {status}: {result[:200]!r}")
    return result.encode() if isinstance(result, str) else bytes(result)


def _score(handler: LoadedHandler, rows: list[list[float]]) -> tuple[list[int], list[float]]:
    answer = json.loads(_body(handler.invoke(json.dumps({"instances": rows}), JSON, JSON)))
    probabilities = [p[1] if isinstance(p, list) and len(p) > 1 else float(p) for p in answer["probabilities"]]
    labels = [int(label) for label in answer["predictions"]]
    return labels, probabilities


def code_folder(code: str, model_dir: Path, workdir: Path) -> Path:
    """SAGEMAKER_SUBMIT_DIRECTORY as the container finds it: `/opt/ml/model/<dir>` is a
    folder of the unpacked model (a handler packed inside its archive); anything else is
    a folder or a tar.gz (extracted into `workdir`)."""
    if code.startswith(MODEL_DIR_IN_CONTAINER):
        return model_dir / code.removeprefix(MODEL_DIR_IN_CONTAINER)
    return prepare_code(Path(code), workdir)


def _load(model_archive: Path, code: str, program: str, workdir: Path) -> LoadedHandler:
    model_dir = unpack_model(model_archive, workdir / "model")
    return load_handler(model_dir, code_folder(code, model_dir, workdir), program)


def score(model_archive: Path, code: str, program: str, sample: Path) -> dict[str, Any]:
    rows = [[float(x) for x in line.split(",")] for line in sample.read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory(prefix="scoring-") as workdir:
        started = time.perf_counter()
        handler = _load(model_archive, code, program, Path(workdir))
        loaded = time.perf_counter()
        labels, probabilities = _score(handler, rows)
        batch_s = time.perf_counter() - loaded
        single = []
        for row in rows[:SINGLE_ROW_REQUESTS]:
            t0 = time.perf_counter()
            _score(handler, [row])
            single.append(time.perf_counter() - t0)
    return {"labels": labels, "probabilities": probabilities, "load_s": loaded - started,
            "batch_ms_per_row": 1000 * batch_s / len(rows), "single_row_ms": 1000 * statistics.median(single)}


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: python -m serving_runtime.scoring MODEL_ARCHIVE CODE PROGRAM SAMPLE_CSV", file=sys.stderr)
        return 2
    model_archive, code, program, sample = argv
    try:
        print(json.dumps(score(Path(model_archive), code, program, Path(sample))))
    except (ServingError, ValueError, KeyError, OSError) as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
