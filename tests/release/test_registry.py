"""`endpointctl register | approve | reject` and the resolution of `latest-approved`,
on the local AWS (moto's server, started once for this module).

The registry's group and bucket are created by a small CloudFormation stack named like
the dev stack, with the outputs the serving stack gives (test_e2e.py deploys the real
one); the model archives are trained here, so the behaviour summary is computed."""

from __future__ import annotations

import json

import boto3
import pytest

from serving_config.model_package import ModelPackageError, context_key, look_up, resolve
from tests.cli.test_cli import endpointctl

GROUP = "rc-fraud-detection"
BUCKET = "acme-sm-rc-fraud-detection-registry"
REGISTRY_TEMPLATE = {
    "Resources": {
        "Group": {"Type": "AWS::SageMaker::ModelPackageGroup", "Properties": {"ModelPackageGroupName": GROUP}},
        "Archives": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": BUCKET}},
    },
    "Outputs": {
        "ModelPackageGroupName": {"Value": GROUP},
        "ModelRegistryBucketName": {"Value": {"Ref": "Archives"}},
        "EndpointName": {"Value": "rc-fraud-detection-dev-serverless"},
    },
}


@pytest.fixture(scope="module")
def registry_aws():
    from devtools.demo import local_aws

    with local_aws() as env:
        boto3.client("cloudformation").create_stack(StackName="rc-fraud-detection-dev",
                                                    TemplateBody=json.dumps(REGISTRY_TEMPLATE))
        yield env


@pytest.fixture(scope="module")
def second_model(tmp_path_factory):
    from endpointctl.training import write_sample_model

    return write_sample_model(tmp_path_factory.mktemp("model2") / "model.tar.gz", rows=3000, seed=99)


@pytest.fixture(scope="module")
def registered(registry_aws, sample_model, second_model):
    """Version 1 and 2 registered; 2 approved, 1 left pending. Then 3 registered and rejected."""
    first = endpointctl("register", "--model-data", str(sample_model))
    second = endpointctl("register", "--model-data", str(second_model))
    approve = endpointctl("approve", "2", "--reason", "better recall on the June holdout")
    third = endpointctl("register", "--model-data", str(second_model))
    reject = endpointctl("reject", "3", "--reason", "trained on the wrong month")
    return {"first": first, "second": second, "approve": approve, "third": third, "reject": reject}


def versions() -> dict[int, dict]:
    sagemaker = boto3.client("sagemaker")
    summaries = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    return {s["ModelPackageVersion"]: sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"])
            for s in summaries}


def test_register_creates_pending_versions_with_the_endpoints_container(registered, sample_model):
    for name in ("first", "second", "approve", "third", "reject"):
        assert registered[name].returncode == 0, registered[name].stderr
    assert "registered rc-fraud-detection version 1" in registered["first"].stdout
    first = versions()[1]
    container = first["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    assert container["ModelDataUrl"].startswith(f"s3://{BUCKET}/model-registry/{GROUP}/")
    env = container["Environment"]
    assert env["SAGEMAKER_PROGRAM"] == "inference.py" and env["SAGEMAKER_CONTAINER_LOG_LEVEL"] == "20"
    assert env["SAGEMAKER_REGION"] == "us-east-1"
    assert env["HANDLER_MAX_REQUEST_BYTES"] == str(4 * 1024 * 1024)  # dev is serverless
    assert env["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"  # the handler is in the archive
    # The uploaded archive: the model's files as registered, and today's handler under code/.
    import hashlib
    import io
    import tarfile

    from serving_runtime.archive import archive_files
    from serving_config.paths import HANDLER_DIR

    s3 = boto3.client("s3")
    bucket, key = container["ModelDataUrl"].removeprefix("s3://").split("/", 1)
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()), mode="r:gz") as tar:
        uploaded = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    assert uploaded == {**dict(archive_files(sample_model)),
                        "code/inference.py": (HANDLER_DIR / "inference.py").read_bytes()}
    assert first["CustomerMetadataProperties"]["ModelSha256"] == hashlib.sha256(sample_model.read_bytes()).hexdigest()


