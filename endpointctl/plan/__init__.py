"""`endpointctl plan --base DIR --head DIR`: what deploying the head cloud assembly over
the base one does, per stack — resources, the endpoint's fate and its traffic shift,
artifacts, IAM, alarms, data, cost and the model's behaviour — and whether it is safe.

Exit 0 when nothing fails, breaks callers or loses data; 3 when something does; 1 on
bad input (one line)."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from endpointctl.errors import CommandError

EXIT_BLOCKED = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", type=Path, required=True, help="cloud assembly (cdk.out) of what is deployed")
    parser.add_argument("--head", type=Path, required=True, help="cloud assembly (cdk.out) of the change")
    parser.add_argument("--env", action="append", help="environment to plan (repeatable; default: every stack found)")
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown", help="default: markdown")
    parser.add_argument("--sample", help="CSV of feature rows to score both models on (default: 2,000 "
                                         "synthetic rows, fixed seed)")


def stack_names(base, head, environments: list[str] | None) -> list[str]:
    found = sorted(base.stacks.keys() | head.stacks.keys())
    if not environments:
        return found
    from serving_config.config import load_config

    config = load_config()
    wanted = [config.environment(name).stack_name for name in environments]
    missing = [name for name in wanted if name not in found]
    if missing:
        raise CommandError(f"--env: no stack {', '.join(missing)} in either assembly; stacks found: "
                           f"{', '.join(found) or 'none'}")
    return wanted


def make_plan(base_dir: Path, head_dir: Path, *, environments: list[str] | None = None, sample: Path | None = None):
    from endpointctl.plan.assembly import load_assembly
    from endpointctl.plan.build import build_plan

    base = load_assembly(base_dir, option="--base")
    head = load_assembly(head_dir, option="--head")
    with tempfile.TemporaryDirectory(prefix="endpointctl-plan-") as workdir:
        return build_plan(base, head, stack_names(base, head, environments), sample=sample, workdir=Path(workdir))


def run_plan(args: argparse.Namespace) -> int:
    from endpointctl.plan import markdown
    from endpointctl.plan.model_diff import sample_path
    from endpointctl.plan.risks import blocking

    plan = make_plan(args.base, args.head, environments=args.env, sample=sample_path(args.sample))
    print(json.dumps(plan.as_json(), indent=2) if args.format == "json" else markdown.render(plan), end="")
    if args.format == "json":
        print()
    return EXIT_BLOCKED if blocking(plan.risks) else 0
