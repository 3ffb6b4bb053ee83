"""The container contract, in one place: what the sklearn serving image expects of a
model, and what our handler is told.

The constructs (the models' environment), `endpointctl register` (the registered
version's container), the scorer and the local endpoint read these. The handler
(`inference/inference.py`) runs alone in the image and keeps literal copies;
tests/stack/test_contract.py pins them to the values here.
"""

from __future__ import annotations

from pathlib import Path

from serving_runtime.archive import archive_files
from serving_runtime.bundle import bundle_entries, reproducible_targz

# Where the container extracts ModelDataUrl.
MODEL_DIR = "/opt/ml/model"
# The handler packed inside model.tar.gz (network isolation, registered versions) sits
# under this prefix, and SAGEMAKER_SUBMIT_DIRECTORY then names its extracted folder.
CODE_PREFIX = "code/"
CODE_IN_ARCHIVE = f"{MODEL_DIR}/{CODE_PREFIX.rstrip('/')}"
# The file SAGEMAKER_PROGRAM names, and the file the handler loads from the model directory.
DEFAULT_PROGRAM = "inference.py"
MODEL_FILENAME = "model.joblib"
MODEL_ARCHIVE = "model.tar.gz"
# The request and response types the handler accepts.
SUPPORTED_CONTENT_TYPES = ("application/json", "text/csv")

MIB = 1024 * 1024
# InvokeEndpoint's payload limits (../shared/reference/SAGEMAKER.md, "Limits").
INSTANCE_PAYLOAD_LIMIT_BYTES = 6 * MIB
SERVERLESS_PAYLOAD_LIMIT_BYTES = 4 * MIB
# Batch Transform: MaxConcurrentTransforms x MaxPayloadInMB <= 100.
TRANSFORM_PAYLOAD_BUDGET_MB = 100
# The environment variable telling our handler its request limit.
MAX_REQUEST_BYTES_ENV = "HANDLER_MAX_REQUEST_BYTES"
# SAGEMAKER_CONTAINER_LOG_LEVEL as the SageMaker SDK sets it (logging.INFO).
CONTAINER_LOG_LEVEL = "20"


# SageMaker's names (endpoints, models, variants, model package groups): letters and
# digits, hyphens only between them, at most 63 characters.
SAGEMAKER_NAME_MAX = 63
SAGEMAKER_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"  # the length is checked apart, to say so
# The same, bounded, to embed in larger patterns (`<group>:latest-approved`, ARNs).
SAGEMAKER_NAME_BOUNDED = rf"[a-zA-Z0-9](-*[a-zA-Z0-9]){{0,{SAGEMAKER_NAME_MAX - 1}}}"
# An S3 bucket name: 3-63 characters (S3 guide, bucket naming rules).
BUCKET_NAME_MAX = 63
S3_BUCKET_NAME = rf"[a-z0-9][a-z0-9.-]{{1,{BUCKET_NAME_MAX - 2}}}[a-z0-9]"


def container_environment(*, submit_directory: str, region: str, max_request_bytes: int,
                          program: str = DEFAULT_PROGRAM) -> dict[str, str]:
    """The environment the SageMaker SDK's SKLearnModel sets, and our handler's limit."""
    return {
        "SAGEMAKER_PROGRAM": program,
        "SAGEMAKER_SUBMIT_DIRECTORY": submit_directory,
        "SAGEMAKER_CONTAINER_LOG_LEVEL": CONTAINER_LOG_LEVEL,
        "SAGEMAKER_REGION": region,
        MAX_REQUEST_BYTES_ENV: str(max_request_bytes),
    }


def archive_with_code(model_archive: Path, handler_dir: Path) -> bytes:
    """`model.tar.gz` repacked with the handler under `code/` (as the SDK packs it for
    network isolation): model and handler in one reproducible archive."""
    entries = [(name, data) for name, data in archive_files(model_archive) if not name.startswith(CODE_PREFIX)]
    return reproducible_targz(entries + bundle_entries(handler_dir, prefix=CODE_PREFIX))
