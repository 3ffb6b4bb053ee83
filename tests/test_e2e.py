"""The demo's path against a moto server this test starts on a free loopback port:
bootstrap, deploy dev with the real cdk CLI, check what was created against the
template, fetch and check the deployed archives, serve and invoke them, transform,
destroy, and assert nothing billable is left."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import unquote

import pytest

from endpointctl.demo import run_demo
from stacks.config import load_config
from tests.test_cli import endpointctl

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    return run_demo(workdir=tmp_path_factory.mktemp("demo"))


def test_deployed_model_matches_the_template(seen):
    container = seen["deployed"].model["PrimaryContainer"]
    assert container["Image"] == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_CONTAINER_LOG_LEVEL"] == "20"
    assert container["Environment"]["SAGEMAKER_REGION"] == "us-east-1"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"].startswith("s3://cdk-hnb659fds-assets-123456789012-us-east-1/")


def test_deployed_endpoint_config_is_the_guides_serverless_config(seen):
    dev = load_config().environment("dev")
    variant = seen["deployed"].endpoint_config["ProductionVariants"][0]
    assert variant["ServerlessConfig"]["MemorySizeInMB"] == dev.endpoint.memory_mb == 2048
    assert variant["ServerlessConfig"]["MaxConcurrency"] == dev.endpoint.max_concurrency == 5
    assert seen["deployed"].endpoint["EndpointStatus"] == "InService"


def test_deployed_archives_are_gzip_tars_the_container_can_read(seen):
    assert seen["model_members"] == ["model.joblib"]
    assert seen["code_members"] == ["inference.py"]


def test_the_deployed_artifacts_answer_the_guides_request(seen):
    status, body = seen["invoke"]
    assert status == 200 and len(body["predictions"]) == 2 and len(body["probabilities"][0]) == 2


def test_transform_writes_one_line_per_record(seen):
    assert seen["transform"]["output_lines"] == seen["transform"]["input_rows"] == 5000
    label, *probabilities = seen["transform"]["first"].split(",")
    assert label in ("0", "1") and abs(sum(map(float, probabilities)) - 1) < 1e-9


def test_destroy_leaves_nothing_billable(seen):
    assert seen["leftovers"] == {"endpoints": [], "endpoint configs": [], "models": []}


def test_destroy_leaves_no_dev_bucket_and_names_what_it_keeps(seen):
    assert seen["bucket_left"] is False
    # dev is the model registry's environment: the registry and its access logs outlive the stack
    assert sorted(name.split(" (")[1] for name in seen["retained"]) == [
        "AWS::KMS::Key)", "AWS::S3::Bucket)", "AWS::S3::Bucket)", "AWS::SageMaker::ModelPackageGroup)"]


# ------------------------------------------- second deploys (the demo's steps 8 and 9)


def test_second_deploy_serves_the_retrained_model(seen):
    """The deployed ModelDataUrl, fetched back and served, answers with v2's probabilities."""
    status, body = seen["release_invoke"]
    assert status == 200
    for served, expected in zip(body["probabilities"], seen["retrained_probabilities"]):
        assert served == pytest.approx(expected, abs=1e-9)
    assert body["probabilities"] != seen["invoke"][1]["probabilities"]  # not v1's answer


def test_second_deploy_removes_v1_and_orphans_nothing(seen):
    release, v1 = seen["release"], seen["deployed"]
    old = {v1.model["ModelName"], v1.endpoint_config["EndpointConfigName"]}
    assert old <= release.gone()
    assert not old & set(release.sagemaker_after["models"] + release.sagemaker_after["endpoint configs"])
    assert release.orphans() == {"models": [], "endpoint configs": [], "endpoints": []}
    assert release.sagemaker_after["endpoints"] == ["rc-fraud-detection-dev-serverless"]


