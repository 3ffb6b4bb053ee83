"""`endpointctl compare`: the champion-vs-challenger report of monitoring/compare.py,
on a local capture folder or the deployed endpoint's capture in S3 (issue 20).

    endpointctl compare --capture DIR|s3://... --production VARIANT --shadow VARIANT
                        [--ground-truth DIR|s3://...] [--since T --until T] [--format markdown|json]
    endpointctl compare --env prod   # capture location and variant names from the stack

Exit status 0, or 1 with one line on bad input (a missing folder, no records, a bad
window, an environment without a shadow).
"""

from __future__ import annotations

import argparse
import json

from endpointctl.errors import CommandError
from monitoring.compare import Comparison, compare, render_markdown
from serving_config.settings import DATA_CAPTURE_PREFIX


def _from_environment(args: argparse.Namespace) -> tuple[str | None, str | None, str | None]:
    """(capture location, production variant, shadow variant) of a deployed environment."""
    from endpointctl.aws import environment, stack_outputs

    env = environment(args.env)
    endpoint = env.endpoint
    shadow = getattr(endpoint, "shadow", None)
    if shadow is None:
        raise CommandError(f"environment {args.env!r} has no endpoint.shadow in cdk.json: nothing to compare")
    capture = args.capture
    if capture is None:
        outputs = stack_outputs(args.env)
        capture = f"s3://{outputs['BucketName']}/{DATA_CAPTURE_PREFIX}{outputs['EndpointName']}"
    return capture, args.production or endpoint.variants[0].name, args.shadow or shadow.name


def comparison(args: argparse.Namespace, s3_client=None) -> Comparison:
    if args.env is not None:
        capture, production, shadow = _from_environment(args)
    else:
        capture, production, shadow = args.capture, args.production, args.shadow
    missing = [flag for flag, value in (("--capture", capture), ("--production", production), ("--shadow", shadow))
               if value is None]
    if missing:
        raise CommandError(f"missing {', '.join(missing)} (or give --env NAME to read them from the stack)")
    if production == shadow:
        raise CommandError(f"--production and --shadow are both {production!r}: give the two variants' names")
    if args.since is not None and args.until is not None and args.since >= args.until:
        raise CommandError(f"--since {args.since.isoformat()} is not before --until {args.until.isoformat()}")
    try:
        report = compare(capture, production, shadow, ground_truth=args.ground_truth,
                         since=args.since, until=args.until, s3_client=s3_client)
    except ValueError as error:  # Source: no such folder, an s3:// location without a bucket
        raise CommandError(str(error)) from None
    if not report.production.counts.files and not report.shadow.counts.files:
        raise CommandError(f"{capture}: no capture files of variant {production!r} or {shadow!r} "
                           "(expected <endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl below it)")
    return report


def run_compare(args: argparse.Namespace) -> int:
    report = comparison(args)
    if args.format == "json":
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(render_markdown(report), end="")
    return 0
