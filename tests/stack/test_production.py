"""Production features (issue 5), per environment, in the synthesized templates."""

from __future__ import annotations

import json
import tarfile

import pytest

from serving_config.config import ConfigError, parse_config
from tests.conftest import env_config
from tests.stack.test_stack import data_bucket


def refused(raw) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return str(caught.value)


# ------------------------------------------------------------------ availability


def test_prod_refuses_a_single_instance_and_says_why():
    message = refused(env_config("prod", endpoint={"kind": "instance", "instance_type": "ml.m5.large", "instance_count": 1}))
    assert "environments.prod.endpoint.instance_count: got 1; allowed: at least 2 in prod" in message
    assert "Availability Zones" in message


def test_prod_refuses_a_single_instance_challenger():
    endpoint = {"kind": "instance", "variants": [
        {"name": "A", "instance_type": "ml.m5.large", "instance_count": 2},
        {"name": "B", "instance_type": "ml.m5.large", "instance_count": 1, "weight": 0.1}]}
    assert "variants[1].instance_count: got 1; allowed: at least 2 in prod" in refused(env_config("prod", endpoint=endpoint))


def test_staging_may_run_one_instance():
    parse_config(env_config("staging", endpoint={"kind": "instance", "instance_type": "ml.m5.large", "instance_count": 1}))


# ------------------------------------------------------------------- autoscaling