def test_versions_carry_a_behaviour_summary(registered):
    first = versions()[1]
    # Nothing was approved when 1 and 2 were registered; 3 is compared with approved 2 (same archive).
    assert first["ModelPackageDescription"].startswith("first candidate: flags ")
    assert "of 2,000 synthetic transactions" in first["ModelPackageDescription"]
    third = versions()[3]
    assert third["ModelPackageDescription"].startswith("vs approved version 2: same decision on 100.0% of 2,000")
    assert "p99 |change in P(fraud)| 0.0000" in third["ModelPackageDescription"]
    assert third["CustomerMetadataProperties"]["ComparedWithVersion"] == "2"
    assert third["CustomerMetadataProperties"]["DecisionAgreement"] == "1.0000"


def test_approve_and_reject_set_status_and_reason(registered):
    by_version = versions()
    assert by_version[1]["ModelApprovalStatus"] == "PendingManualApproval"
    assert by_version[2]["ModelApprovalStatus"] == "Approved"
    assert by_version[2]["ApprovalDescription"] == "better recall on the June holdout"
    assert by_version[3]["ModelApprovalStatus"] == "Rejected"
    assert by_version[3]["ApprovalDescription"] == "trained on the wrong month"
    assert "PendingManualApproval -> Approved" in registered["approve"].stdout


def test_latest_approved_resolves_to_the_approved_version_never_pending_or_rejected(registered, tmp_path):
    client = boto3.client("sagemaker")
    resolved = look_up(f"{GROUP}:latest-approved", region="us-east-1", registry_account=None, client=client)
    assert resolved.version == 2 and resolved.arn.endswith(f"model-package/{GROUP}/2")
    assert resolved.model_data_url == versions()[2]["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    for version, status in ((1, "PendingManualApproval"), (3, "Rejected")):
        arn = versions()[version]["ModelPackageArn"]
        with pytest.raises(ModelPackageError, match=rf"is {status}; only Approved versions deploy"):
            look_up(arn, region="us-east-1", registry_account=None, client=client)


def test_the_registry_is_found_by_arn_as_a_cross_account_synth_asks(registered):
    """With `account` set, the synth names the group by ARN (serving_config.model_package.look_up);
    the local AWS follows it as SageMaker does (endpointctl/local_aws.py, fix 11)."""
    client = boto3.client("sagemaker")
    resolved = look_up(f"{GROUP}:latest-approved", region="us-east-1", registry_account="123456789012", client=client)
    assert resolved.version == 2
    group_arn = f"arn:aws:sagemaker:us-east-1:123456789012:model-package-group/{GROUP}"
    assert client.describe_model_package_group(ModelPackageGroupName=group_arn)["ModelPackageGroupName"] == GROUP
    listed = client.list_model_packages(ModelPackageGroupName=group_arn)["ModelPackageSummaryList"]
    assert sorted(s["ModelPackageVersion"] for s in listed) == [1, 2, 3]
    missing = "arn:aws:sagemaker:us-east-1:123456789012:model-package-group/no-such-group"
    with pytest.raises(ModelPackageError, match=r"^model_package: group 'no-such-group' does not exist "
                       r"\(account 123456789012, region us-east-1\)"):
        look_up("no-such-group:latest-approved", region="us-east-1", registry_account="123456789012", client=client)
    with pytest.raises(client.exceptions.ClientError, match=f"ModelPackageGroup {missing} does not exist"):
        client.describe_model_package_group(ModelPackageGroupName=missing)


def test_a_registry_in_another_account_is_reached_by_its_arn(registry_aws, sample_model):
    """A group and an approved version in account 222222222222 (created there through an
    assumed role), described, listed, approved and resolved from the caller's account."""
    credentials = boto3.client("sts").assume_role(
        RoleArn="arn:aws:iam::222222222222:role/registry-admin", RoleSessionName="test")["Credentials"]
    registry = boto3.client("sagemaker", aws_access_key_id=credentials["AccessKeyId"],
                            aws_secret_access_key=credentials["SecretAccessKey"],
                            aws_session_token=credentials["SessionToken"])
    registry.create_model_package_group(ModelPackageGroupName="shared-group")
    version_arn = registry.create_model_package(
        ModelPackageGroupName="shared-group", ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "image:1", "ModelDataUrl": "s3://archives/model.tar.gz"}],
                                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
    )["ModelPackageArn"]
    assert ":222222222222:" in version_arn
    caller = boto3.client("sagemaker")
    with pytest.raises(caller.exceptions.ClientError, match="does not exist"):
        caller.describe_model_package_group(ModelPackageGroupName="shared-group")  # by name: the caller's own account
    caller.update_model_package(ModelPackageArn=version_arn, ModelApprovalStatus="Approved")
    assert caller.describe_model_package(ModelPackageName=version_arn)["ModelApprovalStatus"] == "Approved"
    resolved = look_up("shared-group:latest-approved", region="us-east-1", registry_account="222222222222", client=caller)
    assert (resolved.arn, resolved.model_data_url) == (version_arn, "s3://archives/model.tar.gz")


