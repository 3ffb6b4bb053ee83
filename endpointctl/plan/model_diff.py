"""The model's behaviour before and after: each archive loaded as the container does
and scored on one reference sample, in a sandboxed child (serving_runtime.scoring;
loading a pickle runs its code, so the child gets no AWS credentials, no network, a
scratch HOME and limits). An s3:// archive is downloaded here first, with this process's
credentials (the local AWS included)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from endpointctl.errors import CommandError
from endpointctl.plan.artifacts import Archive
from serving_runtime.sandbox import untrusted_child
from serving_runtime.scoring import MODEL_DIR_IN_CONTAINER

# The reference sample when none is given: the training data's shape, fixed seed.
DEFAULT_SAMPLE_ROWS = 2000
DEFAULT_SAMPLE_SEED = 20261129
DEFAULT_SAMPLE = Path(__file__).with_name("reference_sample.csv")
SCORING_TIMEOUT_S = 120
PARALLEL_LOADS = 2


@dataclass(frozen=True)
class Served:
    """One side: the model archive, the handler code, the program."""

    model: Archive
    code: Archive | None
    program: str

    @property
    def key(self) -> tuple:
        return (self.model.asset_hash or self.model.location, self.code.asset_hash or self.code.location
                if self.code else None, self.program)


def write_default_sample(path: Path) -> Path:
    """The default reference sample: DEFAULT_SAMPLE_ROWS rows of the training data's
    shape (endpointctl.training.synthetic_transactions, DEFAULT_SAMPLE_SEED), shipped as a
    file so a plan does not import scikit-learn to make it (tests/release/test_plan.py checks the
    file is exactly that)."""
    shutil.copyfile(DEFAULT_SAMPLE, path)
    return path


def default_sample_text() -> str:
    from endpointctl.training import synthetic_transactions

    features, _ = synthetic_transactions(DEFAULT_SAMPLE_ROWS, seed=DEFAULT_SAMPLE_SEED)
    buffer = io.StringIO()
    np.savetxt(buffer, features, delimiter=",", fmt="%.6f")
    return buffer.getvalue()


class Scorer:
    """Scores each distinct (model, code) once, two children at a time."""

    def __init__(self, sample: Path | None, workdir: Path):
        self.workdir = workdir
        self.given_sample = sample
        self.results: dict[tuple, dict[str, Any]] = {}

    @cached_property
    def sample(self) -> Path:
        """Written when the first model is scored: a plan without a model diff never pays
        for importing scikit-learn here."""
        return self.given_sample or write_default_sample(self.workdir / "reference-sample.csv")

    @staticmethod
    def unreachable(served: Served) -> str | None:
        """Why this side cannot be scored, or None."""
        for archive in (served.model, served.code):
            if archive is None:
                return "the model names no handler code (SAGEMAKER_SUBMIT_DIRECTORY)"
            if archive.asset_hash is not None:
                if archive.local_file is None or not archive.local_file.exists():
                    return f"{archive.label} is not in the assembly"
            elif not archive.location.startswith(("s3://", MODEL_DIR_IN_CONTAINER)) or "${" in archive.location:
                return f"{archive.location} is neither a file of the assembly nor an s3:// URL"
        return None

    def score_all(self, sides: list[Served]) -> None:
        todo = list({s.key: s for s in sides if s.key not in self.results}.values())
        if not todo:
            return
        self.sample  # noqa: B018 - written once, before the threads read it
        with ThreadPoolExecutor(max_workers=PARALLEL_LOADS) as pool:
            for served, result in zip(todo, pool.map(self._score_one, todo)):
                self.results[served.key] = result

    def _local(self, archive: Archive, name: str) -> str:
        if archive.local_file is not None:
            return str(archive.local_file)
        if archive.location.startswith(MODEL_DIR_IN_CONTAINER):
            return archive.location
        from endpointctl.local import fetch

        target = Path(tempfile.mkdtemp(dir=self.workdir))
        return str(fetch(archive.location, target, name))

    def _score_one(self, served: Served) -> dict[str, Any]:
        try:
            model = self._local(served.model, "model.tar.gz")
            code = self._local(served.code, "sourcedir.tar.gz") if served.code else ""
        except Exception as error:  # boto3's errors and a missing file alike: the diff is skipped, said why
            return {"error": f"cannot fetch the archives: {type(error).__name__}: {error}"}
        argv = [sys.executable, "-m", "serving_runtime.scoring", model, code, served.program, str(self.sample)]
        with untrusted_child() as child:
            try:
                done = child.run(argv, capture_output=True, text=True, timeout_s=SCORING_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                return {"error": f"scoring {served.model.label} took over {SCORING_TIMEOUT_S} s"}
        if done.returncode != 0:
            return {"error": f"scoring {served.model.label} failed: {done.stderr.strip()[-300:]}"}
        return json.loads(done.stdout)


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    if "error" in before or "error" in after:
        return {"skipped": before.get("error") or after.get("error")}
    old_labels, new_labels = np.array(before["labels"]), np.array(after["labels"])
    delta = np.abs(np.array(after["probabilities"]) - np.array(before["probabilities"]))
    return {
        "rows": int(len(old_labels)),
        "label_agreement": float(np.mean(old_labels == new_labels)),
        "fraud_flag_rate_before": float(np.mean(old_labels == 1)),
        "fraud_flag_rate_after": float(np.mean(new_labels == 1)),
        "p99_abs_delta_p_fraud": float(np.quantile(delta, 0.99)),
        "max_abs_delta_p_fraud": float(delta.max()),
        "single_row_ms_before": before["single_row_ms"], "single_row_ms_after": after["single_row_ms"],
        "batch_ms_per_row_before": before["batch_ms_per_row"], "batch_ms_per_row_after": after["batch_ms_per_row"],
    }


def sample_path(option: str | None) -> Path | None:
    if option is None:
        return None
    path = Path(option)
    if not path.is_file():
        raise CommandError(f"--sample {option}: no such file; pass a CSV of feature rows (no header)")
    return path
