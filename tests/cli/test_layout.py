"""The direction of imports between the project's packages (README, "Layout").

app.py → stacks → constructs (sagemaker_serving) → serving_config → serving_runtime,
endpointctl → {stacks, serving_config, serving_runtime}, and devtools → endpointctl. The
infrastructure never imports the operations CLI, the CLI never imports the development
tools, the serving runtime imports neither the CDK nor the CLI, and the handler imports
nothing of the project (it runs alone in the serving image). Read from the source, not
by importing.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def python_files(folder: Path) -> list[Path]:
    """Every module of a package, its subpackages included (endpointctl/plan/...)."""
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


PACKAGES = {
    "app": [ROOT / "app.py"],
    "stacks": python_files(ROOT / "stacks"),
    "sagemaker_serving": python_files(ROOT / "constructs" / "sagemaker_serving"),
    "serving_config": python_files(ROOT / "serving_config"),
    "serving_runtime": python_files(ROOT / "serving_runtime"),
    "endpointctl": python_files(ROOT / "endpointctl"),
    "devtools": python_files(ROOT / "devtools"),
    "inference": python_files(ROOT / "inference"),
    "monitoring": python_files(ROOT / "monitoring"),
    "bench": python_files(ROOT / "bench"),
}
# Folders of Python that are not a layer of the application.
NOT_LAYERS = {"tests", "node_modules", "cdk.out", "build", "dist"}
# Which of the project's packages each may import; anything else is a layering error.
ALLOWED = {
    "app": {"stacks", "serving_config", "serving_runtime"},
    "stacks": {"sagemaker_serving", "serving_config", "serving_runtime"},
    "sagemaker_serving": {"serving_config", "serving_runtime"},
    "serving_config": {"serving_runtime"},
    "serving_runtime": set(),
    "endpointctl": {"stacks", "sagemaker_serving", "serving_config", "serving_runtime", "monitoring"},
    # Development tools (the local AWS, the demo harness) drive the CLI; it never imports them.
    "devtools": {"endpointctl", "stacks", "sagemaker_serving", "serving_config", "serving_runtime", "monitoring"},
    "inference": set(),
    # Runs alone in the serving image as the scheduled monitoring job.
    "monitoring": set(),
    "bench": {"endpointctl", "devtools", "serving_config", "serving_runtime", "stacks", "monitoring"},
}
CDK_LIBRARIES = {"aws_cdk", "constructs", "cdk_nag", "jsii"}
THIRD_PARTY_FORBIDDEN = {
    # The configuration core: the CLI reads it without starting the CDK's jsii runtime.
    "serving_config": CDK_LIBRARIES,
    "serving_runtime": CDK_LIBRARIES,
    "inference": {"aws_cdk", "constructs", "boto3", "botocore"},
    "monitoring": CDK_LIBRARIES,
}


def imported_top_levels(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_imports_go_one_way(package: str) -> None:
    wrong = []
    for path in PACKAGES[package]:
        imported = imported_top_levels(path)
        for other in (imported & set(PACKAGES)) - ALLOWED[package] - {package}:
            wrong.append(f"{path.relative_to(ROOT)} imports {other}")
        for library in imported & THIRD_PARTY_FORBIDDEN.get(package, set()):
            wrong.append(f"{path.relative_to(ROOT)} imports {library}")
    assert not wrong, "\n".join(wrong)


def test_no_cycle_between_packages() -> None:
    graph = {package: set() for package in PACKAGES}
    for package, paths in PACKAGES.items():
        for path in paths:
            graph[package] |= (imported_top_levels(path) & set(PACKAGES)) - {package}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        return any(n == target or (n not in seen and reaches(n, target, seen | {n})) for n in graph[start])

    cycles = [p for p in graph if reaches(p, p, set())]
    assert not cycles, f"import cycle through {cycles}"


def test_the_configuration_core_loads_without_the_cdk() -> None:
    """Every module of serving_config imported in a fresh interpreter, as the CLI does:
    no CDK library is loaded, not even through another package's import."""
    probe = (
        "import importlib, json, pkgutil, sys, serving_config\n"
        "modules = [info.name for info in pkgutil.iter_modules(serving_config.__path__)]\n"
        "for name in modules: importlib.import_module(f'serving_config.{name}')\n"
        "print(json.dumps({'modules': modules, 'loaded': sorted(m.split('.')[0] for m in sys.modules)}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert {"config", "names", "schema", "settings", "model_package", "paths"} <= set(seen["modules"])
    assert not CDK_LIBRARIES & set(seen["loaded"]), f"serving_config loaded {sorted(CDK_LIBRARIES & set(seen['loaded']))}"


def test_every_module_belongs_to_a_layer() -> None:
    """A new package or module is checked too: it must be given a row above."""
    checked = {path for paths in PACKAGES.values() for path in paths}
    unchecked = [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*.py")
        if not (set(path.relative_to(ROOT).parts[:-1]) & NOT_LAYERS)
        and not any(part.startswith(".") or part.endswith(".egg-info") or part == "__pycache__"
                    for part in path.relative_to(ROOT).parts)
        and path not in checked
    ]
    assert not unchecked, f"modules in no layer of PACKAGES: {unchecked}"
    assert ROOT / "endpointctl" / "plan" / "build.py" in checked  # subpackages are walked


# A unit a newcomer reads in one screen (issue 19).
MAX_FUNCTION_LINES = 60
MAX_SERVING_STACK_LINES = 250


def test_constructs_and_stacks_read_in_one_screen() -> None:
    long = []
    for path in PACKAGES["stacks"] + PACKAGES["sagemaker_serving"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                where = f"{path.relative_to(ROOT)}:{node.name}"
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{where} has {lines} lines")
    assert not long, f"longer than {MAX_FUNCTION_LINES} lines: {long}"
    stack_lines = len((ROOT / "stacks" / "serving_stack.py").read_text().splitlines())
    assert stack_lines <= MAX_SERVING_STACK_LINES, f"stacks/serving_stack.py has {stack_lines} lines"