def test_second_deploy_did_what_its_plan_said(seen):
    release = seen["release"]
    stack = release.stack_plan
    assert stack["endpoint"]["effect"] == "update" and stack["endpoint"]["rollout"]["strategy"] == "serverless"
    planned = {r["logical_id"]: r["action"] for r in stack["resources"]}
    assert planned["Model0301700E"] == planned["EndpointConfig24AD0A28"] == "replace"
    assert planned["EndpointEEF1FD8F"] == "update"
    assert stack["model_diff"]["rows"] == 2000 and "skipped" not in stack["model_diff"]
    assert release.differences_from_plan() == []
    name = "rc-fraud-detection-dev-serverless"
    assert release.sagemaker_before["endpoint_detail"][name][0] != release.sagemaker_after["endpoint_detail"][name][0]
    assert "## rc-fraud-detection-dev" in release.markdown


def test_alarm_change_leaves_model_config_and_endpoint_untouched(seen):
    release = seen["alarm_release"]
    stack = release.stack_plan
    assert [(r["logical_id"], r["action"]) for r in stack["resources"]] == [("AlarmsModelLatencyAlarm7B529A72", "update")]
    assert stack["endpoint"]["effect"] == "unchanged" and stack["model_diff"] is None
    assert release.sagemaker_before == release.sagemaker_after  # same names, same config, no endpoint update
    assert release.differences_from_plan() == []


def test_prod_deploys_and_destroys_keeping_only_its_retained_data(tmp_path):
    """prod: instance-backed, data capture, KMS, log group; destroy keeps the bucket
    (retain_data) and removes everything that bills."""
    import boto3

    from endpointctl.demo import ACCOUNT, REGION, billable_leftovers, cdk, describe_deployment, local_aws

    with local_aws():
        cdk("bootstrap", f"aws://{ACCOUNT}/{REGION}", output=tmp_path, quiet=True)
        cdk("deploy", "-c", "env=prod", "--require-approval", "never", output=tmp_path, quiet=True)
        deployed = describe_deployment("prod")
        prod = load_config().environment("prod")
        assert deployed.outputs["EndpointName"] == prod.endpoint_name == "rc-fraud-detection-prod-realtime"
        variant = deployed.endpoint_config["ProductionVariants"][0]
        assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.large", 2)
        capture = deployed.endpoint_config["DataCaptureConfig"]
        assert capture["InitialSamplingPercentage"] == 20
        assert capture["DestinationS3Uri"] == "s3://acme-sm-rc-fraud-detection-prod/data-capture/"
        assert capture["KmsKeyId"] == deployed.outputs["DataKeyArn"]
        groups = [g["logGroupName"] for g in boto3.client("logs").describe_log_groups()["logGroups"]]
        assert "/aws/sagemaker/Endpoints/rc-fraud-detection-prod-realtime" in groups
        cdk("destroy", "-c", "env=prod", "--force", output=tmp_path, quiet=True)
        assert billable_leftovers() == {"endpoints": [], "endpoint configs": [], "models": []}
        buckets = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
        assert "acme-sm-rc-fraud-detection-prod" in buckets  # retained on purpose


def test_endpointctl_against_the_deployed_stack(tmp_path):
    """invoke, status and a real CreateTransformJob through the stack's outputs. moto
    answers invoke with a placeholder and completes transform jobs without output, so
    this checks the calls, their parameters and the one-line errors, not predictions."""
    import boto3

    from endpointctl.demo import ACCOUNT, REGION, cdk, local_aws

    with local_aws():
        missing = endpointctl("status", "--env", "dev")
        assert missing.returncode == 1 and "stack rc-fraud-detection-dev is not deployed" in missing.stderr
        assert "Traceback" not in missing.stderr
        cdk("bootstrap", f"aws://{ACCOUNT}/{REGION}", output=tmp_path, quiet=True)
        cdk("deploy", "-c", "env=dev", "--require-approval", "never", output=tmp_path, quiet=True)

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
        cdk("destroy", "-c", "env=dev", "--force", output=tmp_path, quiet=True)


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
