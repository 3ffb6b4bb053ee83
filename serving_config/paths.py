"""Where the project's own files are: facts about this repository, not about the service.

The serving runtime knows none of them (it runs wherever it is installed and is given
what to read); the stacks, the CLI and the tools that need the project's files take
their places from here.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The handler that ships as SAGEMAKER_SUBMIT_DIRECTORY (SAGEMAKER_PROGRAM names a file in it).
HANDLER_DIR = PROJECT_ROOT / "inference"
