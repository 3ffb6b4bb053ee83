"""Facts about the scikit-learn serving images, each in one place.

`sklearn_images.json` is read from the SageMaker Python SDK's
`image_uri_config/sklearn.json` (repository, tag, ECR account per region), plus the
scikit-learn each image runs (aws/sagemaker-scikit-learn-container, `docker/<version>`).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

IMAGES_JSON = Path(__file__).with_name("sklearn_images.json")

# The image the guide deploys (SKLearnModel(framework_version="1.2-1")).
DEFAULT_FRAMEWORK_VERSION = "1.2-1"


@cache
def images() -> dict[str, dict]:
    return json.loads(IMAGES_JSON.read_text())


def framework_versions() -> tuple[str, ...]:
    return tuple(images())


def sklearn_version(framework_version: str) -> str:
    """The scikit-learn the image of `framework_version` runs (a model must be pickled by it)."""
    return images()[framework_version]["scikit_learn"]


def image_uri(framework_version: str, region: str, url_suffix: str = "amazonaws.com") -> str:
    """The serving image's URI in `region` (KeyError if it is not published there)."""
    facts = images()[framework_version]
    return f"{facts['registries'][region]}.dkr.ecr.{region}.{url_suffix}/{facts['repository']}:{facts['tag']}"
