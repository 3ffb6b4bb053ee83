"""`endpointctl baseline` and `endpointctl monitor`: the CLI's side of monitoring/.

The baseline scores the holdout by serving the archive through its own handler in the
sandboxed child (loading a model runs its code), as `plan` scores models; the monitor
is monitoring.monitor, the same code the scheduled job runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from endpointctl.errors import CommandError
from monitoring import baseline as baselines
from monitoring.monitor import MonitorError, markdown, run
from serving_runtime.sandbox import untrusted_child

SCORING_TIMEOUT_S = 600
EXIT_BREACH = 3  # drift, a quality breach, or no data in the window


def score_in_sandbox(model: str, code: str, program: str, sample: Path) -> dict[str, Any]:
    """serving_runtime.scoring in the untrusted child: each row's label and p(fraud)."""
    argv = [sys.executable, "-m", "serving_runtime.scoring", model, code, program, str(sample)]
    with untrusted_child() as child:
        try:
            done = child.run(argv, capture_output=True, text=True, timeout_s=SCORING_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise CommandError(f"scoring the holdout took over {SCORING_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise CommandError(f"scoring the holdout failed: {done.stderr.strip()[-300:]}")
    return json.loads(done.stdout)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"{what} {path}: {getattr(error, 'strerror', None) or error}") from None


def build_baseline(*, model_data: str, code: str, program: str, data: Path, labels: Path | None,
                   flags: tuple[str, str] = ("--data", "--labels")) -> dict[str, Any]:
    """The baseline of `model_data` on the holdout `data` (and its `labels`); errors name
    the command's `flags` for the two files."""
    data_flag, labels_flag = flags
    try:
        holdout = baselines.parse_holdout(_read_text(data, data_flag))
        label_list = baselines.parse_labels(_read_text(labels, labels_flag), holdout.total) if labels else None
    except baselines.BaselineError as error:
        raise CommandError(f"{data_flag} {data}: {error}") from None
    if label_list is not None:  # the labels of the rows that are scored
        label_list = [label for label, kept in zip(label_list, holdout.kept) if kept]
    rows = holdout.rows
    if len(rows) < 2:
        raise CommandError(f"{data_flag} {data}: fewer than 2 rows hold a finite number in every field")
    with tempfile.TemporaryDirectory(prefix="endpointctl-baseline-") as workdir:
        sample = Path(workdir) / "holdout.csv"
        sample.write_text("\n".join(",".join(repr(v) for v in row) for row in rows) + "\n")
        scored = score_in_sandbox(model_data, code, program, sample)
    try:
        return baselines.build(rows, scored["probabilities"], flags=[label == 1 for label in scored["labels"]],
                               total_rows=holdout.total, missing=holdout.missing, invalid=holdout.invalid,
                               labels=label_list)
    except baselines.BaselineError as error:
        raise CommandError(str(error)) from None


def run_baseline(args: argparse.Namespace) -> int:
    from endpointctl.local import fetch

    with tempfile.TemporaryDirectory(prefix="endpointctl-baseline-") as workdir:
        model = fetch(args.model_data, Path(workdir), "model.tar.gz")
        code = fetch(args.code, Path(workdir), "sourcedir.tar.gz")
        document = build_baseline(model_data=str(model), code=str(code), program=args.program,
                                  data=args.data, labels=args.labels)
    write_json(args.out, document)
    quality = document["quality"]
    print(f"wrote {args.out}: {document['scored_rows']} of {document['rows']} rows scored, "
          f"{len(document['features'])} features, flag rate {document['flag_rate']}"
          + (f", recall {quality['recall']}, ROC AUC {quality['roc_auc']}" if quality else ""))
    return 0


def write_json(path: Path, document: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=1) + "\n")
    except OSError as error:
        raise CommandError(f"{path}: {error.strerror or error}") from None


def monitor_window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """The window: [since, until), by default the last full hour up to now."""
    end = until or datetime.now(timezone.utc)
    start = since or end - timedelta(hours=1)
    if start >= end:
        raise CommandError(f"--since {start.isoformat()} is not before --until {end.isoformat()}")
    return start, end


def run_monitor(args: argparse.Namespace) -> int:
    start, end = monitor_window(args.since, args.until)
    try:
        baseline = baselines.load(str(args.baseline))
        report = run(baseline, args.capture, since=start, until=end, ground_truth=args.ground_truth)
    except (baselines.BaselineError, MonitorError) as error:
        raise CommandError(str(error)) from None
    print(json.dumps(report, indent=1) if args.format == "json" else markdown(report))
    return 0 if report["verdict"] == "ok" else EXIT_BREACH