def test_prod_autoscales_instance_count_on_invocations_per_instance(synthesized):
    target = synthesized.one("prod", "AWS::ApplicationAutoScaling::ScalableTarget")
    props = target["Properties"]
    assert props["ResourceId"] == "endpoint/rc-fraud-detection-prod-realtime/variant/AllTraffic"
    assert props["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (props["MinCapacity"], props["MaxCapacity"]) == (2, 6)
    endpoint_id = next(iter(synthesized.resources("prod", "AWS::SageMaker::Endpoint")))
    assert endpoint_id in target["DependsOn"]  # deregistered before the endpoint is deleted
    policy = synthesized.one("prod", "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    assert (tracking["TargetValue"], tracking["ScaleInCooldown"], tracking["ScaleOutCooldown"]) == (200, 300, 60)


def test_a_deploy_does_not_undo_autoscaling(synthesized):
    endpoint = synthesized.one("prod", "AWS::SageMaker::Endpoint")["Properties"]
    assert endpoint["RetainAllVariantProperties"] is True
    assert endpoint["ExcludeRetainedVariantProperties"] == [
        {"VariantPropertyType": "DesiredWeight"}, {"VariantPropertyType": "DataCaptureConfig"}]
    assert "RetainAllVariantProperties" not in synthesized.one("dev", "AWS::SageMaker::Endpoint")["Properties"]


def test_t_family_cannot_autoscale():
    endpoint = {"kind": "instance", "instance_type": "ml.t2.medium", "instance_count": 1,
                "autoscaling": {"min_instances": 1, "max_instances": 3}}
    assert "no autoscaling with T-family instances (AllTraffic: ml.t2.medium)" in refused(env_config("staging", endpoint=endpoint))


def test_staging_scales_provisioned_concurrency(synthesized):
    props = synthesized.one("staging", "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    assert props["ScalableDimension"] == "sagemaker:variant:DesiredProvisionedConcurrency"
    assert (props["MinCapacity"], props["MaxCapacity"]) == (1, 10)
    tracking = synthesized.one("staging", "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantProvisionedConcurrencyUtilization"
    assert tracking["TargetValue"] == 0.7


def test_provisioned_scaling_needs_provisioned_concurrency():
    endpoint = {"kind": "serverless", "provisioned_scaling": {"min_concurrency": 1, "max_concurrency": 2}}
    assert "only with provisioned_concurrency set" in refused(env_config("dev", endpoint=endpoint))


# --------------------------------------------------------------------- rollouts


def test_prod_updates_blue_green_with_canary_and_alarm_rollback(synthesized):
    config = synthesized.one("prod", "AWS::SageMaker::Endpoint")["Properties"]["DeploymentConfig"]
    policy = config["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}, "WaitIntervalInSeconds": 300}
    assert policy["TerminationWaitInSeconds"] == 600  # baking time
    rollback = {a["AlarmName"] for a in config["AutoRollbackConfiguration"]["Alarms"]}
    alarm_names = {a["Properties"]["AlarmName"] for a in synthesized.resources("prod", "AWS::CloudWatch::Alarm").values()}
    assert rollback == {"rc-fraud-detection-prod-realtime-AllTraffic-ModelLatency",
                        "rc-fraud-detection-prod-realtime-AllTraffic-ServerErrors"}
    assert rollback <= alarm_names


def test_ab_split_rolls_out_linearly_with_every_variants_alarms(synthesized):
    config = synthesized.one("staging-ab", "AWS::SageMaker::Endpoint")["Properties"]["DeploymentConfig"]
    routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "LINEAR" and routing["LinearStepSize"] == {"Type": "CAPACITY_PERCENT", "Value": 25}
    assert len(config["AutoRollbackConfiguration"]["Alarms"]) == 4  # latency + 5XX for each of 2 variants


def test_serverless_has_no_guardrails_and_says_so_at_synth(synthesized):
    assert "DeploymentConfig" not in synthesized.one("dev", "AWS::SageMaker::Endpoint")["Properties"]
    messages = [entry.data for entry in synthesized.stacks["dev"].endpoint.node.metadata if entry.type == "aws:cdk:info"]
    assert any("no deployment guardrails" in str(m) for m in messages)
    assert "serverless endpoints have no deployment guardrails" in refused(
        env_config("dev", endpoint={"kind": "serverless", "rollout": {"strategy": "canary"}}))


# ------------------------------------------------------- encryption and isolation


def test_one_rotating_key_encrypts_storage_capture_bucket_topic_and_logs(synthesized):
    key_id = next(iter(synthesized.resources("prod", "AWS::KMS::Key")))
    assert synthesized.one("prod", "AWS::KMS::Key")["Properties"]["EnableKeyRotation"] is True
    key = {"Fn::GetAtt": [key_id, "Arn"]}
    config = synthesized.one("prod", "AWS::SageMaker::EndpointConfig")["Properties"]
    assert config["KmsKeyId"] == key and config["DataCaptureConfig"]["KmsKeyId"] == key
    encryption = data_bucket(synthesized, "prod")["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
    assert synthesized.one("prod", "AWS::SNS::Topic")["Properties"]["KmsMasterKeyId"] == key
    assert all(group["Properties"]["KmsKeyId"] == key for group in synthesized.resources("prod", "AWS::Logs::LogGroup").values())
    # Serverless takes it too (current SageMaker docs: it encrypts SageMaker's copy of the image).
    assert "KmsKeyId" in synthesized.one("dev", "AWS::SageMaker::EndpointConfig")["Properties"]


def test_imported_key_is_used_and_not_created(synthesized):
    assert not synthesized.resources("prod-pinned-imported", "AWS::KMS::Key")
    config = synthesized.one("prod-pinned-imported", "AWS::SageMaker::EndpointConfig")["Properties"]
    assert config["KmsKeyId"] == "arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_isolated_model_runs_in_the_vpc_with_its_code_inside_the_artifact(synthesized):
    template = synthesized.templates["prod-pinned-imported"]
    for model in synthesized.resources("prod-pinned-imported", "AWS::SageMaker::Model").values():
        props = model["Properties"]
        if "VpcConfig" not in props:
            continue  # the batch model
        assert props["EnableNetworkIsolation"] is True
        assert props["VpcConfig"] == {"SecurityGroupIds": ["sg-0a1b2c3d4e5f60718"],
                                      "Subnets": ["subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719"]}
        assert props["PrimaryContainer"]["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
        break
    else:
        pytest.fail("no model with a VpcConfig")
    manifest = json.loads(next(synthesized.outdir.glob("ProdPinnedImported.assets.json")).read_text())
    archives = [synthesized.outdir / f["source"]["path"] for f in manifest["files"].values() if f["source"]["path"].endswith(".tar.gz")]
    names = [sorted(tarfile.open(a).getnames()) for a in archives]
    assert ["code/inference.py", "model.joblib"] in names
    assert "HandlerCode" not in json.dumps(template)


def test_rollout_limits_are_sagemakers():
    endpoint = {"kind": "instance", "instance_type": "ml.m5.large", "instance_count": 2}
    assert "step_percent: got 5; allowed: 10 to 50 for a linear rollout" in refused(
        env_config("staging", endpoint={**endpoint, "rollout": {"strategy": "linear", "step_percent": 5}}))
    assert "step_percent: got 60; allowed: an integer from 1 to 50" in refused(
        env_config("staging", endpoint={**endpoint, "rollout": {"strategy": "canary", "step_percent": 60}}))
    assert "more than the rollout's waits and baking (4200 s)" in refused(env_config("staging", endpoint={
        **endpoint, "rollout": {"strategy": "linear", "step_percent": 10, "wait_s": 360, "baking_s": 600, "max_execution_s": 3600}}))


def test_a_vpc_model_role_may_attach_network_interfaces(synthesized):
    template = synthesized.templates["staging-ab"]
    policy = json.dumps([v for k, v in template["Resources"].items() if k.startswith("InferenceRoleDefaultPolicy")])
    assert "ec2:CreateNetworkInterface" in policy and "ec2:DescribeSubnets" in policy
    for model in synthesized.resources("staging-ab", "AWS::SageMaker::Model").values():
        if "VpcConfig" in model["Properties"]:
            assert model["Properties"]["VpcConfig"]["Subnets"] == ["subnet-0a1b2c3d4e5f60718"]
            assert model["Properties"]["EnableNetworkIsolation"] is True  # a VPC and no network: both
    assert "ec2:" not in json.dumps(synthesized.templates["prod"])


def test_serverless_refuses_vpc_and_data_capture():
    assert "subnet_ids: got [\"subnet-0a1b2c3d4e5f60718\"]; allowed: nothing: serverless endpoints take no VPC" in refused(
        env_config("dev", network={"subnet_ids": ["subnet-0a1b2c3d4e5f60718"], "security_group_ids": ["sg-0a1b2c3d4e5f60718"]}))
    assert "serverless endpoints have no data capture" in refused(
        env_config("dev", endpoint={"kind": "serverless", "data_capture_percent": 10}))


# --------------------------------------------------------------- data capture


def test_prod_captures_requests_and_responses(synthesized):
    capture = synthesized.one("prod", "AWS::SageMaker::EndpointConfig")["Properties"]["DataCaptureConfig"]
    assert capture["EnableCapture"] is True and capture["InitialSamplingPercentage"] == 20
    assert capture["CaptureOptions"] == [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    assert "/data-capture/" in json.dumps(capture["DestinationS3Uri"])
    inference_policy = json.dumps([v for k, v in synthesized.templates["prod"]["Resources"].items()
                                   if k.startswith("InferenceRoleDefaultPolicy")])
    assert "data-capture/*" in inference_policy and "s3:PutObject" in inference_policy


# ------------------------------------------------------------------- monitoring


def dashboard_body(synthesized, case) -> dict:
    body = synthesized.one(case, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]
    text = body if isinstance(body, str) else "".join(p if isinstance(p, str) else "TOKEN" for p in body["Fn::Join"][1])
    return json.loads(text)


def test_dashboard_shows_latency_in_ms_errors_and_utilization(synthesized):
    widgets = dashboard_body(synthesized, "prod")["widgets"]
    titles = [w["properties"]["title"] for w in widgets]
    assert titles[0] == "Invocations"
    assert any("latency (ms" in t for t in titles) and "Errors" in titles
    assert any(t.startswith("CPU / memory / disk") for t in titles)
    latency = next(w for w in widgets if "latency" in w["properties"]["title"])
    expressions = [m[0]["expression"] for m in latency["properties"]["metrics"] if isinstance(m[0], dict)]
    assert expressions and all(e.endswith("/ 1000") for e in expressions)


def test_serverless_dashboard_shows_concurrency_and_cold_starts(synthesized):
    titles = [w["properties"]["title"] for w in dashboard_body(synthesized, "dev")["widgets"]]
    assert any("concurrency" in t for t in titles) and any("setup time" in t for t in titles)


def test_ab_dashboard_has_a_line_per_variant(synthesized):
    invocations = dashboard_body(synthesized, "staging-ab")["widgets"][0]["properties"]["metrics"]
    labels = [m[-1]["label"] for m in invocations]
    assert labels == ["invocations Champion", "invocations Challenger"]


def _endpoint_log_group(synthesized, case: str) -> tuple[str, dict]:
    """The endpoint's log group (a monitored endpoint's workflow has its own)."""
    return next((logical_id, group) for logical_id, group in synthesized.resources(case, "AWS::Logs::LogGroup").items()
                if group["Properties"].get("LogGroupName", "").startswith("/aws/sagemaker/Endpoints/"))


def test_endpoint_log_group_has_retention(synthesized):
    for case, days in (("dev", 30), ("prod", 365)):
        _, group = _endpoint_log_group(synthesized, case)
        assert group["Properties"]["RetentionInDays"] == days
        assert group["Properties"]["LogGroupName"].startswith("/aws/sagemaker/Endpoints/rc-fraud-detection-")
    assert _endpoint_log_group(synthesized, "prod")[1]["DeletionPolicy"] == "Retain"


def test_the_endpoint_waits_for_its_log_group_and_is_deleted_first(synthesized):
    for case in synthesized.templates:
        group, _ = _endpoint_log_group(synthesized, case)
        assert group in synthesized.one(case, "AWS::SageMaker::Endpoint").get("DependsOn", []), case


# ----------------------------------------------------------------- cost control


def test_dev_has_an_idle_alarm_prod_does_not(synthesized):
    idle = [a for a in synthesized.resources("dev", "AWS::CloudWatch::Alarm").values() if a["Properties"]["AlarmName"].endswith("-Idle")]
    assert len(idle) == 1
    props = idle[0]["Properties"]
    assert props["EvaluationPeriods"] == 24 and props["Threshold"] == 1
    assert props["ComparisonOperator"] == "LessThanThreshold" and props["TreatMissingData"] == "breaching"
    assert "destroy" in props["AlarmDescription"]
    assert not [a for a in synthesized.resources("prod", "AWS::CloudWatch::Alarm").values() if a["Properties"]["AlarmName"].endswith("-Idle")]


def test_cost_estimate_prints_its_assumed_prices():
    from endpointctl.cost import estimate, render
    from serving_config.config import load_config

    config = load_config()
    dev_lines = estimate(config.environment("dev"), requests_per_day=10_000, duration_ms=50)
    compute = dev_lines[0]
    # 10,000 x 30.42 days x 0.05 s x $0.00004/s (2 GB)
    assert compute.monthly_usd == pytest.approx(10_000 * 730 / 24 * 0.05 * 0.00004)
    assert "$0.0000400/s" in compute.unit_price
    prod_lines = estimate(config.environment("prod"), requests_per_day=10_000, duration_ms=50)
    assert prod_lines[0].monthly_usd == pytest.approx(0.115 * 730 * 2)
    text = render(config.environment("prod"), prod_lines, requests_per_day=10_000, duration_ms=50)
    assert "at $0.115/h" in text and "total" in text
