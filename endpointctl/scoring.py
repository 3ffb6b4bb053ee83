"""Score a sample through a model archive and our handler, in an untrusted child.

Loading a pickle runs whatever code it names, and a registered version is not ours to
trust: the parent (which holds AWS credentials) never loads it. It starts this module
inside `serving_runtime.sandbox.untrusted_child` and reads the fraud probabilities
from its stdout.

Child: python -m endpointctl.scoring MODEL.tar.gz SAMPLE.json   (SAMPLE: a list of rows)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from endpointctl.errors import CommandError
from serving_runtime.image import HANDLER_DIR


def fraud_probabilities(model_archive: Path, rows: list[list[float]]) -> list[float]:
    """P(fraud) per row, as the deployed handler would answer it."""
    from serving_runtime.sandbox import untrusted_child

    with tempfile.TemporaryDirectory(prefix="scoring-") as workdir:
        sample = Path(workdir) / "sample.json"
        sample.write_text(json.dumps(rows))
        with untrusted_child() as child:
            try:
                result = child.run([sys.executable, "-m", "endpointctl.scoring", str(model_archive), str(sample)],
                                   capture_output=True, text=True)
            except subprocess.TimeoutExpired:
                raise CommandError(f"scoring {model_archive.name} took too long") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise CommandError(f"scoring {model_archive.name} failed: {last}")
    return json.loads(result.stdout)


def _child(model_archive: Path, sample: Path) -> None:
    from serving_runtime.archive import unpack_model
    from serving_runtime.loader import load_handler

    rows = json.loads(sample.read_text())
    with tempfile.TemporaryDirectory(prefix="scoring-model-") as workdir:
        handler = load_handler(unpack_model(model_archive, Path(workdir)), HANDLER_DIR)
        body, _ = handler.invoke(json.dumps({"instances": rows}), "application/json", "application/json")
    print(json.dumps([p[1] for p in json.loads(body)["probabilities"]]))


if __name__ == "__main__":
    _child(Path(sys.argv[1]), Path(sys.argv[2]))
