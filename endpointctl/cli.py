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
from endpointctl.serve_capture import DEFAULT_CAPTURE_ENDPOINT, DEFAULT_CAPTURE_VARIANT
from endpointctl.cost import DEFAULT_DURATION_MS, DEFAULT_REQUESTS_PER_DAY
from serving_runtime import preflight
from serving_runtime.container import DEFAULT_PORT, DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S, MAX_WORKERS
from serving_config.paths import HANDLER_DIR
from serving_runtime.contract import DEFAULT_PROGRAM

# Any environment cdk.json names: each command checks the name against the configuration.
ENV_HELP = "an environment named in cdk.json's serving.environments"


def _code_default() -> str:
    return os.environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or str(HANDLER_DIR)


def _program_default() -> str:
    return os.environ.get("SAGEMAKER_PROGRAM") or DEFAULT_PROGRAM


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported in one line (not the usage block), exit 2."""

    # A command whose contract gives bad input exit status 1 (compare) sets this to 1.
    usage_exit_status = 2

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        # argparse quotes some values raw ("unrecognized arguments: a<newline>b"): escape line breaks.
        flat = "".join(repr(c)[1:-1] if f"x{c}x".splitlines() != [f"x{c}x"] else c for c in message)
        self.exit(self.usage_exit_status, f"{self.prog}: {flat} (see {self.prog} --help)\n")


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
    preflight.add_arguments(p, default_code=Path(_code_default()))
    p.set_defaults(program=_program_default())

    p = commands.add_parser("serve", help="serve the handler locally as the SageMaker sklearn container does")
    p.add_argument("--model-data", type=arguments.location, required=True, help="model.tar.gz: a local path or s3:// URL")
    p.add_argument("--code", type=arguments.location, default=_code_default(), help="handler: folder, sourcedir.tar.gz or s3:// URL "
                   "(default: $SAGEMAKER_SUBMIT_DIRECTORY or inference/)")
    p.add_argument("--program", type=arguments.program, default=_program_default(), help="handler file (default: $SAGEMAKER_PROGRAM or inference.py)")
    p.add_argument("--host", type=arguments.text, default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=arguments.PORT, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    p.add_argument("--workers", type=arguments.whole_number(1, MAX_WORKERS, what="a number of workers"), help="worker processes (default: $SAGEMAKER_MODEL_SERVER_WORKERS or CPU count)")
    p.add_argument("--timeout", type=arguments.whole_number(1, MAX_TIMEOUT_S, what="a number of seconds"),
                   help=f"request timeout, s (default: $SAGEMAKER_MODEL_SERVER_TIMEOUT or {DEFAULT_TIMEOUT_S})")
    p.add_argument("--capture", type=arguments.capture_destination, metavar="DIR|s3://BUCKET/PREFIX",
                   help="write every answered request in SageMaker's data-capture format under "
                   "DEST/<endpoint>/<variant>/yyyy/mm/dd/hh/")
    p.add_argument("--capture-endpoint", type=arguments.sagemaker_name, default=DEFAULT_CAPTURE_ENDPOINT,
                   help=f"endpoint name in the capture layout (default: {DEFAULT_CAPTURE_ENDPOINT})")
    p.add_argument("--capture-variant", type=arguments.sagemaker_name, default=DEFAULT_CAPTURE_VARIANT,
                   help=f"variant name in the capture layout (default: {DEFAULT_CAPTURE_VARIANT})")
    p.add_argument("--shadow-model-data", type=arguments.location, metavar="CHALLENGER",
                   help="a challenger (local path or s3:// URL) on a copy of the requests, as a shadow variant: "
                        "its answers are captured, never returned (needs --capture)")
    p.add_argument("--shadow-variant", type=arguments.sagemaker_name, default="Shadow",
                   help="the challenger's variant name in the capture layout (default: Shadow)")
    p.add_argument("--shadow-percent", type=arguments.whole_number(1, 100, what="a percentage"), default=100,
                   help="share of the requests copied to the challenger, as endpoint.shadow.sampling_percent "
                        "(default: 100)")

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
    p.add_argument("--inference-id", type=arguments.inference_id, metavar="ID",
                   help="InvokeEndpoint's InferenceId (header X-Amzn-SageMaker-Inference-Id): captured with the "
                   "request, and the key its ground-truth label joins on")

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

    p = commands.add_parser("baseline", help="the baseline a model version is monitored against, from a holdout")
    p.add_argument("--model-data", type=arguments.location, required=True, help="model.tar.gz: a local path or s3:// URL")
    p.add_argument("--data", type=arguments.path, required=True, help="holdout CSV: the model's features, as the endpoint takes them")
    p.add_argument("--labels", type=arguments.path, help="one 0/1 per holdout row: adds precision, recall and ROC AUC")
    p.add_argument("--out", type=arguments.path, default=Path("baseline.json"), help="file to write (default: baseline.json)")
    p.add_argument("--code", type=arguments.location, default=_code_default(), help="handler folder or sourcedir.tar.gz (default: inference/)")
    p.add_argument("--program", type=arguments.program, default=_program_default(), help="handler file (default: inference.py)")

    p = commands.add_parser("monitor", help="captured traffic against the baseline: drift, data and realized quality "
                            "(exit 3 on drift, a breach or no data)")
    p.add_argument("--baseline", type=arguments.path, required=True, help="baseline.json (from `endpointctl baseline`)")
    p.add_argument("--capture", type=arguments.capture_destination, required=True, metavar="DIR|s3://…",
                   help="capture destination, endpoint or variant folder")
    p.add_argument("--ground-truth", type=arguments.capture_destination, metavar="DIR|s3://…",
                   help="ground-truth labels, partitioned by the hour they were collected")
    p.add_argument("--since", type=arguments.time, metavar="T", help="window start, ISO-8601 (default: --until minus 1 hour)")
    p.add_argument("--until", type=arguments.time, metavar="T", help="window end, exclusive (default: now)")
    p.add_argument("--format", choices=("markdown", "json"), default="markdown", help="report format (default: markdown)")

    _add_compare(commands)

    # The model registry (endpointctl.registry): versions in the registry environment's stack.
    registry_env = ENV_HELP + " holding the model registry (default: model_registry.environment, dev)"
    p = commands.add_parser("register", help="register model.tar.gz as a new version awaiting approval")
    p.add_argument("--model-data", type=Path, required=True, help="model.tar.gz to register (preflighted first)")
    p.add_argument("--baseline-data", type=arguments.path, metavar="CSV",
                   help="holdout CSV: stores the version's monitoring baseline with it (as `endpointctl baseline`)")
    p.add_argument("--baseline-labels", type=arguments.path, metavar="CSV",
                   help="one 0/1 per holdout row: the baseline adds precision, recall and ROC AUC")
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


def _add_compare(commands) -> None:
    p = commands.add_parser("compare", help="champion vs challenger on captured pairs: agreement, flag rates, "
                            "probability deltas, quality with ground truth (exit 1 on bad input)")
    p.usage_exit_status = 1  # issue 20's contract: 0, or 1 on bad input
    p.add_argument("--env", type=arguments.text, help=ENV_HELP + "; fills --capture, --production and --shadow from the stack")
    p.add_argument("--capture", type=arguments.capture_destination, metavar="DIR|s3://...", help="capture destination or endpoint folder")
    p.add_argument("--production", type=arguments.sagemaker_name, metavar="VARIANT", help="production variant name")
    p.add_argument("--shadow", type=arguments.sagemaker_name, metavar="VARIANT", help="shadow variant name")
    p.add_argument("--ground-truth", type=arguments.capture_destination, metavar="DIR|s3://...", help="labels, for precision and recall")
    p.add_argument("--since", type=arguments.time, metavar="T", help="first inference time (ISO-8601, UTC if no offset)")
    p.add_argument("--until", type=arguments.time, metavar="T", help="end of the window, exclusive")
    p.add_argument("--format", choices=("markdown", "json"), default="markdown", help="default: markdown")


# ------------------------------------------------------------------------ commands


def cmd_train_sample(args: argparse.Namespace) -> int:
    from endpointctl.training import write_sample_model

    from endpointctl.training import BASELINE_SUFFIX, HOLDOUT_SUFFIX, LABELS_SUFFIX, sidecar
    from endpointctl.watch import build_baseline, write_json

    holdout_rows = args.rows // 10  # never trained on: the baseline's holdout
    out = write_sample_model(args.out, rows=args.rows, seed=args.seed, holdout_rows=holdout_rows)
    print(f"wrote {out} ({out.stat().st_size:,} bytes): model.joblib at the root, scikit-learn "
          f"{_sklearn_version()}, trained on {args.rows - holdout_rows:,} rows")
    baseline = build_baseline(model_data=str(out), code=_code_default(), program=_program_default(),
                              data=sidecar(out, HOLDOUT_SUFFIX), labels=sidecar(out, LABELS_SUFFIX))
    write_json(sidecar(out, BASELINE_SUFFIX), baseline)
    print(f"wrote {sidecar(out, HOLDOUT_SUFFIX)} and {sidecar(out, LABELS_SUFFIX)} ({holdout_rows:,} held-out rows) "
          f"and {sidecar(out, BASELINE_SUFFIX)} (recall {baseline['quality']['recall']}, "
          f"flag rate {baseline['flag_rate']}): the stack's monitor watches against it")
    return 0


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def cmd_preflight(args: argparse.Namespace) -> int:
    return preflight.sandboxed_exit_code(args)  # loading the model runs its code: never in this process


def cmd_serve(args: argparse.Namespace) -> int:
    from endpointctl.local import Capture, ShadowServing, serve_forever

    capture = Capture(args.capture, args.capture_endpoint, args.capture_variant) if args.capture else None
    shadow = ShadowServing(args.shadow_model_data, args.shadow_variant, args.shadow_percent) \
        if args.shadow_model_data else None
    return serve_forever(
        capture=capture,
        shadow=shadow,
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


def cmd_compare(args: argparse.Namespace) -> int:
    from endpointctl.compare import run_compare

    return run_compare(args)


COMMANDS = {
    "train-sample": cmd_train_sample,
    "preflight": cmd_preflight,
    "serve": cmd_serve,
    "invoke": cmd_invoke,
    "transform": cmd_transform,
    "status": cmd_status,
    "cost": cmd_cost,
    "plan": cmd_plan,
    "compare": cmd_compare,
}


def registry_command(args: argparse.Namespace) -> int:
    from endpointctl.registry import COMMANDS as REGISTRY_COMMANDS

    return REGISTRY_COMMANDS[args.command](args)


def cmd_smoke_test(args: argparse.Namespace) -> int:
    from endpointctl.smoke import run_smoke_test

    return run_smoke_test(args)


COMMANDS.update(dict.fromkeys(("register", "approve", "reject"), registry_command))
COMMANDS["smoke-test"] = cmd_smoke_test


def cmd_baseline(args: argparse.Namespace) -> int:
    from endpointctl.watch import run_baseline

    return run_baseline(args)


def cmd_monitor(args: argparse.Namespace) -> int:
    from endpointctl.watch import run_monitor

    return run_monitor(args)


COMMANDS.update(baseline=cmd_baseline, monitor=cmd_monitor)


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
