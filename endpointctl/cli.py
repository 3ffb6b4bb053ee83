"""endpointctl: operate the fraud model's SageMaker endpoint, locally or on AWS.

Every command prints one clear line and exits non-zero on a failure it knows about;
tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from endpointctl import arguments
from endpointctl.cost import DEFAULT_DURATION_MS, DEFAULT_REQUESTS_PER_DAY
from serving_runtime import preflight
from serving_runtime.container import DEFAULT_PORT, MAX_WORKERS
from serving_runtime.image import DEFAULT_PROGRAM, HANDLER_DIR

ENV_HELP = "environment from cdk.json (dev, staging, prod)"


def _code_default() -> str:
    return os.environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or str(HANDLER_DIR)


def _program_default() -> str:
    return os.environ.get("SAGEMAKER_PROGRAM") or DEFAULT_PROGRAM


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported in one line (not the usage block), exit 2."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        # argparse quotes some values raw ("unrecognized arguments: a<newline>b"): escape line breaks.
        flat = "".join(repr(c)[1:-1] if f"x{c}x".splitlines() != [f"x{c}x"] else c for c in message)
        self.exit(2, f"{self.prog}: {flat} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="endpointctl",
        description="Train, check, serve, invoke and batch-score the fraud model; "
        "deploy with `npx cdk deploy -c env=NAME`.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("train-sample", help="train a small fraud-style model and write model.tar.gz")
    p.add_argument("--out", type=arguments.path, default=Path("model.tar.gz"), help="archive to write (default: model.tar.gz)")
    p.add_argument("--rows", type=arguments.whole_number(100, 1_000_000, what="a number of rows"), default=20_000, help="synthetic training rows (default: 20000)")
    p.add_argument("--seed", type=arguments.whole_number(0, 2**32 - 1, what="a seed"), default=7, help="random seed (default: 7)")

    p = commands.add_parser("preflight", help="refuse an artifact that would fail on SageMaker (exit 1)")
    preflight.add_arguments(p)
    p.set_defaults(code=Path(_code_default()), program=_program_default())

    p = commands.add_parser("serve", help="serve the handler locally as the SageMaker sklearn container does")
    p.add_argument("--model-data", type=arguments.location, required=True, help="model.tar.gz: a local path or s3:// URL")
    p.add_argument("--code", type=arguments.location, default=_code_default(), help="handler: folder, sourcedir.tar.gz or s3:// URL "
                   "(default: $SAGEMAKER_SUBMIT_DIRECTORY or inference/)")
    p.add_argument("--program", type=arguments.program, default=_program_default(), help="handler file (default: $SAGEMAKER_PROGRAM or inference.py)")
    p.add_argument("--host", type=arguments.text, default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=arguments.PORT, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    p.add_argument("--workers", type=arguments.whole_number(1, MAX_WORKERS, what="a number of workers"), help="worker processes (default: $SAGEMAKER_MODEL_SERVER_WORKERS or CPU count)")
    p.add_argument("--timeout", type=arguments.whole_number(1, 3600, what="a number of seconds"), help="request timeout, s (default: $SAGEMAKER_MODEL_SERVER_TIMEOUT or 60)")

    p = commands.add_parser("invoke", help="call the endpoint (as the guide's boto3 invoke_endpoint)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--env", type=arguments.text, help=ENV_HELP + "; the endpoint name comes from the stack's outputs")
    target.add_argument("--endpoint-name", type=arguments.sagemaker_name, help="call this endpoint directly")
    target.add_argument("--local", type=arguments.http_url, metavar="URL", help="a local endpoint, e.g. http://127.0.0.1:8080")
    body = p.add_mutually_exclusive_group(required=True)
    body.add_argument("--body", type=arguments.text, help='request body, e.g. \'{"instances": [[0.5, 1.2, 0.3, 0.8, 0.1]]}\'')
    body.add_argument("--file", type=arguments.path, help="file holding the request body")
    p.add_argument("--content-type", type=arguments.header_value, help="default: application/json, or text/csv for a .csv file")
    p.add_argument("--accept", type=arguments.header_value, default="application/json", help="response type (default: application/json)")
    p.add_argument("--curl", action="store_true", help="also print the SigV4-signed curl equivalent")

    p = commands.add_parser("transform", help="batch-score a CSV: a SageMaker transform job, or --local")
    p.add_argument("--input", type=arguments.path, required=True, help="CSV file, one record per line, no header")
    p.add_argument("--output", type=arguments.path, default=Path("batch-output"), help="folder for <input>.out (default: batch-output/)")
    p.add_argument("--env", default="dev", help=ENV_HELP + " (default: dev)")
    p.add_argument("--local", nargs="?", const=arguments.START_ONE, type=arguments.http_url, metavar="URL",
                   help="run through a local endpoint: URL of a running one, or none to start one")
    p.add_argument("--model-data", type=arguments.path, default=Path("model.tar.gz"), help="with --local and no URL: model to serve")
    p.add_argument("--max-payload-mb", type=arguments.whole_number(1, 100, what="MB"), help="mini-batch size limit, MB (default: from config)")
    p.add_argument("--max-concurrent-transforms", type=arguments.whole_number(1, 100, what="a count"), help="parallel mini-batches (default: from config)")

    p = commands.add_parser("status", help="endpoint status, variants, alarms and what it costs to leave running")
    p.add_argument("--env", default="dev", help=ENV_HELP + " (default: dev)")

    p = commands.add_parser("cost", help="estimate an environment's monthly bill from its config")
    p.add_argument("--env", default="dev", help=ENV_HELP + " (default: dev)")
    p.add_argument("--requests-per-day", type=arguments.finite_non_negative, default=DEFAULT_REQUESTS_PER_DAY,
                   help=f"assumed traffic (default: {DEFAULT_REQUESTS_PER_DAY})")
    p.add_argument("--duration-ms", type=arguments.finite_non_negative, default=DEFAULT_DURATION_MS,
                   help=f"assumed compute time per request, ms (default: {DEFAULT_DURATION_MS})")

    p = commands.add_parser("plan", help="what deploying one cdk.out over another does: endpoint, traffic, "
                            "IAM, data, cost, model behaviour (exit 3 if it fails, breaks callers or loses data)")
    from endpointctl.plan import add_arguments as add_plan_arguments

    add_plan_arguments(p)

    commands.add_parser("demo", help="the whole flow on a local AWS (moto): deploy, serve, invoke, transform, destroy")

    # The model registry (endpointctl.registry): versions in the registry environment's stack.
    registry_env = ENV_HELP + " holding the model registry (default: model_registry.environment, dev)"
    p = commands.add_parser("register", help="register model.tar.gz as a new version awaiting approval")
    p.add_argument("--model-data", type=Path, required=True, help="model.tar.gz to register (preflighted first)")
    p.add_argument("--env", help=registry_env)
    for name, text in (("approve", "approve a registered version (starts the pipeline)"),
                       ("reject", "reject a registered version (it is never deployed)")):
        p = commands.add_parser(name, help=text)
        p.add_argument("version", help="version number in the model package group")
        p.add_argument("--reason", required=name == "reject", help="why; recorded on the version")
        p.add_argument("--env", help=registry_env)
    p = commands.add_parser("smoke-test", help="after a deploy: the guide's request answers 200 and no alarm is in ALARM")
    p.add_argument("--env", required=True, help=ENV_HELP)
    return parser


# ------------------------------------------------------------------------ commands


def cmd_train_sample(args: argparse.Namespace) -> int:
    from endpointctl.training import write_sample_model

    out = write_sample_model(args.out, rows=args.rows, seed=args.seed)
    print(f"wrote {out} ({out.stat().st_size:,} bytes): model.joblib at the root, scikit-learn "
          f"{_sklearn_version()}")
    return 0


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def cmd_preflight(args: argparse.Namespace) -> int:
    return preflight.sandboxed_exit_code(args)  # loading the model runs its code: never in this process


def cmd_serve(args: argparse.Namespace) -> int:
    from endpointctl.local import serve_forever

    return serve_forever(
        model_data=args.model_data,
        code=args.code,
        program=args.program,
        host=args.host,
        port=args.port,
        workers=args.workers,
        timeout=args.timeout,
    )


def cmd_invoke(args: argparse.Namespace) -> int:
    from endpointctl.invoke import run_invoke

    return run_invoke(args)


def cmd_transform(args: argparse.Namespace) -> int:
    from endpointctl.transform import run_transform

    return run_transform(args)


def cmd_status(args: argparse.Namespace) -> int:
    from endpointctl.status import run_status

    return run_status(args)


def cmd_cost(args: argparse.Namespace) -> int:
    from endpointctl.cost import run_cost

    return run_cost(args)


def cmd_plan(args: argparse.Namespace) -> int:
    from endpointctl.plan import run_plan

    return run_plan(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from endpointctl.demo import main as demo_main

    return demo_main()


COMMANDS = {
    "demo": cmd_demo,
    "train-sample": cmd_train_sample,
    "preflight": cmd_preflight,
    "serve": cmd_serve,
    "invoke": cmd_invoke,
    "transform": cmd_transform,
    "status": cmd_status,
    "cost": cmd_cost,
    "plan": cmd_plan,
}


def registry_command(args: argparse.Namespace) -> int:
    from endpointctl.registry import COMMANDS as REGISTRY_COMMANDS

    return REGISTRY_COMMANDS[args.command](args)


def cmd_smoke_test(args: argparse.Namespace) -> int:
    from endpointctl.smoke import run_smoke_test

    return run_smoke_test(args)


COMMANDS.update(dict.fromkeys(("register", "approve", "reject"), registry_command))
COMMANDS["smoke-test"] = cmd_smoke_test


def main(argv: list[str] | None = None) -> int:
    # A path or value with an undecodable byte is printed escaped, never a UnicodeEncodeError.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    from endpointctl.errors import known_errors

    try:
        arguments.check_aws_environment()
        return COMMANDS[args.command](args)
    except known_errors() as error:
        print(f"endpointctl {args.command}: {_one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"endpointctl {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: still one line, the traceback on request
        if os.environ.get("ENDPOINTCTL_DEBUG") == "1":
            raise
        print(f"endpointctl {args.command}: unexpected {type(error).__name__}: {_one_line(error)} "
              "(ENDPOINTCTL_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


def _one_line(error: BaseException) -> str:
    """A multi-line message (a preflight report, several config problems) joined into one."""
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
