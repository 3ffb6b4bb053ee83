"""Every GitHub Actions workflow passes actionlint (syntax, expressions, action inputs,
deprecated runtimes), so a broken workflow fails here rather than on the next push."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))


def actionlint() -> str:
    # requirements-dev.txt installs it into the venv beside this interpreter.
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent))
    assert found, "actionlint is not installed: pip install -r requirements-dev.txt"
    return found


def test_there_is_a_pull_request_workflow():
    assert ROOT / ".github" / "workflows" / "pull-request.yml" in WORKFLOWS


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow: Path):
    result = subprocess.run([actionlint(), "-no-color", str(workflow)], capture_output=True, text=True, cwd=ROOT,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: pull_request\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo ${{ github.event.pull_request.nope( }}\n")
    result = subprocess.run([actionlint(), "-no-color", str(broken)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "broken.yml:6" in result.stdout