def test_resolution_is_recorded_in_the_context_file_and_read_back_without_aws(registered, tmp_path):
    context_file = tmp_path / "cdk.context.json"
    context_file.write_text(json.dumps({"other-lookup": 1}))
    reference = f"{GROUP}:latest-approved"
    resolved = resolve(reference, region="us-east-1", registry_account=None, context={},
                       sagemaker_client=lambda region: boto3.client("sagemaker", region_name=region),
                       context_file=context_file)
    recorded = json.loads(context_file.read_text())
    key = context_key(reference, region="us-east-1", registry_account=None)
    assert recorded == {"other-lookup": 1, key: resolved.to_context()}

    def no_aws(region):
        raise AssertionError("a recorded resolution must not call AWS")

    again = resolve(reference, region="us-east-1", registry_account=None, context=recorded,
                    sagemaker_client=no_aws, context_file=context_file)
    assert again == resolved


@pytest.mark.parametrize("reference, message", [
    ("no-such-group:latest-approved", "model_package: group 'no-such-group' does not exist (account (caller), region us-east-1)"),
    ("arn:aws:sagemaker:eu-west-1:123456789012:model-package/rc-fraud-detection/2",
     "model_package: arn:aws:sagemaker:eu-west-1:123456789012:model-package/rc-fraud-detection/2 is in region eu-west-1, "
     "the environment deploys to us-east-1"),
    ("rc-fraud-detection:latest", "model_package: got \"rc-fraud-detection:latest\"; allowed: '<group>:latest-approved' or arn:"),
])
def test_bad_references_are_one_line(registered, reference, message):
    with pytest.raises(ModelPackageError) as raised:
        look_up(reference, region="us-east-1", registry_account=None, client=boto3.client("sagemaker"))
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_a_group_without_approved_versions_is_one_line(registry_aws):
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName="empty-group")
    with pytest.raises(ModelPackageError, match=r"^model_package: group 'empty-group' has no Approved version "
                       r"\(no versions registered\); approve one with `endpointctl approve VERSION`$"):
        look_up("empty-group:latest-approved", region="us-east-1", registry_account=None, client=boto3.client("sagemaker"))


def test_cli_errors_are_one_line(registered, tmp_path):
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a tarball")
    cases = [
        (("register", "--model-data", str(broken)), "endpointctl register: preflight refused"),
        (("register", "--model-data", str(tmp_path / "missing.tar.gz")), "endpointctl register: --model-data"),
        (("approve", "9"), "endpointctl approve: group rc-fraud-detection has no version 9"),
        (("approve", "two"), "endpointctl approve: VERSION: got 'two'; allowed: a version number"),
        (("reject", "1", "--reason", " "), "endpointctl reject: --reason: got an empty reason"),
    ]
    for argv, start in cases:
        result = endpointctl(*argv)
        assert result.returncode == 1 and result.stderr.startswith(start), (argv, result.stderr)
        assert "Traceback" not in result.stderr
    # Nothing was registered by the failures.
    assert sorted(versions()) == [1, 2, 3]
