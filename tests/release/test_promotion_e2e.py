"""The dev stack on the local AWS with the real cdk CLI, deployed twice: as configured (it
creates the model registry), then from the registry. Between them three versions are
registered, the second approved and the third rejected; dev pointed at
`<group>:latest-approved` deploys the approved version — recorded in cdk.context.json,
and never a pending or rejected one. Then `endpointctl` runs against what is deployed:
status, invoke and a real CreateTransformJob, each call one the stack's launcher policy
allows. (One deploy serves both: a deploy is ~10 s of CPU, and the suite runs on two cores.)

Every environment has its account and region set, as the pipeline requires: the synth
then names the registry's group by ARN (the cross-account lookup), which the local AWS
follows as SageMaker does (endpointctl/local_aws.py, fix 11). Dev's account is the local
AWS's; staging and prod are other accounts, readers of the registry.

Each synth runs in its own project folder (a cdk.json with the configuration under test
and `app` pointing at this repository's app.py), so cdk.context.json lands there."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import unquote

import boto3
import pytest

from devtools.demo import ACCOUNT as LOCAL_ACCOUNT
from serving_config.paths import PROJECT_ROOT
from tests.conftest import CDK_JSON, serving_settings
from tests.cli.test_cli import endpointctl

pytestmark = pytest.mark.e2e
GROUP = "rc-fraud-detection"
LATEST = f"{GROUP}:latest-approved"
ACCOUNTS = {"dev": LOCAL_ACCOUNT, "staging": "222222222222", "prod": "333333333333"}  # dev: the local AWS's
CONTEXT_KEY = f"model-package:account={ACCOUNTS['dev']}:region=us-east-1:reference={LATEST}"


def with_accounts(serving: dict) -> dict:
    """Every environment in its own account and region, as the pipeline deploys them."""
    for name, account in ACCOUNTS.items():
        serving["environments"][name].update(account=account, region="us-east-1")
    return serving


def project(folder: Path, serving: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    document = copy.deepcopy(CDK_JSON)
    document["app"] = f"{sys.executable} {PROJECT_ROOT / 'app.py'}"
    document["context"]["serving"] = serving
    (folder / "cdk.json").write_text(json.dumps(document, indent=1))
    return folder


def cdk_in(folder: Path, *args: str) -> subprocess.CompletedProcess:
    binary = PROJECT_ROOT / "node_modules" / ".bin" / "cdk"
    env = {**os.environ, "PATH": f"{binary.parent}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([str(binary), *args, "--no-notices", "--no-version-reporting"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


def deployed_models(stack_name: str) -> list[dict]:
    sagemaker = boto3.client("sagemaker")
    resources = boto3.client("cloudformation").list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    names = [r["PhysicalResourceId"].rsplit("/", 1)[-1] for r in resources if r["ResourceType"] == "AWS::SageMaker::Model"]
    return [sagemaker.describe_model(ModelName=name) for name in names]


@pytest.fixture(scope="module")
def second_model(tmp_path_factory):
    from endpointctl.training import write_sample_model

    return write_sample_model(tmp_path_factory.mktemp("model2") / "model.tar.gz", rows=3000, seed=99)


@pytest.fixture(scope="module")
def promotion(tmp_path_factory, sample_model, second_model):
    from devtools.demo import bootstrap, local_aws

    work = tmp_path_factory.mktemp("promotion")
    seen: dict = {}
    with local_aws():
        as_configured = with_accounts(serving_settings(model_data=str(sample_model)))
        first = project(work / "as-configured", as_configured)
        bootstrap(work)
        done = cdk_in(first, "deploy", "-c", "env=dev", "--require-approval", "never")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        for argv in (("register", "--model-data", str(sample_model)), ("register", "--model-data", str(second_model)),
                     ("approve", "2", "--reason", "better recall"), ("register", "--model-data", str(sample_model)),
                     ("reject", "3", "--reason", "trained on the wrong month")):
            done = endpointctl(*argv)
            assert done.returncode == 0, done.stderr
        sagemaker = boto3.client("sagemaker")
        seen["versions"] = {
            s["ModelPackageVersion"]: sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"])
            for s in sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
        }

        raw = copy.deepcopy(as_configured)
        raw["environments"]["dev"]["model_package"] = LATEST
        approved = project(work / "latest-approved", raw)
        seen["models_before"] = deployed_models("rc-fraud-detection-dev")
        seen["deploy"] = cdk_in(approved, "deploy", "-c", "env=dev", "--require-approval", "never")  # an update
        seen["context"] = json.loads((approved / "cdk.context.json").read_text())
        seen["models"] = deployed_models("rc-fraud-detection-dev")
        seen["outputs"] = {o["OutputKey"]: o["OutputValue"] for o in boto3.client("cloudformation").describe_stacks(
            StackName="rc-fraud-detection-dev")["Stacks"][0]["Outputs"]}

        # Version 2 is rejected after it was recorded: a synth from the record reproduces it,
        # a refreshed one (the pipeline's) finds nothing approved and stops.
        endpointctl("reject", "2", "--reason", "drift found after approval")
        seen["recorded_synth"] = cdk_in(approved, "synth", "-c", "env=dev", "--quiet")
        seen["recorded_template"] = json.loads((approved / "cdk.out" / "rc-fraud-detection-dev.template.json").read_text())
        seen["refreshed_synth"] = cdk_in(approved, "synth", "-c", "env=dev", "-c", "model_package_refresh=true", "--quiet")

        missing = copy.deepcopy(raw)
        missing["environments"]["dev"]["model_package"] = "no-such-group:latest-approved"
        seen["missing_group"] = cdk_in(project(work / "missing-group", missing), "synth", "-c", "env=dev", "--quiet")
        yield seen  # the local AWS stays up for the tests that use what is deployed


def test_latest_approved_deploys_the_approved_version_and_its_handler(promotion):
    assert promotion["deploy"].returncode == 0, promotion["deploy"].stderr[-3000:]
    approved = promotion["versions"][2]
    url = approved["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert url != promotion["versions"][1]["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    models = promotion["models"]
    assert len(models) == 2  # the endpoint's model and the batch model
    for model in models:
        container = model["PrimaryContainer"]
        assert container["ModelDataUrl"] == url
        assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
        assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"  # inside the archive
    assert promotion["outputs"]["ModelPackageArn"] == approved["ModelPackageArn"]
    # before: the configured model.tar.gz, as a CDK asset
    assert all(m["PrimaryContainer"]["ModelDataUrl"].startswith("s3://cdk-hnb659fds-assets-")
               for m in promotion["models_before"])


def test_the_resolution_is_recorded_in_cdk_context_json(promotion):
    recorded = promotion["context"][CONTEXT_KEY]
    approved = promotion["versions"][2]
    assert recorded["version"] == 2 and recorded["arn"] == approved["ModelPackageArn"]
    assert recorded["model_data_url"] == approved["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]


def test_pending_and_rejected_versions_are_never_resolved(promotion):
    assert promotion["versions"][1]["ModelApprovalStatus"] == "PendingManualApproval"
    assert promotion["versions"][3]["ModelApprovalStatus"] == "Rejected"  # newer than 2, yet not resolved
    assert promotion["context"][CONTEXT_KEY]["version"] == 2
    refreshed = promotion["refreshed_synth"]
    assert refreshed.returncode != 0
    assert (f"cdk synth: model_package: group '{GROUP}' has no Approved version (1 PendingManualApproval, "
            "2 Rejected); approve one with `endpointctl approve VERSION`\n") in refreshed.stderr
    assert "Traceback" not in refreshed.stderr


def test_a_recorded_resolution_is_reproduced_without_asking_aws(promotion):
    assert promotion["recorded_synth"].returncode == 0, promotion["recorded_synth"].stderr[-2000:]
    urls = {json.dumps(r["Properties"]["PrimaryContainer"]["ModelDataUrl"])
            for r in promotion["recorded_template"]["Resources"].values() if r["Type"] == "AWS::SageMaker::Model"}
    assert urls == {json.dumps(promotion["context"][CONTEXT_KEY]["model_data_url"])}


def test_a_group_that_does_not_exist_stops_the_synth_in_one_line(promotion):
    failed = promotion["missing_group"]
    assert failed.returncode != 0
    lines = [line for line in failed.stderr.splitlines() if line.startswith("cdk synth:")]
    assert lines == [f"cdk synth: model_package: group 'no-such-group' does not exist (account {LOCAL_ACCOUNT}, region "
                     "us-east-1); deploy the stack that creates it, then `endpointctl register`"]


def test_endpointctl_against_the_deployed_stack(promotion, tmp_path):
    """invoke, status and a real CreateTransformJob through the stack's outputs. moto
    answers invoke with a placeholder and completes transform jobs without output, so
    this checks the calls, their parameters and the one-line errors, not predictions.
    The dev stack here is the one deployed last: from the registry (`latest-approved`);
    endpointctl reads this repository's cdk.json, whose dev has the same names. The
    as-configured dev deploy is the demo's (tests/release/test_e2e.py)."""
    from devtools.demo import ACCOUNT, REGION

    # dev is deployed (the promotion fixture); staging is not
    missing = endpointctl("status", "--env", "staging")
    assert missing.returncode == 1 and "stack rc-fraud-detection-staging is not deployed" in missing.stderr
    assert "Traceback" not in missing.stderr

    status = endpointctl("status", "--env", "dev")
    assert status.returncode == 0, status.stderr
    assert "endpoint rc-fraud-detection-dev-serverless: InService" in status.stdout
    assert "serverless 2048 MB, max concurrency 5" in status.stdout and "/month" in status.stdout

    invoke = endpointctl("invoke", "--env", "dev", "--body", '{"instances": [[0.5, 1.2, 0.3, 0.8, 0.1]]}', "--curl")
    assert invoke.returncode == 0, invoke.stderr
    assert "--aws-sigv4 aws:amz:us-east-1:sagemaker" in invoke.stdout
    assert "/endpoints/rc-fraud-detection-dev-serverless/invocations" in invoke.stdout

    data = tmp_path / "transactions.csv"
    data.write_text("0.5,1.2,0.3,0.8,0.1\n-0.2,0.7,1.1,0.4,0.6\n")
    calls = run_recording_calls(["transform", "--env", "dev", "--input", str(data), "--output", str(tmp_path / "out")])
    assert calls.exit_code == 1 and "is not there" in calls.stderr  # moto writes no output
    assert "Traceback" not in calls.stderr

    # The request it sent, as the local AWS recorded it.
    sagemaker = boto3.client("sagemaker")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in
               boto3.client("cloudformation").describe_stacks(StackName="rc-fraud-detection-dev")["Stacks"][0]["Outputs"]}
    (create,) = [params for operation, params in calls.made if operation == "sagemaker.CreateTransformJob"]
    job = sagemaker.describe_transform_job(TransformJobName=create["TransformJobName"])
    assert job["TransformJobName"].startswith(outputs["BatchJobNamePrefix"] + "-")
    assert job["ModelName"] == outputs["BatchModelName"]
    assert (job["BatchStrategy"], job["MaxPayloadInMB"]) == ("MultiRecord", 6)
    assert job["TransformInput"]["SplitType"] == "Line" and job["TransformInput"]["ContentType"] == "text/csv"
    assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].startswith(outputs["BatchInputUri"])
    assert job["TransformOutput"]["S3OutputPath"].startswith(outputs["BatchOutputUri"])
    assert job["TransformOutput"]["AssembleWith"] == "Line" and job["TransformOutput"]["Accept"] == "text/csv"
    assert job["TransformOutput"]["KmsKeyId"] == outputs["DataKeyArn"]
    assert job["TransformResources"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1}

    # Every call it made is one the launcher policy allows: someone holding only that
    # policy can run `endpointctl transform --env dev --input x.csv`. moto does not
    # evaluate IAM, so the deployed policy document is evaluated here.
    launcher = deployed_policy(outputs["BatchLauncherPolicyArn"])
    model_arn = sagemaker.describe_model(ModelName=create["ModelName"])["ModelArn"]  # the model it asked for
    needed = permissions_needed(calls.made, account=ACCOUNT, region=REGION, key_arn=outputs["DataKeyArn"], model_arn=model_arn)
    assert {action for action, _, _ in needed} >= {"sagemaker:CreateTransformJob", "s3:PutObject", "cloudformation:DescribeStacks"}
    refused = [need for need in needed if not allows(launcher, *need)]
    assert not refused, refused
    # and the condition bites: the same job with the endpoint's model is refused
    other = sagemaker.describe_model(ModelName=sagemaker.describe_endpoint_config(
        EndpointConfigName=sagemaker.describe_endpoint(EndpointName="rc-fraud-detection-dev-serverless")["EndpointConfigName"]
    )["ProductionVariants"][0]["ModelName"])["ModelArn"]
    job_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:transform-job/{create['TransformJobName']}"
    assert not allows(launcher, "sagemaker:CreateTransformJob", job_arn, {"sagemaker:ModelArn": other})


