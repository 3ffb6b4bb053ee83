"""What a bank's reviewer asks of the synthesized templates (issue 13): isolation by
default, an access trail, retention, key and trust scoping, someone paged."""

from __future__ import annotations

import json

import pytest

from serving_config.config import ConfigError, parse_config
from tests.conftest import CONTEXT, env_config, serving_settings
from tests.stack.test_stack import CASES, _logical_id, as_list, data_bucket, statements

SERVERLESS = ("dev", "staging")


def refused(raw) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return str(caught.value)


def _models(synthesized, case: str) -> dict[str, dict]:
    return synthesized.resources(case, "AWS::SageMaker::Model")


# ------------------------------------------------------------------- isolation


@pytest.mark.parametrize("case", CASES)
def test_every_batch_model_and_every_instance_endpoints_model_is_isolated(synthesized, case):
    for logical_id, model in _models(synthesized, case).items():
        props = model["Properties"]
        serverless_endpoint_model = case in SERVERLESS and not logical_id.startswith("BatchTransform")
        if serverless_endpoint_model:
            assert "EnableNetworkIsolation" not in props  # SageMaker offers none for serverless
            continue
        assert props["EnableNetworkIsolation"] is True, (case, logical_id)
        # No network, so no download of SAGEMAKER_SUBMIT_DIRECTORY: the code is inside the artifact.
        assert props["PrimaryContainer"]["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"


def test_a_model_left_open_says_why_at_synth(synthesized):
    def warnings(case: str) -> list[str]:
        model = synthesized.stacks[case].node.find_child("Model")
        return [str(m.data) for m in model.node.metadata if m.type == "aws:cdk:warning"]

    for case in SERVERLESS:
        assert any("is not network-isolated" in w and "serverless endpoints take no network isolation" in w
                   for w in warnings(case)), warnings(case)
    assert warnings("prod") == []


def test_turning_isolation_off_takes_a_written_reason():
    message = refused(env_config("staging", network={"isolation": False}))
    assert "environments.staging.network.isolation_off_reason: got null; allowed: a written reason" in message
    reason = "the handler pip-installs its requirements at start"
    env = parse_config(env_config("staging", network={"isolation": False, "isolation_off_reason": reason}))
    assert env.environment("staging").network.isolation_off_reason == reason


def test_an_s3_artifact_cannot_be_isolated_and_the_config_says_what_to_do():
    message = refused(env_config("prod", model_data="s3://acme-models/fraud/model.tar.gz"))
    assert ("environments.prod.model_data: got \"s3://acme-models/fraud/model.tar.gz\"; allowed: a local .tar.gz "
            "while network.isolation is on") in message


# ------------------------------------------------------------------ access logs


@pytest.mark.parametrize("case", ["dev", "staging", "prod", "staging-ab"])
def test_the_data_bucket_logs_access_to_a_log_bucket_s3_can_deliver_to(synthesized, case):
    template = synthesized.templates[case]
    bucket = data_bucket(synthesized, case)["Properties"]
    log_id = _logical_id(template, "AccessLogBucket", "AWS::S3::Bucket")
    log_bucket = template["Resources"][log_id]["Properties"]
    assert bucket["LoggingConfiguration"] == {"DestinationBucketName": {"Ref": log_id},
                                              "LogFilePrefix": f"{bucket['BucketName']}/"}
    # S3 log delivery writes only to SSE-S3 buckets (not SSE-KMS), without Object Lock.
    assert log_bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    assert "ObjectLockConfiguration" not in log_bucket and "ObjectLockEnabled" not in log_bucket
    assert log_bucket["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    # Its own retention.
    expiry = [r for r in log_bucket["LifecycleConfiguration"]["Rules"] if "ExpirationInDays" in r]
    assert [r["ExpirationInDays"] for r in expiry] == [365]
    # The log-delivery policy: only S3's logging service, only for our bucket and account.
    policy = next(r for r in template["Resources"].values()
                  if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": log_id})
    (delivery,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
                   if s.get("Sid") == "S3ServerAccessLogDelivery"]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["Effect"] == "Allow" and delivery["Action"] == "s3:PutObject"
    assert json.dumps(delivery["Resource"]).endswith(f'"/{bucket["BucketName"]}/*"]]}}')
    assert delivery["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert json.dumps(delivery["Condition"]["ArnLike"]["aws:SourceArn"]).endswith(f':s3:::{bucket["BucketName"]}"]]}}')
    assert policy["Properties"]["PolicyDocument"]["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_registry_in_dev_logs_to_the_same_log_bucket_which_outlives_dev(synthesized):
    template = synthesized.templates["dev"]
    registry_id = _logical_id(template, "ModelRegistryArchives", "AWS::S3::Bucket")
    log_id = _logical_id(template, "AccessLogBucket", "AWS::S3::Bucket")
    registry = template["Resources"][registry_id]
    assert registry["Properties"]["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": log_id}
    assert registry["Properties"]["LoggingConfiguration"]["LogFilePrefix"] == "acme-sm-rc-fraud-detection-registry/"
    # The registry is retained, so its access logs are too (dev's data are not).
    assert template["Resources"][log_id]["DeletionPolicy"] == "Retain" == registry["DeletionPolicy"]
    assert data_bucket(synthesized, "dev")["DeletionPolicy"] == "Delete"
    rules = registry["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rules == [{"Id": "AbortIncompleteUploads", "Status": "Enabled",
                      "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}]


def test_an_imported_bucket_gets_no_log_bucket(synthesized):
    assert not synthesized.resources("prod-pinned-imported", "AWS::S3::Bucket")


def test_an_existing_log_bucket_takes_no_retention_of_ours():
    message = refused(env_config("prod", access_logs={"bucket": "acme-central-access-logs", "retention_days": 30}))
    assert "environments.prod.access_logs.retention_days: got 30; allowed: nothing with an existing bucket" in message
    env = parse_config(env_config("prod", access_logs={"bucket": "acme-central-access-logs"})).environment("prod")
    assert env.access_logs.bucket == "acme-central-access-logs"


# -------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize("case", ["dev", "prod"])
def test_each_prefix_expires_old_versions_go_and_incomplete_uploads_are_aborted(synthesized, case):
    rules = data_bucket(synthesized, case)["Properties"]["LifecycleConfiguration"]["Rules"]
    expiry = {r["Prefix"]: r["ExpirationInDays"] for r in rules if "Prefix" in r}
    assert expiry == {"data-capture/": 90, "batch-input/": 30, "batch-output/": 90, "ground-truth/": 180,
                      "monitoring/": 400}
    (tidy,) = [r for r in rules if "Prefix" not in r]
    assert tidy["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert tidy["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert all(r["Status"] == "Enabled" for r in rules)


def test_null_keeps_a_prefix():
    import aws_cdk as cdk

    from stacks.data_store import data_lifecycle_rules

    lifecycle = {"batch_output_days": None, "noncurrent_version_days": None, "data_capture_days": 400}
    env = parse_config(env_config("prod", lifecycle=lifecycle)).environment("prod")
    stack = cdk.Stack(cdk.App())
    rendered = [stack.resolve(r) for r in data_lifecycle_rules(env)]
    assert {r["prefix"]: r["expiration"] for r in rendered if r.get("prefix")}.keys() == {
        "data-capture/", "batch-input/", "ground-truth/", "monitoring/"}
    assert all("noncurrentVersionExpiration" not in r for r in rendered)


def test_cost_shows_what_storage_is_kept():
    from endpointctl.cost import storage_lines

    env = parse_config(env_config("prod", lifecycle={"batch_output_days": None})).environment("prod")
    text = "\n".join(storage_lines(env))
    assert "data-capture/: 90 days" in text and "batch-input/: 30 days" in text
    assert "batch-output/: kept until deleted" in text
    assert "old versions: 30 days" in text and "access logs: 365 days" in text


def test_cost_shows_what_the_pipeline_keeps_in_the_registry_environment():
    from endpointctl.cost import delivery_lines

    raw = serving_settings(pipeline={"connection_arn": "arn:aws:codeconnections:eu-west-1:111111111111:connection/"
                                   "abcd1234-ab12-cd34-ef56-abcdef123456", "repository": "acme/fraud-endpoint",
                                   "artifact_days": 30})
    config = parse_config(raw)
    assert delivery_lines(config, config.environment("dev")) == [
        "pipeline artifacts kept in s3://acme-sm-rc-fraud-detection-pipeline: 30 days; old versions: 30 days; "
        "incomplete uploads aborted after 7 days",
        "  build logs in /aws/codebuild/rc-fraud-detection-pipeline: 365 days (every CodeBuild step of the pipeline)",
    ]
    assert delivery_lines(config, config.environment("prod")) == []  # the pipeline lives in the registry's account
    plain = parse_config(serving_settings())
    assert delivery_lines(plain, plain.environment("dev")) == []  # no pipeline configured


# ------------------------------------------------------------------ key, trust


@pytest.mark.parametrize("case", ["dev", "prod"])
def test_the_key_allows_grants_only_for_aws_resources(synthesized, case):
    """Control Tower CT.KMS.PR.3; SageMaker's grant for the endpoint's storage is for an AWS resource."""
    keys = synthesized.resources(case, "AWS::KMS::Key")  # the data key; in dev also the model registry's
    assert len(keys) == (2 if case == "dev" else 1)
    for key in keys.values():
        policy = key["Properties"]["KeyPolicy"]["Statement"]
        (deny,) = [s for s in policy if s["Effect"] == "Deny"]
        assert deny == {
            "Sid": "GrantsOnlyForAwsResources", "Effect": "Deny", "Principal": "*", "Action": "kms:CreateGrant",
            "Resource": "*",
            "Condition": {"BoolIfExists": {"kms:GrantIsForAWSResource": "false", "aws:PrincipalIsAWSService": "false"}},
        }
        for statement in policy:  # every service principal is held to our account
            principal = statement.get("Principal")
            services = as_list(principal.get("Service", [])) if isinstance(principal, dict) else []
            if "cloudwatch.amazonaws.com" in services:
                assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
                assert json.dumps(statement["Condition"]["ArnLike"]["aws:SourceArn"]).endswith(':alarm:*"]]}')


@pytest.mark.parametrize("case", CASES)
def test_roles_sagemaker_assumes_require_our_account_and_the_documented_arn_pattern(synthesized, case):
    roles = synthesized.resources(case, "AWS::IAM::Role")
    trusted = 0
    for logical_id, role in roles.items():
        for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            if statement["Principal"].get("Service") != "sagemaker.amazonaws.com":
                continue
            trusted += 1
            account = "111111111111" if case == "prod-pinned-imported" else {"Ref": "AWS::AccountId"}
            assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": account}
            source = statement["Condition"]["ArnLike"]["aws:SourceArn"]
            # arn:aws:sagemaker:<region>:<account>:* — never one model's or endpoint's ARN.
            text = source if isinstance(source, str) else "".join(
                p if isinstance(p, str) else "<ref>" for p in source["Fn::Join"][1])
            assert text.endswith(":*") and ":sagemaker:" in text and "model/" not in text, text
    monitored = bool(synthesized.resources(case, "AWS::StepFunctions::StateMachine"))
    # the batch role; the inference role we create; the monitoring job's role
    assert trusted == (1 if case == "prod-pinned-imported" else 2) + monitored


def test_network_interface_statements_only_for_vpc_models_and_only_what_stays_star(synthesized):
    for case in CASES:
        in_vpc = any("VpcConfig" in m["Properties"] for m in _models(synthesized, case).values())
        ec2 = [s for s in statements(synthesized.templates[case]) if any(a.startswith("ec2:") for a in as_list(s["Action"]))]
        assert bool(ec2) == in_vpc, case
        for statement in ec2:
            assert statement["Sid"] in ("ReadVpcConfiguration", "ManageModelNetworkInterfaces")
            assert not statement.get("Condition")  # SageMaker's VPC validation fails with ec2:Subnet/ec2:Vpc conditions


# ----------------------------------------------------------------------- paging


def test_prod_pages_someone():
    raw = env_config("prod", alarms={"email": None})
    assert ("environments.prod.alarms.email: got null; allowed: an e-mail address, or an existing SNS topic ARN in "
            "alarms.topic_arn") in refused(raw)
    without_key = env_config("prod")
    del without_key["environments"]["prod"]["alarms"]
    assert "environments.prod.alarms.email: got null" in refused(without_key)
    topic = "arn:aws:sns:us-east-1:111111111111:oncall-pager"
    assert parse_config(env_config("prod", alarms={"topic_arn": topic})).environment("prod").alarms.topic_arn == topic


def test_any_environment_can_require_paging():
    assert "environments.staging.alarms.email: got null" in refused(env_config("staging", alarms={"required": True}))
    parse_config(env_config("staging", alarms={"required": True, "email": "oncall@acme.example"}))


def test_prod_in_a_vpc_needs_two_subnets():
    network = {"subnet_ids": ["subnet-0a1b2c3d4e5f60718"], "security_group_ids": ["sg-0a1b2c3d4e5f60718"]}
    assert ('environments.prod.network.subnet_ids: got ["subnet-0a1b2c3d4e5f60718"]; allowed: at least 2 subnets in prod'
            in refused(env_config("prod", network=network)))
    instance = {"kind": "instance", "instance_type": "ml.m5.large", "instance_count": 1}
    parse_config(env_config("staging", endpoint=instance, network=network))  # staging may run in one


def test_prod_alarms_reach_the_email_and_an_existing_topic(synthesized, sample_model, tmp_path):
    """cdk.json's prod subscribes its on-call address; a topic ARN from config is notified too."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from stacks.serving_stack import ServingStack

    subscription = synthesized.one("prod", "AWS::SNS::Subscription")["Properties"]
    assert subscription["Protocol"] == "email" and subscription["Endpoint"] == CONTEXT["serving"]["environments"]["prod"]["alarms"]["email"]

    topic = "arn:aws:sns:us-east-1:111111111111:oncall-pager"
    raw = env_config("staging", alarms={"topic_arn": topic, "required": True})
    raw["model_data"] = str(sample_model)
    environment = parse_config(raw).environment("staging")
    template = Template.from_stack(ServingStack(cdk.App(context=CONTEXT, outdir=str(tmp_path)), "Paged", environment=environment))
    for alarm in template.find_resources("AWS::CloudWatch::Alarm").values():
        assert topic in alarm["Properties"]["AlarmActions"]


def test_the_isolated_models_archive_serves_as_synthesized(synthesized):
    """prod's endpoint model as the template gives it to SageMaker: the repacked archive
    (handler under code/) and SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code."""
    import re

    from endpointctl.invoke import post_local
    from endpointctl.local import LocalEndpoint

    container = synthesized.templates["prod"]["Resources"][_logical_id(
        synthesized.templates["prod"], "Model", "AWS::SageMaker::Model")]["Properties"]["PrimaryContainer"]
    asset_hash = re.search(r"([0-9a-f]{64})\.gz", json.dumps(container["ModelDataUrl"])).group(1)
    manifest = json.loads((synthesized.outdir / "Prod.assets.json").read_text())
    archive = synthesized.outdir / manifest["files"][asset_hash]["source"]["path"]
    code = container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"]
    assert code == "/opt/ml/model/code"
    with LocalEndpoint(model_data=archive, code=code, workers=1) as endpoint:
        status, _, body = post_local(endpoint.url, b'{"instances": [[0.5, 1.2, 0.3, 0.8, 0.1]]}',
                                     "application/json", "application/json")
    assert status == 200 and len(json.loads(body)["predictions"]) == 1
