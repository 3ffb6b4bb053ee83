"""The live model's monitor in the synthesized templates: schedule, job, alarms, grants."""

from __future__ import annotations

import json

import pytest

from serving_config.config import ConfigError, parse_config
from tests.conftest import env_config


def _definition(template: dict) -> str:
    """The state machine's definition, tokens rendered as <Ref>/<GetAtt> placeholders."""
    machine = next(r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine")
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else "<token>" for p in parts)


def _job(template: dict, state: str = "RunQualityJob") -> dict:
    text = _definition(template).replace('"<token>"', '"TOKEN"')
    return json.loads(text.replace("<token>", "TOKEN"))["States"][state]


def test_only_environments_that_capture_get_a_monitor(synthesized):
    machines = {case: len(synthesized.resources(case, "AWS::StepFunctions::StateMachine")) for case in synthesized.templates}
    assert machines == {"dev": 0, "staging": 0, "prod": 1, "prod-pinned-imported": 1, "staging-ab": 0,
                        "qa": 0, "prod-dr": 1, "prod-shadow": 1}


def test_serverless_environments_say_why_they_have_no_monitor(synthesized):
    from aws_cdk.assertions import Annotations, Match

    found = Annotations.from_stack(synthesized.stacks["dev"]).find_info(
        "*", Match.string_like_regexp("no live-model monitor: serverless endpoints cannot capture"))
    assert len(found) == 1


