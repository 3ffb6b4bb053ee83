"""Refuse a model artifact that would fail on SageMaker, before it reaches CloudFormation.

Checks, in the order the container would trip on them:
1. `model.tar.gz` is a gzip tar with safe members and `model.joblib` at its root;
2. every estimator in the pickle was written by the scikit-learn of the serving image;
3. the handler imports and defines the four functions;
4. `model_fn` loads the model;
5. a sample request in JSON and in CSV is answered 200, within the response size limit.

Step 4 loads the pickle, and loading a pickle runs whatever code it names: the synth
and `endpointctl preflight` run this module only in `serving_runtime.sandbox`'s
untrusted child (`run_sandboxed`), never in a process that holds credentials.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from serving_runtime.archive import MAX_UNPACKED_BYTES_ENV, prepare_code, unpack_model
from serving_runtime.errors import ServingError
from serving_runtime.loader import load_handler
from serving_runtime.sandbox import DEFAULT_TIMEOUT_S, INHERITED, untrusted_child
from serving_runtime.contract import DEFAULT_PROGRAM, INSTANCE_PAYLOAD_LIMIT_BYTES, MODEL_FILENAME
from serving_runtime.image import DEFAULT_FRAMEWORK_VERSION, framework_versions, sklearn_version


class PreflightError(Exception):
    """The artifact would fail on SageMaker; the message lists every reason."""


@dataclass
class PreflightReport:
    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = [f"  ok    {line}" for line in self.passed] + [f"  FAIL  {line}" for line in self.problems]
        return "\n".join(lines)


@contextmanager
def recording_sklearn_versions() -> Iterator[list[tuple[str, str]]]:
    """Collect (estimator class, version that pickled it) while unpickling.

    Every scikit-learn estimator's state carries `_sklearn_version`, which
    `BaseEstimator.__setstate__` pops; we look at it on the way in."""
    from sklearn.base import BaseEstimator

    seen: list[tuple[str, str]] = []
    original = BaseEstimator.__setstate__

    def recording_setstate(self, state):  # type: ignore[no-untyped-def]
        if isinstance(state, dict) and type(self).__module__.startswith("sklearn."):
            seen.append((type(self).__name__, str(state.get("_sklearn_version", "pre-0.18"))))
        return original(self, state)

    BaseEstimator.__setstate__ = recording_setstate  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        BaseEstimator.__setstate__ = original  # type: ignore[method-assign]


def _check_archive(model_data: Path, model_dir: Path, report: PreflightReport) -> bool:
    """Unpack with the reader `serve` and the container emulation use (gzip verified to
    its end, size limit, safe members), then look for the model at the root."""
    try:
        unpack_model(model_data, model_dir)
    except ServingError as error:
        report.problems.append(str(error))
        return False
    if not (model_dir / MODEL_FILENAME).is_file():
        nested = sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob(MODEL_FILENAME))
        hint = f" (found {nested[0]}: pack it from inside its folder)" if nested else ""
        report.problems.append(f"{model_data} has no {MODEL_FILENAME} at its root{hint}; the handler loads model_dir/{MODEL_FILENAME}")
        return False
    report.passed.append(f"{model_data.name} is a whole gzip tar with {MODEL_FILENAME} at its root")
    return True


def run_preflight(
    model_data: Path,
    *,
    code: Path,
    program: str = DEFAULT_PROGRAM,
    framework_version: str = DEFAULT_FRAMEWORK_VERSION,
    max_response_bytes: int = INSTANCE_PAYLOAD_LIMIT_BYTES,
) -> PreflightReport:
    report = PreflightReport()
    if not model_data.is_file():
        report.problems.append(f"{model_data} does not exist")
        return report
    expected = sklearn_version(framework_version)
    with tempfile.TemporaryDirectory(prefix="preflight-") as workdir:
        model_dir = Path(workdir) / "model"
        if not _check_archive(model_data, model_dir, report):
            return report
        try:
            code_dir = prepare_code(code, Path(workdir))
            with recording_sklearn_versions() as versions:
                handler = load_handler(model_dir, code_dir, program)
        except ServingError as error:
            report.problems.append(str(error))
            return report
        report.passed.append(f"{program} imports and model_fn loads a {type(handler.model).__name__}")

        wrong = sorted({(cls, v) for cls, v in versions if v != expected})
        if wrong:
            listed = ", ".join(f"{cls} from {v}" for cls, v in wrong)
            report.problems.append(
                f"the model was pickled by another scikit-learn ({listed}); the {framework_version} image runs "
                f"scikit-learn {expected}: retrain or re-pickle with scikit-learn=={expected}"
            )
        elif versions:
            report.passed.append(f"pickled by scikit-learn {expected}, as in the {framework_version} image")
        else:
            report.passed.append("no scikit-learn estimator in the pickle; version not checked")

        n_features = int(getattr(handler.model, "n_features_in_", 5))
        row = [0.0] * n_features
        samples = [
            ("application/json", json.dumps({"instances": [row]}), "application/json"),
            ("text/csv", ",".join(map(str, row)), "text/csv"),
        ]
        for content_type, body, accept in samples:
            try:
                result = handler.invoke(body, content_type, accept)
            except Exception as error:  # the container would answer 500
                report.problems.append(f"a {content_type} sample request raised {type(error).__name__}: {error} (a 500 on SageMaker)")
                continue
            if not isinstance(result, tuple):
                status = getattr(result, "status", result)
                report.problems.append(f"a {content_type} sample request of {n_features} zeros was answered {status}, not 200")
                continue
            size = len(result[0].encode() if isinstance(result[0], str) else result[0])
            if size > max_response_bytes:
                report.problems.append(
                    f"the {content_type} sample response is {size} bytes, over the {max_response_bytes}-byte limit"
                )
                continue
            report.passed.append(f"a {content_type} sample request is answered 200 ({size} bytes, {result[1]})")
    return report


def preflight_command(
    model_data: Path,
    *,
    code: Path,
    program: str = DEFAULT_PROGRAM,
    framework_version: str = DEFAULT_FRAMEWORK_VERSION,
    max_response_bytes: int = INSTANCE_PAYLOAD_LIMIT_BYTES,
) -> list[str]:
    return [
        sys.executable, "-m", "serving_runtime.preflight",
        "--model-data", str(model_data),
        "--code", str(code),
        "--program", program,
        "--max-response-bytes", str(max_response_bytes),
        "--framework-version", framework_version,
    ]


def run_sandboxed(command: list[str], *, timeout_s: float = DEFAULT_TIMEOUT_S, **kwargs) -> subprocess.CompletedProcess:
    """Run the preflight in an untrusted child: loading the pickle runs its code, so the
    child has no AWS credentials in reach, no network where the kernel allows, a scratch
    HOME, and memory and time limits. Raises PreflightError past the time limit."""
    # The archive reader's limit is the caller's setting: it passes, nothing else does.
    limit = {MAX_UNPACKED_BYTES_ENV: os.environ[MAX_UNPACKED_BYTES_ENV]} if MAX_UNPACKED_BYTES_ENV in os.environ else {}
    try:
        with untrusted_child(extra_env=limit) as child:
            return child.run(command, timeout_s=timeout_s, **kwargs)
    except subprocess.TimeoutExpired:
        raise PreflightError(
            f"preflight did not finish within {timeout_s:g} s (loading the model runs its code; a model that "
            "takes this long to load and answer would also time out on SageMaker)"
        ) from None


def preflight_in_subprocess(
    model_data: Path,
    *,
    handler_dir: Path,
    max_response_bytes: int = INSTANCE_PAYLOAD_LIMIT_BYTES,
    framework_version: str = DEFAULT_FRAMEWORK_VERSION,
) -> None:
    """Run the preflight in a sandboxed child interpreter (the handler's imports and the
    pickle's code stay out of the caller, e.g. the CDK app, which holds deploy
    credentials) and raise PreflightError with its report."""
    command = preflight_command(model_data, code=handler_dir, max_response_bytes=max_response_bytes,
                                framework_version=framework_version)
    checked = _what_is_checked(command, model_data, handler_dir)
    if checked is not None and checked in _PASSED:
        return
    result = run_sandboxed(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise PreflightError(f"preflight refused {model_data}:\n{(result.stdout + result.stderr).strip()}")
    if checked is not None:
        _PASSED.add(checked)


# Preflights that passed in this process, by what they read: one app builds several stacks
# (and the plan several apps) from the same artifact and handler, and each would otherwise
# start a child and load the model again. A refusal is never remembered. Assumed stable
# within one process: the interpreter and its site-packages, and serving_runtime itself.
_PASSED: set[str] = set()


def _what_is_checked(command: list[str], model_data: Path, handler_dir: Path) -> str | None:
    """A digest of everything the check reads (the command, the environment the sandbox
    passes on, the archive, every file of the handler folder); None if something cannot
    be read here: the child then runs and says what."""
    inputs = [*command, *(f"{name}={os.environ.get(name, '')}" for name in (MAX_UNPACKED_BYTES_ENV, *INHERITED))]
    try:
        parts = [_file_digest(model_data)]
        if handler_dir.is_dir():
            files = sorted(path for path in handler_dir.rglob("*") if path.is_file())
            parts += [[path.relative_to(handler_dir).as_posix(), _file_digest(path)] for path in files]
        else:
            parts.append(_file_digest(handler_dir))
    except OSError:  # unreadable or missing
        return None
    # As JSON: no two different inputs give one text.
    return hashlib.sha256(json.dumps([inputs, parts]).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:  # in blocks: a model archive can be gigabytes
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def add_arguments(parser: argparse.ArgumentParser, *, default_code: Path | None = None) -> None:
    """The preflight's options, shared by `endpointctl preflight` (which passes the project's
    handler as `default_code`) and `python -m serving_runtime.preflight` (which knows no
    project: --code is then required)."""
    parser.add_argument("--model-data", type=Path, required=True, help="model.tar.gz to check")
    parser.add_argument("--code", type=Path, default=default_code, required=default_code is None,
                        help="handler folder or tar.gz" + (f" (default: {default_code})" if default_code else ""))
    parser.add_argument("--program", default=DEFAULT_PROGRAM, help=f"SAGEMAKER_PROGRAM (default: {DEFAULT_PROGRAM})")
    parser.add_argument("--framework-version", default=DEFAULT_FRAMEWORK_VERSION, choices=framework_versions(),
                        help=f"sklearn image version (default: {DEFAULT_FRAMEWORK_VERSION})")
    parser.add_argument("--max-response-bytes", type=_byte_count, default=INSTANCE_PAYLOAD_LIMIT_BYTES, help="response size limit")


def _byte_count(value: str) -> int:
    if not value.strip().isascii() or not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"got {value!r}; allowed: a whole number of bytes >= 1")
    return int(value)


def sandboxed_exit_code(args: argparse.Namespace) -> int:
    """`endpointctl preflight`: the same check in the sandboxed child; its report is
    printed as it comes, its exit code returned."""
    command = preflight_command(args.model_data, code=args.code, program=args.program,
                                framework_version=args.framework_version, max_response_bytes=args.max_response_bytes)
    return run_sandboxed(command).returncode


def report_and_exit_code(args: argparse.Namespace) -> int:
    report = run_preflight(
        args.model_data,
        code=args.code,
        program=args.program,
        framework_version=args.framework_version,
        max_response_bytes=args.max_response_bytes,
    )
    print(f"preflight {args.model_data}:")
    print(report.render())
    if not report.ok:
        print(f"refused: {len(report.problems)} problem(s) would fail the endpoint on SageMaker", file=sys.stderr)
        return 1
    print("accepted")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m serving_runtime.preflight", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(report_and_exit_code(_parser.parse_args()))
