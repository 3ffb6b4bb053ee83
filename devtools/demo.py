"""`make demo`: the whole flow against a local AWS, no account needed.

moto server on loopback -> train -> cdk bootstrap -> cdk deploy (dev) -> fetch what was
deployed (ModelDataUrl and SAGEMAKER_SUBMIT_DIRECTORY) from the emulated S3 -> serve it
as the container would -> invoke with the guide's request -> batch-transform a CSV
from batch-input/ to batch-output/ -> watch the live model (capture into S3, normal and
shifted traffic judged against the baseline, labels, metrics to CloudWatch) -> a second deploy: retrain, `endpointctl plan`, deploy
the new model, serve what was deployed and check it is v2, v1 gone, nothing orphaned,
the deploy did what the plan said -> a third deploy that only changes an alarm threshold
(nothing else touched) -> cdk destroy -> show no endpoint, config or model remains, and list what the stack keeps on purpose.
Every process it starts is stopped on exit or Ctrl-C.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import boto3

from endpointctl.errors import CommandError
from endpointctl.local import LocalEndpoint, fetch, free_port
from endpointctl.smoke import GUIDE_REQUEST
from serving_runtime.archive import archive_files
from serving_config.paths import PROJECT_ROOT
from serving_config.config import load_config

if TYPE_CHECKING:
    from endpointctl.release import Release

ACCOUNT = "123456789012"
REGION = "us-east-1"


STEPS = 11
# The retrained model of the second deploy, and the alarm-only change of the third.
RETRAIN_SEED = 8
LATENCY_THRESHOLD_MS = 1500


def step(number: int, text: str) -> None:
    print(f"\n[{number}/{STEPS}] {text}", flush=True)


@contextmanager
def local_aws(port: int | None = None) -> Iterator[dict[str, str]]:
    """A moto server on loopback (with devtools.local_aws's fixes); yields the
    environment that points AWS clients at it.
    The host is spelled `localhost`: moto fetches templates from its own S3 only then."""
    port = port or free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([sys.executable, "-m", "devtools.local_aws", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    env = {
        "AWS_ENDPOINT_URL": f"http://localhost:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "CDK_DEFAULT_ACCOUNT": ACCOUNT,
        "CDK_DEFAULT_REGION": REGION,
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                boto3.client("s3").list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise CommandError("the local AWS (moto_server) did not start") from None
                time.sleep(0.2)
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)


def cdk(*args: str, output: Path, quiet: bool = False, cwd: Path = PROJECT_ROOT) -> str:
    """The real CDK CLI from node_modules (Node 22 on PATH), in the project folder
    (its cdk.json names the app) unless `cwd` says otherwise."""
    binary = PROJECT_ROOT / "node_modules" / ".bin" / "cdk"
    if not binary.exists():
        raise CommandError("the aws-cdk CLI is not installed: run `make demo` (it runs npm ci)")
    env = {**os.environ, "PATH": f"{binary.parent}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [str(binary), *args, "--output", str(output), "--no-notices", "--no-version-reporting"]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode in (130, -2) or "KeyboardInterrupt" in result.stderr:
        raise KeyboardInterrupt  # Ctrl-C reached cdk first: stop quietly, cleaning up
    if result.returncode != 0:
        raise CommandError(f"`cdk {' '.join(args)}` failed:\n{(result.stdout + result.stderr)[-3000:]}")
    if not quiet:
        for line in (result.stdout + result.stderr).splitlines():
            if line.strip().startswith(("✅", "Outputs", "✨")) or " = " in line:
                print(f"    {line.strip()}")
    return result.stdout + result.stderr


def bootstrap(output: Path) -> str:
    """`cdk bootstrap aws://ACCOUNT/REGION`, run outside the project folder: inside it the
    CLI first runs the whole app (preflight, synth, cdk-nag; ~8 s of CPU) although an
    environment named on the command line needs none of it, and nothing in our cdk.json
    (no qualifier, no toolkit stack name) changes the bootstrap stack."""
    output.mkdir(parents=True, exist_ok=True)
    return cdk("bootstrap", f"aws://{ACCOUNT}/{REGION}", output=output / "bootstrap.out", quiet=True, cwd=output)


@dataclass
class Deployed:
    stack_name: str
    outputs: dict[str, str]
    endpoint: dict
    endpoint_config: dict
    model: dict


def describe_deployment(env_name: str) -> Deployed:
    from endpointctl.aws import environment, stack_outputs

    sagemaker = boto3.client("sagemaker")
    outputs = stack_outputs(env_name)
    endpoint = sagemaker.describe_endpoint(EndpointName=outputs["EndpointName"])
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return Deployed(environment(env_name).stack_name, outputs, endpoint, config, model)


def check_gzip_tar(path: Path, must_hold: str) -> list[str]:
    names = [name for name, _ in archive_files(path)]  # raises if not a whole gzip tar
    if must_hold not in names:
        raise CommandError(f"{path.name} holds {names}, not {must_hold} at its root")
    return names


def billable_leftovers() -> dict[str, list[str]]:
    sagemaker = boto3.client("sagemaker")
    return {
        "endpoints": [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]],
        "endpoint configs": [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]],
        "models": [m["ModelName"] for m in sagemaker.list_models()["Models"]],
    }


def retained_by_the_stack(template: Path) -> list[str]:
    """What `cdk destroy` leaves on purpose: the template's DeletionPolicy Retain resources
    (dev keeps the model registry and the access logs that record it)."""
    resources = json.loads(template.read_text())["Resources"]
    return [f"{logical_id} ({resource['Type']})" for logical_id, resource in resources.items()
            if resource.get("DeletionPolicy") == "Retain"]


def empty_and_delete_bucket(name: str) -> int:
    s3 = boto3.resource("s3")
    bucket = s3.Bucket(name)
    count = sum(1 for _ in bucket.object_versions.all())
    bucket.object_versions.delete()
    bucket.delete()
    return count


@dataclass
class DemoResult:
    """What the demo saw, for the end-to-end tests to read by attribute: each step fills
    its field (None until it ran)."""

    deployed: Deployed | None = None  # the first deploy, as SageMaker describes it
    model_members: list[str] | None = None  # the deployed ModelDataUrl's members
    code_members: list[str] | None = None  # the deployed SAGEMAKER_SUBMIT_DIRECTORY's members
    invoke: tuple[int, dict] | None = None  # the guide's request to the deployed archives: status, answer
    transform: dict | None = None  # batch-input/ -> batch-output/
    shadow: dict | None = None  # the local champion-vs-challenger report
    monitoring: dict | None = None  # the monitor's reports over captured traffic, and what reached CloudWatch
    release: Release | None = None  # the second deploy: plan and outcome
    release_invoke: tuple[int, dict] | None = None  # the retrained model, deployed, answering
    retrained_probabilities: list | None = None  # what the retrained model answers in process
    alarm_release: Release | None = None  # the third deploy (an alarm threshold only)
    leftovers: dict[str, list[str]] | None = None  # SageMaker resources left after destroy
    bucket_left: bool | None = None  # whether the data bucket survived destroy
    retained: list[str] | None = None  # what the stack keeps on purpose
    seconds: float | None = None  # the whole demo, wall clock


def run_demo(*, workdir: Path, env_name: str = "dev", port: int | None = None) -> DemoResult:
    """The demo's path; returns what it saw, for the end-to-end test to check."""
    env = load_config().environment(env_name)
    seen = DemoResult()
    cdk_out = workdir / "cdk.out"
    started = time.monotonic()
    with ExitStack() as stack:
        step(1, "starting a local AWS (moto server on loopback)")
        aws_env = stack.enter_context(local_aws(port))
        print(f"    AWS_ENDPOINT_URL={aws_env['AWS_ENDPOINT_URL']} (dummy credentials; no AWS account is used)")

        step(2, "training the sample model (scikit-learn 1.2.1, as in the serving image)")
        model_path = PROJECT_ROOT / "model.tar.gz"
        if model_path.exists():
            print(f"    using the existing {model_path.name}")
        else:
            from endpointctl.training import write_sample_model

            write_sample_model(model_path)
            print(f"    wrote {model_path.name}")

        step(3, f"cdk bootstrap aws://{ACCOUNT}/{REGION}")
        bootstrap(workdir)
        print("    bootstrapped (assets bucket and roles in the local AWS)")

        step(4, f"cdk deploy {env.stack_name} (preflight, synth, cdk-nag, upload, CloudFormation)")
        started = time.monotonic()
        cdk("deploy", "-c", f"env={env_name}", "--require-approval", "never", output=cdk_out)
        deployed = describe_deployment(env_name)
        seen.deployed = deployed
        print(f"    deployed in {time.monotonic() - started:.0f}s: endpoint {deployed.outputs['EndpointName']} "
              f"is {deployed.endpoint['EndpointStatus']}")

        step(5, "serving what was deployed: ModelDataUrl and SAGEMAKER_SUBMIT_DIRECTORY from the emulated S3")
        container = deployed.model["PrimaryContainer"]
        fetched = workdir / "deployed"
        fetched.mkdir(exist_ok=True)
        model_archive = fetch(container["ModelDataUrl"], fetched, "model.tar.gz")
        code_archive = fetch(container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"], fetched, "sourcedir.tar.gz")
        seen.model_members = check_gzip_tar(model_archive, "model.joblib")
        seen.code_members = check_gzip_tar(code_archive, container["Environment"]["SAGEMAKER_PROGRAM"])
        print(f"    {container['ModelDataUrl']} -> gzip tar with {seen.model_members}")
        print(f"    {container['Environment']['SAGEMAKER_SUBMIT_DIRECTORY']} -> gzip tar with {seen.code_members}")
        endpoint = stack.enter_context(LocalEndpoint(model_data=model_archive, code=code_archive, workers=2))
        print(f"    local endpoint up at {endpoint.url} (gunicorn, 2 workers)")

        step(6, "invoking with the guide's request")
        from endpointctl.invoke import post_local

        status, _, payload = post_local(endpoint.url, json.dumps(GUIDE_REQUEST).encode(), "application/json", "application/json")
        seen.invoke = (status, json.loads(payload))
        print(f"    POST /invocations {json.dumps(GUIDE_REQUEST)}")
        print(f"    -> {status} {payload.decode()}")

        step(7, "batch transform: batch-input/ -> batch-output/")
        seen.transform = transform_through_bucket(endpoint.url, deployed.outputs["BucketName"], workdir, env)

        endpoint.stop()
        seen.shadow = shadow_report(workdir, champion=model_archive, code=code_archive)
        step(8, "watching the live model: serve --capture into the local S3, normal then shifted traffic, labels")
        from devtools.demo_monitoring import watch_live_model

        seen.monitoring = watch_live_model(model_archive=model_archive, code_archive=code_archive,
                                              bucket=deployed.outputs["BucketName"],
                                              endpoint_name=deployed.outputs["EndpointName"], workdir=workdir)
        head = release_retrained_model(workdir=workdir, env=env, base=cdk_out, seen=seen)
        deployed_last = release_alarm_change(workdir=workdir, env=env, base=head, seen=seen)

        step(11, f"cdk destroy {env.stack_name}")
        # From the assembly deployed last: the stack as it stands, without running the app again.
        cdk("destroy", env.stack_name, "--app", str(deployed_last), "--force", output=deployed_last, quiet=True)
        leftovers = billable_leftovers()
        seen.leftovers = leftovers
        for kind, names in leftovers.items():
            print(f"    {kind} left: {names or 'none'}")
        bucket = deployed.outputs["BucketName"]
        if bucket in [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]:
            # On AWS, CDK's auto-delete Lambda empties the dev bucket; moto runs no Lambdas.
            removed = empty_and_delete_bucket(bucket)
            print(f"    bucket {bucket}: emptied ({removed} objects) and deleted by the demo — on AWS, "
                  "cdk destroy's auto-delete-objects does this")
        else:
            print(f"    bucket {bucket}: deleted with the stack")
        seen.bucket_left = bucket in [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
        seen.retained = retained_by_the_stack(deployed_last / f"{env.stack_name}.template.json")
        for name in seen.retained:
            print(f"    kept on purpose (DeletionPolicy Retain): {name}")
        if seen.retained:
            print("    on AWS these outlive the stack and are billed (a KMS key $1/month, buckets by storage): "
                  "delete them by hand when you retire them")
        if any(leftovers.values()):
            raise CommandError(f"billable resources remain after cdk destroy: {leftovers}")
        seen.seconds = time.monotonic() - started
        kept = f"; {len(seen.retained)} resources kept on purpose, listed above" if seen.retained else ""
        print(f"\nno endpoint, endpoint config or model remains{kept}. Done in {seen.seconds:.0f} s.")
    return seen


def shadow_report(workdir: Path, *, champion: Path, code: Path) -> dict:
    """The deployed model as champion, a retrained one as its shadow, on the local
    endpoint (issue 20): twenty requests, then `endpointctl compare`'s Markdown report."""
    from endpointctl.local import Capture, ShadowServing
    from endpointctl.training import write_sample_model
    from monitoring.compare import compare, render_markdown

    print("\n==> shadow: the deployed model answers; a retrained challenger gets a copy of each request "
          "(serve --shadow-model-data), then endpointctl compare", flush=True)
    challenger = write_sample_model(workdir / "challenger.tar.gz", rows=3000, seed=8)
    capture = workdir / "shadow-capture"
    with LocalEndpoint(model_data=champion, code=code, capture=Capture(str(capture), "local-endpoint", "AllTraffic"),
                       shadow=ShadowServing(str(challenger), "Challenger", 100)) as endpoint:
        from endpointctl.invoke import post_local

        draw = random.Random(3)
        rows = [[round(draw.gauss(0, 1), 3) for _ in range(5)] for _ in range(20)]
        for i, row in enumerate(rows):
            post_local(endpoint.url, json.dumps({"instances": [row]}).encode(), "application/json", "application/json",
                       inference_id=f"demo-{i}")
        folder = capture / "local-endpoint" / "Challenger"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(len(p.read_text().splitlines()) for p in folder.rglob("*.jsonl")) < len(rows):
            time.sleep(0.1)
    report = compare(str(capture), "AllTraffic", "Challenger")
    print(textwrap.indent(render_markdown(report), "    "), end="")
    return report.as_json()


def deploy_assembly(assembly: Path, stack_name: str) -> None:
    """`cdk deploy` of an assembly synthesized beforehand (what the plan was made from)."""
    cdk("deploy", stack_name, "--app", str(assembly), "--require-approval", "never",
        output=assembly, quiet=True)


def synth_variant(outdir: Path, env_name: str, *, model_data: Path, **env_overrides) -> Path:
    """cdk.json's configuration with another model (and other environment settings)."""
    from endpointctl.plan.synth import cdk_context, synth_assembly

    serving = cdk_context()["serving"]
    serving["model_data"] = str(model_data)
    serving["environments"][env_name].update(env_overrides)
    return synth_assembly(serving, [env_name], outdir)


def release_retrained_model(*, workdir: Path, env, base: Path, seen: DemoResult) -> Path:
    """Deploy a retrained model over the deployed one, as a release would: plan, deploy,
    then serve what was deployed and check it is the new model, and nothing is left over."""
    from endpointctl.release import release
    from endpointctl.training import model_archive_bytes, train_sample_model

    step(9, f"a second deploy: retrain (seed {RETRAIN_SEED}), `endpointctl plan`, cdk deploy")
    model = train_sample_model(seed=RETRAIN_SEED)
    retrained = workdir / "model-v2.tar.gz"
    retrained.write_bytes(model_archive_bytes(model))
    head = synth_variant(workdir / "cdk.out.v2", env.name, model_data=retrained)
    started = time.monotonic()
    done = release(base, head, stack_name=env.stack_name, env_name=env.name,
                   deploy=lambda assembly: deploy_assembly(assembly, env.stack_name), on_plan=print_plan)
    print(f"    deployed in {time.monotonic() - started:.0f}s (plan included)")
    seen.release = done
    deployed = describe_deployment(env.name)
    model_url = deployed.model["PrimaryContainer"]["ModelDataUrl"]
    code_url = deployed.model["PrimaryContainer"]["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"]
    fetched = workdir / "deployed-v2"
    fetched.mkdir(exist_ok=True)
    from endpointctl.invoke import post_local

    with LocalEndpoint(model_data=fetch(model_url, fetched, "model.tar.gz"),
                       code=fetch(code_url, fetched, "sourcedir.tar.gz"), workers=1) as endpoint:
        status, _, payload = post_local(endpoint.url, json.dumps(GUIDE_REQUEST).encode(), "application/json",
                                        "application/json")
    seen.release_invoke = (status, json.loads(payload))
    seen.retrained_probabilities = model.predict_proba(GUIDE_REQUEST["instances"]).tolist()
    print(f"    {model_url} served -> {status} {payload.decode()}")
    print(f"    the retrained model answers {json.dumps(seen.retrained_probabilities)}")
    report_release(done)
    return head


def release_alarm_change(*, workdir: Path, env, base: Path, seen: DemoResult) -> Path:
    """A change that does not touch the model: only the alarm is updated. Returns the
    assembly it deployed."""
    from endpointctl.release import release

    step(10, f"a third deploy: the ModelLatency alarm threshold -> {LATENCY_THRESHOLD_MS} ms, nothing else")
    alarms = {**env.alarms.model_dump(exclude_none=True), "model_latency_ms": LATENCY_THRESHOLD_MS}
    head = synth_variant(workdir / "cdk.out.v3", env.name, model_data=workdir / "model-v2.tar.gz", alarms=alarms)
    done = release(base, head, stack_name=env.stack_name, env_name=env.name,
                   deploy=lambda assembly: deploy_assembly(assembly, env.stack_name), on_plan=print_plan)
    seen.alarm_release = done
    report_release(done)
    return head


def print_plan(markdown: str) -> None:
    for line in markdown.splitlines():
        print(f"    | {line}")


def report_release(done) -> None:
    gone = sorted(done.gone())
    print(f"    gone after the deploy: {', '.join(gone) or 'nothing'}")
    orphans = {kind: names for kind, names in done.orphans().items() if names}
    print(f"    left behind (not in the stack): {orphans or 'nothing'}")
    differences = done.differences_from_plan()
    print(f"    the deploy did what the plan said: {'yes' if not differences else differences}")
    if orphans or differences:
        raise CommandError(f"the deploy left {orphans} behind or differed from its plan: {differences}")


def transform_through_bucket(url: str, bucket: str, workdir: Path, env) -> dict:
    """Upload a CSV to batch-input/, run it through the local endpoint the way a
    transform job would, and put `<name>.out` under batch-output/."""
    import numpy as np

    from endpointctl.training import synthetic_transactions
    from endpointctl.transform import transform_local

    s3 = boto3.client("s3")
    features, _ = synthetic_transactions(5000, seed=11)
    local_input = workdir / "transactions.csv"
    np.savetxt(local_input, features, delimiter=",", fmt="%.6f")
    s3.upload_file(str(local_input), bucket, "batch-input/transactions.csv")
    fetched = workdir / "batch-input"
    fetched.mkdir(exist_ok=True)
    s3.download_file(bucket, "batch-input/transactions.csv", str(fetched / "transactions.csv"))
    out = transform_local(url, fetched / "transactions.csv", workdir / "batch-output",
                          max_payload_mb=env.batch.max_payload_mb, max_concurrent=2)
    s3.upload_file(str(out), bucket, f"batch-output/{out.name}")
    lines = out.read_text().splitlines()
    flagged = sum(1 for line in lines if line.split(",")[0] == "1")
    print(f"    s3://{bucket}/batch-input/transactions.csv: 5,000 records -> s3://{bucket}/batch-output/{out.name}: "
          f"{len(lines):,} lines, {flagged} flagged as fraud")
    for line in lines[:3]:
        print(f"      {line}")
    return {"input_rows": 5000, "output_lines": len(lines), "first": lines[0]}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="endpointctl-demo-") as workdir:
        try:
            run_demo(workdir=Path(workdir))
        except CommandError as error:
            print(f"\ndemo failed: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\ninterrupted: local AWS and endpoint stopped", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
