"""A silent rollback caught (issue 22, item 6): on the local AWS, a stack with a model,
an endpoint config and an endpoint, named like staging's; then the endpoint is put back on
another config behind the stack's back (moto has no UpdateEndpoint: deleted and created
again, which leaves what a guardrail rollback leaves: InService on a config the stack did
not deploy). `smoke-test` must fail with one line and `status` must say so."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.cli.test_cli import endpointctl

ENDPOINT = "rc-fraud-detection-staging-serverless"
ALARM = f"{ENDPOINT}-AllTraffic-ModelLatency"
CONTAINER = {"Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
             "ModelDataUrl": "s3://bucket/model.tar.gz"}
VARIANTS = [{"VariantName": "AllTraffic", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
             "InitialVariantWeight": 1}]
TEMPLATE = {
    "Resources": {
        "Model": {"Type": "AWS::SageMaker::Model", "Properties": {
            "ExecutionRoleArn": "arn:aws:iam::123456789012:role/inference", "PrimaryContainer": CONTAINER}},
        "Config": {"Type": "AWS::SageMaker::EndpointConfig", "Properties": {
            "ProductionVariants": [{**VARIANTS[0], "ModelName": {"Fn::GetAtt": ["Model", "ModelName"]}}]}},
        "Endpoint": {"Type": "AWS::SageMaker::Endpoint", "Properties": {
            "EndpointName": ENDPOINT, "EndpointConfigName": {"Fn::GetAtt": ["Config", "EndpointConfigName"]}}},
    },
    "Outputs": {"EndpointName": {"Value": ENDPOINT}},
}


@pytest.fixture(scope="module")
def staging():
    from devtools.demo import local_aws

    with local_aws():
        boto3.client("cloudformation").create_stack(StackName="rc-fraud-detection-staging",
                                                    TemplateBody=json.dumps(TEMPLATE))
        boto3.client("cloudwatch").put_metric_alarm(
            AlarmName=ALARM, MetricName="ModelLatency", Namespace="AWS/SageMaker", Statistic="Average", Period=60,
            EvaluationPeriods=1, Threshold=1e6, ComparisonOperator="GreaterThanThreshold")
        yield boto3.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]


def test_the_endpoint_on_the_stacks_config_passes(staging):
    result = endpointctl("smoke-test", "--env", "staging")
    assert result.returncode == 0, result.stderr
    assert f"endpoint {ENDPOINT} runs {staging}, the endpoint config stack rc-fraud-detection-staging deployed" \
        in result.stdout
    status = endpointctl("status", "--env", "staging")
    assert status.returncode == 0, status.stderr
    assert f"  endpoint config: {staging} (the stack's)" in status.stdout


def test_an_endpoint_rolled_back_behind_the_stacks_back_fails_the_smoke_test(staging):
    sagemaker = boto3.client("sagemaker")
    model = sagemaker.describe_endpoint_config(EndpointConfigName=staging)["ProductionVariants"][0]["ModelName"]
    sagemaker.create_endpoint_config(EndpointConfigName="previous-config",
                                     ProductionVariants=[{**VARIANTS[0], "ModelName": model}])
    sagemaker.delete_endpoint(EndpointName=ENDPOINT)
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="previous-config")
    boto3.client("cloudwatch").set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="canary latency")

    result = endpointctl("smoke-test", "--env", "staging")
    assert result.returncode == 1
    assert result.stderr == (
        f"endpointctl smoke-test: smoke test failed: endpoint {ENDPOINT} runs endpoint config previous-config, but "
        f"stack rc-fraud-detection-staging deployed {staging}: the update was rolled back or changed outside the "
        f"stack (rollback alarm {ALARM} fired); keep previous-config (it is in use), find the cause in the alarm and "
        "the endpoint's logs, then redeploy with `npx cdk deploy -c env=staging`\n")
    status = endpointctl("status", "--env", "staging")
    assert status.returncode == 0, status.stderr
    assert f"  WARNING: endpoint {ENDPOINT} runs endpoint config previous-config, but stack" in status.stdout

    boto3.client("cloudwatch").set_alarm_state(AlarmName=ALARM, StateValue="OK", StateReason="recovered")
    quiet = endpointctl("smoke-test", "--env", "staging")
    assert quiet.returncode == 1 and "(no rollback alarm is in ALARM or has an ALARM in its history)" in quiet.stderr
    assert "Traceback" not in quiet.stderr
