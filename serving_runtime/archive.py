"""The one reader of model and code archives: what the container does with
ModelDataUrl and SAGEMAKER_SUBMIT_DIRECTORY. Used by the preflight, `serve` and the synth."""

from __future__ import annotations

import tarfile
from pathlib import Path

from serving_runtime.errors import ServingError


def safe_extract(archive: Path, destination: Path) -> None:
    """Extract a gzip tar, refusing absolute paths, `..` and links out of the tree."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(destination, filter="data")
    except tarfile.ReadError as error:
        raise ServingError(f"{archive} is not a gzip tar archive ({error}); SageMaker extracts it as tar.gz") from error
    except tarfile.FilterError as error:
        raise ServingError(f"{archive} holds an unsafe member: {error}") from error


def unpack_model(model_data: Path, model_dir: Path) -> Path:
    """What the container does with ModelDataUrl: extract it into /opt/ml/model."""
    if not model_data.is_file():
        raise ServingError(f"model data {model_data} does not exist")
    model_dir.mkdir(parents=True, exist_ok=True)
    safe_extract(model_data, model_dir)
    return model_dir


def prepare_code(code: Path, workdir: Path) -> Path:
    """SAGEMAKER_SUBMIT_DIRECTORY: a folder is used as it is, a tar.gz is extracted."""
    if code.is_dir():
        return code
    if code.is_file():
        target = workdir / "code"
        target.mkdir(parents=True, exist_ok=True)
        safe_extract(code, target)
        return target
    raise ServingError(f"handler code {code} is neither a folder nor a .tar.gz file")