def test_the_job_runs_the_endpoints_image_isolated_with_kms_on_volume_and_output(synthesized):
    workflow = json.loads(_definition(synthesized.templates["prod"]).replace("<token>", "TOKEN"))
    assert workflow["QueryLanguage"] == "JSONata"
    for state in ("RunDriftJob", "RunQualityJob"):
        job = workflow["States"][state]
        assert job["Resource"] == "arn:aws:states:::sagemaker:createProcessingJob.sync"
        request = job["Arguments"]
        assert request["NetworkConfig"] == {"EnableNetworkIsolation": True}
        assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == "TOKEN"
        assert request["ProcessingOutputConfig"]["KmsKeyId"] == "TOKEN"
        assert request["AppSpecification"]["ImageUri"].endswith("/sagemaker-scikit-learn:1.2-1-cpu-py3")
        assert "monitoring.job" in " ".join(request["AppSpecification"]["ContainerEntrypoint"])
    # The quality run's inputs end with the labels' when there are any (test_monitor_wiring.py).
    inputs = workflow["States"]["RunQualityJob"]["Arguments"]["ProcessingInputs"]
    assert all(f'"InputName": "{name}"' in inputs for name in ("code", "baseline", "capture")) and "$labelInputs" in inputs
    drift_inputs = {i["InputName"] for i in workflow["States"]["RunDriftJob"]["Arguments"]["ProcessingInputs"]}
    assert drift_inputs == {"code", "baseline", "capture"}
    assert "--ground-truth" not in workflow["States"]["RunDriftJob"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    # Metrics are published outside the isolated job, by the workflow's SDK integrations.
    assert workflow["States"]["ReadMetrics"]["Resource"] == "arn:aws:states:::aws-sdk:s3:getObject"
    assert workflow["States"]["PublishMetrics"]["Resource"] == "arn:aws:states:::aws-sdk:cloudwatch:putMetricData"


def test_the_endpoint_and_its_monitor_share_one_image(synthesized):
    template = synthesized.templates["prod"]
    model = synthesized.resources("prod", "AWS::SageMaker::Model")["Model0301700E"]
    image = json.dumps(model["Properties"]["PrimaryContainer"]["Image"])
    assert "sagemaker-scikit-learn:1.2-1-cpu-py3" in image
    assert _job(template)["Arguments"]["AppSpecification"]["ImageUri"].endswith("/sagemaker-scikit-learn:1.2-1-cpu-py3")


def test_the_thresholds_reach_the_job_from_config(synthesized):
    arguments = _job(synthesized.templates["prod"])["Arguments"]["AppSpecification"]["ContainerArguments"]
    for flag, value in (("--psi", "0.2"), ("--flag-rate-ratio", "2.0"), ("--recall-drop", "0.1"),
                        ("--min-labelled-positives", "20"), ("--max-invalid-rate", "0.01")):
        assert f'"{flag}", "{value}"' in arguments


def test_in_a_vpc_the_job_runs_in_the_endpoints_subnets(synthesized):
    request = _job(synthesized.templates["prod-pinned-imported"])["Arguments"]
    assert request["NetworkConfig"]["VpcConfig"] == {
        "Subnets": ["subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719"], "SecurityGroupIds": ["sg-0a1b2c3d4e5f60718"]}


def test_hourly_drift_and_daily_quality_schedules_start_the_workflow(synthesized):
    rules = synthesized.resources("prod", "AWS::Events::Rule")
    schedules = sorted(r["Properties"]["ScheduleExpression"] for r in rules.values())
    assert schedules == ["cron(15 * * * ? *)", "cron(30 3 * * ? *)"]
    kinds = sorted(json.loads(r["Properties"]["Targets"][0]["Input"])["kind"] for r in rules.values())
    assert kinds == ["drift", "quality"]


def _policy_statements(template: dict, role_fragment: str) -> list[dict]:
    return [s for name, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Policy" and role_fragment in name
            for s in r["Properties"]["PolicyDocument"]["Statement"]]


def test_the_job_reads_capture_labels_and_baseline_and_writes_only_reports(synthesized):
    statements = _policy_statements(synthesized.templates["prod"], "MonitoringJobRole")
    by_sid = {s.get("Sid"): s for s in statements}
    read = json.dumps(by_sid["ReadCaptureAndLabels"]["Resource"])
    assert "/data-capture/rc-fraud-detection-prod-realtime/*" in read and "/ground-truth/*" in read
    assert json.dumps(by_sid["WriteReports"]["Resource"]).count("/monitoring/*") == 1
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not any(a.endswith("*") and a != "kms:GenerateDataKey*" for a in actions), actions
    assert "s3:PutObject" in actions and "s3:DeleteObject" not in actions


def test_the_workflow_publishes_only_to_its_namespace_and_passes_only_the_job_role(synthesized):
    by_sid = {s.get("Sid"): s for s in _policy_statements(synthesized.templates["prod"], "MonitoringWorkflowRole")}
    assert by_sid["PublishMetrics"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "FraudModel/Monitoring"}}
    assert by_sid["PassJobRole"]["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_alarms_go_to_the_topic_and_a_silent_monitor_alarms(synthesized):
    alarms = {r["Properties"]["AlarmName"]: r["Properties"] for r in synthesized.resources("prod", "AWS::CloudWatch::Alarm").values()
              if "monitor" in r["Properties"].get("AlarmName", "")}
    prefix = "rc-fraud-detection-prod-realtime-monitor-"
    assert set(alarms) == {prefix + n for n in ("FeatureDrift", "ScoreDrift", "MonitorBreach", "InvalidRecords",
                                                  "QualityBreach", "silent", "run-failed")}
    assert alarms[prefix + "silent"]["TreatMissingData"] == "breaching"
    assert alarms[prefix + "FeatureDrift"]["Threshold"] == 0.2
    assert all(a["AlarmActions"] for a in alarms.values())


def test_the_dashboard_has_a_monitoring_row(synthesized):
    dashboard = synthesized.one("prod", "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "Drift (PSI)" in body and "FraudModel/Monitoring" in body


def test_lifecycle_rules_cover_labels_and_reports(synthesized):
    bucket = next(r for name, r in synthesized.resources("prod", "AWS::S3::Bucket").items() if name.startswith("Bucket"))
    rules = {r.get("Prefix"): r.get("ExpirationInDays") for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["ground-truth/"] == 180 and rules["monitoring/"] == 400 and rules["data-capture/"] == 90


@pytest.mark.parametrize("key, value, allowed", [
    ("psi", 0, "a number from 0.01 to 10"),
    ("flag_rate_ratio", 1.0, "a number from 1.1 to 100"),
    ("drift_minute", 60, "from 0 to 59"),
    ("baseline", "baseline.txt", ".json"),
])
def test_bad_monitoring_config_names_the_key_and_what_is_allowed(key, value, allowed):
    with pytest.raises(ConfigError) as error:
        parse_config(env_config("prod", monitoring={key: value}))
    assert f"monitoring.{key}" in str(error.value) and allowed in str(error.value)


def test_capture_is_text_for_csv_and_json(synthesized):
    config = synthesized.one("prod", "AWS::SageMaker::EndpointConfig")
    header = config["Properties"]["DataCaptureConfig"]["CaptureContentTypeHeader"]
    assert header == {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]}