# ----------------------------------------------- what endpointctl calls, and IAM


@dataclass
class RecordedRun:
    exit_code: int
    stderr: str
    made: list[tuple[str, dict]]  # ("service.Operation", params) in order


def run_recording_calls(argv: list[str]) -> RecordedRun:
    """endpointctl in this process, with every AWS call it makes recorded."""
    import contextlib
    import io

    import boto3

    from endpointctl.cli import main

    made: list[tuple[str, dict]] = []

    def record(model, params, **_):
        made.append((f"{model.service_model.service_name}.{model.name}", dict(params)))

    events = boto3._get_default_session().events
    events.register("before-parameter-build", record, unique_id="e2e-record")
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            exit_code = main(argv)
    finally:
        events.unregister("before-parameter-build", unique_id="e2e-record")
    return RecordedRun(exit_code, stderr.getvalue(), made)


def deployed_policy(arn: str) -> dict:
    import boto3

    iam = boto3.client("iam")
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    return json.loads(unquote(document)) if isinstance(document, str) else document


def permissions_needed(made, *, account: str, region: str, key_arn: str, model_arn: str):
    """(action, resource, condition context) for each call, as IAM authorizes it.
    Objects in the SSE-KMS bucket also need the key; a tagged job needs AddTags."""
    import boto3

    stack_arns = {}
    needed = []
    for operation, params in made:
        if operation == "cloudformation.DescribeStacks":
            name = params["StackName"]
            if name not in stack_arns:
                stack_arns[name] = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]["StackId"]
            needed.append(("cloudformation:DescribeStacks", stack_arns[name], {}))
        elif operation == "s3.PutObject":
            needed.append(("s3:PutObject", f"arn:aws:s3:::{params['Bucket']}/{params['Key']}", {}))
            needed.append(("kms:GenerateDataKey", key_arn, {}))
        elif operation in ("s3.GetObject", "s3.HeadObject"):
            needed.append(("s3:GetObject", f"arn:aws:s3:::{params['Bucket']}/{params['Key']}", {}))
            needed.append(("kms:Decrypt", key_arn, {}))
        elif operation == "sagemaker.CreateTransformJob":
            job = f"arn:aws:sagemaker:{region}:{account}:transform-job/{params['TransformJobName']}"
            needed.append(("sagemaker:CreateTransformJob", job, {"sagemaker:ModelArn": model_arn}))
            if params.get("Tags"):
                needed.append(("sagemaker:AddTags", job, {}))
        elif operation == "sagemaker.DescribeTransformJob":
            job = f"arn:aws:sagemaker:{region}:{account}:transform-job/{params['TransformJobName']}"
            needed.append(("sagemaker:DescribeTransformJob", job, {}))
        else:
            raise AssertionError(f"endpointctl transform called {operation}; add how IAM authorizes it here")
    return needed


def allows(policy: dict, action: str, resource: str, context: dict) -> bool:
    """IAM's Allow evaluation for the parts our policies use: Action, Resource, and
    ArnEquals/StringLike conditions."""
    def as_list(value):
        return value if isinstance(value, list) else [value]

    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        if not any(fnmatchcase(action, pattern) for pattern in as_list(statement["Action"])):
            continue
        if not any(fnmatchcase(resource, pattern) for pattern in as_list(statement["Resource"])):
            continue
        if all(
            (value := context.get(key)) is not None
            and any((value == wanted) if operator == "ArnEquals" else fnmatchcase(value, wanted) for wanted in as_list(wanted_values))
            if operator in ("ArnEquals", "StringLike") else False
            for operator, keys in statement.get("Condition", {}).items()
            for key, wanted_values in keys.items()
        ):
            return True
    return False
