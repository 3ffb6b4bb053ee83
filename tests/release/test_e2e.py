"""The demo's path against a moto server this test starts on a free loopback port:
bootstrap, deploy dev with the real cdk CLI, check what was created against the
template, fetch and check the deployed archives, serve and invoke them, transform,
destroy, and assert nothing billable is left."""

from __future__ import annotations

import pytest

from devtools.demo import run_demo
from serving_config.config import load_config

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    return run_demo(workdir=tmp_path_factory.mktemp("demo"))


def test_deployed_model_matches_the_template(seen):
    container = seen.deployed.model["PrimaryContainer"]
    assert container["Image"] == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_CONTAINER_LOG_LEVEL"] == "20"
    assert container["Environment"]["SAGEMAKER_REGION"] == "us-east-1"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"].startswith("s3://cdk-hnb659fds-assets-123456789012-us-east-1/")


def test_deployed_endpoint_config_is_the_guides_serverless_config(seen):
    dev = load_config().environment("dev")
    variant = seen.deployed.endpoint_config["ProductionVariants"][0]
    assert variant["ServerlessConfig"]["MemorySizeInMB"] == dev.endpoint.memory_mb == 2048
    assert variant["ServerlessConfig"]["MaxConcurrency"] == dev.endpoint.max_concurrency == 5
    assert seen.deployed.endpoint["EndpointStatus"] == "InService"


def test_deployed_archives_are_gzip_tars_the_container_can_read(seen):
    assert seen.model_members == ["model.joblib"]
    assert seen.code_members == ["inference.py"]


def test_the_deployed_artifacts_answer_the_guides_request(seen):
    status, body = seen.invoke
    assert status == 200 and len(body["predictions"]) == 2 and len(body["probabilities"][0]) == 2


def test_transform_writes_one_line_per_record(seen):
    assert seen.transform["output_lines"] == seen.transform["input_rows"] == 5000
    label, *probabilities = seen.transform["first"].split(",")
    assert label in ("0", "1") and abs(sum(map(float, probabilities)) - 1) < 1e-9


def test_destroy_leaves_nothing_billable(seen):
    assert seen.leftovers == {"endpoints": [], "endpoint configs": [], "models": []}


def test_destroy_leaves_no_dev_bucket_and_names_what_it_keeps(seen):
    assert seen.bucket_left is False
    # dev is the model registry's environment: the registry and its access logs outlive the stack
    assert sorted(name.split(" (")[1] for name in seen.retained) == [
        "AWS::KMS::Key)", "AWS::S3::Bucket)", "AWS::S3::Bucket)", "AWS::SageMaker::ModelPackageGroup)"]


# ------------------------------------------- second deploys (the demo's steps 8 and 9)


def test_second_deploy_serves_the_retrained_model(seen):
    """The deployed ModelDataUrl, fetched back and served, answers with v2's probabilities."""
    status, body = seen.release_invoke
    assert status == 200
    for served, expected in zip(body["probabilities"], seen.retrained_probabilities):
        assert served == pytest.approx(expected, abs=1e-9)
    assert body["probabilities"] != seen.invoke[1]["probabilities"]  # not v1's answer


def test_second_deploy_removes_v1_and_orphans_nothing(seen):
    release, v1 = seen.release, seen.deployed
    old = {v1.model["ModelName"], v1.endpoint_config["EndpointConfigName"]}
    assert old <= release.gone()
    assert not old & set(release.sagemaker_after["models"] + release.sagemaker_after["endpoint configs"])
    assert release.orphans() == {"models": [], "endpoint configs": [], "endpoints": []}
    assert release.sagemaker_after["endpoints"] == ["rc-fraud-detection-dev-serverless"]


def test_second_deploy_did_what_its_plan_said(seen):
    release = seen.release
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
    release = seen.alarm_release
    stack = release.stack_plan
    assert [(r["logical_id"], r["action"]) for r in stack["resources"]] == [("AlarmsModelLatencyAlarm7B529A72", "update")]
    assert stack["endpoint"]["effect"] == "unchanged" and stack["model_diff"] is None
    assert release.sagemaker_before == release.sagemaker_after  # same names, same config, no endpoint update
    assert release.differences_from_plan() == []


def test_prod_deploys_and_destroys_keeping_only_its_retained_data(tmp_path):
    """prod: instance-backed, data capture, KMS, log group; destroy keeps the bucket
    (retain_data) and removes everything that bills."""
    import boto3

    from devtools.demo import billable_leftovers, bootstrap, cdk, describe_deployment, local_aws

    with local_aws():
        bootstrap(tmp_path)
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
        # From the assembly just deployed (the demo destroys the same way): no second synth.
        cdk("destroy", prod.stack_name, "--app", str(tmp_path), "--force", output=tmp_path, quiet=True)
        assert billable_leftovers() == {"endpoints": [], "endpoint configs": [], "models": []}
        buckets = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
        assert "acme-sm-rc-fraud-detection-prod" in buckets  # retained on purpose


def test_the_live_model_is_watched_from_capture_in_the_local_s3(seen):
    watched = seen.monitoring
    assert watched["ok"]["verdict"] == "ok" and watched["ok"]["records"] == 300
    shifted = watched["shifted"]
    assert shifted["verdict"] == "drift" and shifted["records"] == 300
    assert [f["index"] for f in shifted["features"] if f["drift"]] == [2]  # the shifted feature, and no other
    quality = watched["labelled"]["quality"]
    assert quality["labelled"] == 150 and quality["recall"] is not None
    assert {"MaxFeaturePSI", "ScorePSI", "FlagRate", "InvalidRate", "Records", "Breach"} <= set(watched["published"])
