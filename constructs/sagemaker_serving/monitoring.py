"""The live model's monitor on AWS: a Step Functions Standard workflow, started hourly
(drift) and daily (realized quality) by EventBridge rules, runs `monitoring.job` as a
SageMaker Processing job in the endpoint's own scikit-learn image (network-isolated, in
the endpoint's VPC when it has one, KMS on volume and output), then publishes the
metrics the job wrote with the workflow's own SDK integrations (an isolated job cannot
call CloudWatch). Alarms go to the environment's topic; a monitor that stops reporting
is an alarm too (TreatMissingData breaching on Records and on failed runs).

Why Step Functions rather than an EventBridge Scheduler universal target: the job's
window and input prefix are computed per run (JSONata date arithmetic: the hour before,
across midnight and month ends), the workflow waits for the job (`.sync`) and then reads
its metrics.json and calls PutMetricData without a Lambda, and a failed run is a
failed execution with its cause, alarmed on. A Scheduler target can only start the job
with a fixed input and cannot publish what an isolated job measured.
"""

from __future__ import annotations

import abc
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from sagemaker_serving.image import SklearnImage
from sagemaker_serving.model import grant_model_network_interfaces, sagemaker_principal
from sagemaker_serving.nag import (
    INLINE_POLICY_REASON, acknowledge, acknowledge_in_compliance_packs, acknowledge_wildcard_resource,
)
from serving_config.settings import (
    DATA_CAPTURE_PREFIX, GROUND_TRUTH_PREFIX, MONITORING_PREFIX, MonitoringSettings, NetworkSettings,
)

NAMESPACE = "FraudModel/Monitoring"
CODE_DIR = Path(__file__).resolve().parents[2] / "monitoring"
INPUT = "/opt/ml/processing/input"
OUTPUT = "/opt/ml/processing/output"
# The code arrives as the asset's zip: unpacked to /tmp, then monitoring.job runs from it.
ENTRYPOINT = [
    "python3", "-c",
    "import glob, runpy, sys, zipfile; "
    f"zipfile.ZipFile(glob.glob('{INPUT}/code/*.zip')[0]).extractall('/tmp/code/monitoring'); "
    "sys.path.insert(0, '/tmp/code'); sys.argv[0] = 'monitoring.job'; "
    "runpy.run_module('monitoring.job', run_name='__main__')",
]
HOUR_MS, DAY_MS = 3_600_000, 86_400_000


class MonitorBaseline(abc.ABC):
    """The baseline the job reads as its `baseline` input; each source binds its own read
    permission, on exactly that object."""

    @staticmethod
    def from_file(path: Path) -> "MonitorBaseline":
        """A local baseline.json, shipped as an asset (an environment's `model_data`)."""
        return _FileBaseline(path)

    @staticmethod
    def from_registered_package(url: str) -> "MonitorBaseline":
        """A registered version's baseline, in the registry bucket beside its archive
        (`endpointctl register --baseline-data`)."""
        return _S3Baseline(url)

    # Whether it is a registry version's (the job then decrypts it with the registry's key).
    in_registry = False

    @abc.abstractmethod
    def bind(self, scope: Construct, role: iam.Role) -> str:
        """Grant `role` read on the baseline and return its s3:// URL."""


class _FileBaseline(MonitorBaseline):
    def __init__(self, path: Path):
        self.path = path

    def bind(self, scope: Construct, role: iam.Role) -> str:
        asset = s3_assets.Asset(scope, "Baseline", path=str(self.path))
        _read_object(role, "ReadBaseline", asset.s3_bucket_name, asset.s3_object_key)
        return asset.s3_object_url


S3_JSON_URL = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>[^*?]+\.json)$")


class _S3Baseline(MonitorBaseline):
    in_registry = True

    def __init__(self, url: str):
        match = S3_JSON_URL.match(url)
        if not match:
            raise ValueError(f"monitoring baseline: got {url!r}; allowed: s3://bucket/key.json")
        self.url, self.bucket, self.key = url, match["bucket"], match["key"]

    def bind(self, scope: Construct, role: iam.Role) -> str:
        _read_object(role, "ReadBaseline", self.bucket, self.key)
        return self.url


def _read_object(role: iam.Role, sid: str, bucket: str, key: str) -> None:
    """One object, not its bucket; one statement each, so the template's order does not
    follow the assets' hashes."""
    role.add_to_policy(iam.PolicyStatement(sid=sid, actions=["s3:GetObject"], resources=[
        f"arn:{cdk.Stack.of(role).partition}:s3:::{bucket}/{key}"]))


@dataclass(frozen=True)
class MonitoredEndpoint:
    """What the monitor watches: the endpoint, its production variant (and shadow)."""

    endpoint_name: str
    production_variant: str
    shadow_variant: str | None = None


class LiveModelMonitor(Construct):
    """The scheduled monitor of one endpoint's captured traffic."""

    def __init__(self, scope: Construct, id: str, *, watched: MonitoredEndpoint, settings: MonitoringSettings,
                 baseline: MonitorBaseline, bucket: s3.IBucket, key: kms.IKey, image: SklearnImage, network: NetworkSettings,
                 topics: Sequence[sns.ITopic], job_name_prefix: str) -> None:
        super().__init__(scope, id)
        self.watched, self.settings, self.bucket, self.key = watched, settings, bucket, key
        self.job_name_prefix = job_name_prefix[:30].rstrip("-")  # + -quality-YYYYMMDDHH-xxxxxxxx <= 63
        self.code = s3_assets.Asset(self, "Code", path=str(CODE_DIR), exclude=["__pycache__", "*.pyc"])
        self.job_role = self._job_role(image, network, baseline)
        self.reads_registry = baseline.in_registry
        self.state_machine = self._state_machine(image, network)
        self.schedule_role = iam.Role(self, "ScheduleRole", assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
                                      description=f"Starts the monitoring workflow of {watched.endpoint_name}")
        self.state_machine.grant_start_execution(self.schedule_role)
        acknowledge_in_compliance_packs(self.schedule_role, "IAMNoInlinePolicy", INLINE_POLICY_REASON)
        self.rules = [self._schedule(kind, cron) for kind, cron in (
            ("drift", events.Schedule.cron(minute=str(settings.drift_minute))),
            ("quality", events.Schedule.cron(minute="30", hour=str(settings.quality_hour))))]
        self.alarms = self._alarms(topics)

    # ---------------------------------------------------------------- metrics
    def metric(self, name: str, *, check: str = "drift", statistic: str = "Maximum",
               period: cdk.Duration = cdk.Duration.hours(1)) -> cloudwatch.Metric:
        """One of the job's metrics (MaxFeaturePSI, ScorePSI, FlagRate, InvalidRate, Recall,
        Records, Breach) for the drift or the quality check."""
        return cloudwatch.Metric(namespace=NAMESPACE, metric_name=name, statistic=statistic, period=period,
                                 dimensions_map={"EndpointName": self.watched.endpoint_name,
                                                 "VariantName": self.watched.production_variant, "Check": check})

    def grant_read_reports(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.bucket.grant_read(grantee, f"{MONITORING_PREFIX}*")

    # ---------------------------------------------------------------- the job
    def _job_role(self, image: SklearnImage, network: NetworkSettings, baseline: MonitorBaseline) -> iam.Role:
        """Reads the captures of this endpoint, the labels, its code and baseline; writes reports."""
        role = iam.Role(self, "JobRole", assumed_by=sagemaker_principal(self),
                        description=f"Monitoring job of {self.watched.endpoint_name}: reads capture, writes monitoring/")
        captured = self.bucket.arn_for_objects(f"{DATA_CAPTURE_PREFIX}{self.watched.endpoint_name}/*")
        labels = self.bucket.arn_for_objects(f"{GROUND_TRUTH_PREFIX}*")
        reports = self.bucket.arn_for_objects(f"{MONITORING_PREFIX}*")
        role.add_to_policy(iam.PolicyStatement(sid="ReadCaptureAndLabels", actions=["s3:GetObject"],
                                               resources=[captured, labels]))
        role.add_to_policy(self._list_capture_and_labels())
        role.add_to_policy(iam.PolicyStatement(sid="WriteReports", actions=["s3:PutObject"], resources=[reports]))
        _read_object(role, "ReadJobCode", self.code.s3_bucket_name, self.code.s3_object_key)
        self.baseline_url = baseline.bind(self, role)
        self.key.grant(role, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")
        image.grant_pull(self, role)
        if network.subnet_ids:
            grant_model_network_interfaces(role)  # a job in a VPC needs what a model in one does
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]", "ecr:GetAuthorizationToken takes only *; in a VPC, "
                    "SageMaker creates the job's network interfaces, and EC2's Describe* and CreateNetworkInterface "
                    "take no resource-level ARN before they exist")
        acknowledge_in_compliance_packs(role, "IAMNoInlinePolicy", INLINE_POLICY_REASON)
        for resource in (captured, labels, reports):
            acknowledge_wildcard_resource(role, resource, "the job reads every capture file of this endpoint and every "
                                          "label (names are not a contract), and writes its reports under monitoring/")
        return role

    def _list_capture_and_labels(self) -> iam.PolicyStatement:
        """List this endpoint's capture and the labels (the job, and the workflow's check
        that the window holds any)."""
        return iam.PolicyStatement(
            sid="ListCaptureAndLabels", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{DATA_CAPTURE_PREFIX}{self.watched.endpoint_name}/*",
                                                     f"{GROUND_TRUTH_PREFIX}*"]}})

    def _job_arguments(self, image: SklearnImage, network: NetworkSettings) -> dict[str, Any]:
        """CreateProcessingJob's request, as JSONata over the run's variables."""
        settings, watched = self.settings, self.watched
        arguments = ["--baseline", f"{INPUT}/baseline", "--capture", f"{INPUT}/capture",
                     "--ground-truth", f"{INPUT}/ground-truth", "--out", OUTPUT, "--endpoint", watched.endpoint_name,
                     "--production-variant", watched.production_variant, "--namespace", NAMESPACE]
        for name, value in settings.thresholds().items():
            arguments += [f"--{name.replace('_', '-')}", str(value)]
        if watched.shadow_variant:
            arguments += ["--shadow-variant", watched.shadow_variant]
        capture_root = f"s3://{self.bucket.bucket_name}/{self._capture_key}"
        request = {
            "ProcessingJobName": jsonata("$jobName"),
            "RoleArn": self.job_role.role_arn,
            "AppSpecification": {"ImageUri": image.image_uri(self), "ContainerEntrypoint": ENTRYPOINT,
                                 "ContainerArguments": jsonata(f"$append({json.dumps(arguments)}, ['--until', $until, "
                                                               "'--window-hours', $string($hours), '--kind', $kind])")},
            "ProcessingInputs": [
                _s3_input("code", self.code.s3_object_url, f"{INPUT}/code"),
                _s3_input("baseline", self.baseline_url, f"{INPUT}/baseline"),
                _s3_input("capture", jsonata(f"'{capture_root}' & $partition"), jsonata(
                    f"'{INPUT}/capture/{watched.endpoint_name}/{watched.production_variant}/' & $partition")),
            ],
            "ProcessingOutputConfig": {"KmsKeyId": self.key.key_arn, "Outputs": [{
                "OutputName": "report", "S3Output": {
                    "S3Uri": jsonata("$reportUri"), "LocalPath": OUTPUT, "S3UploadMode": "EndOfJob"}}]},
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": settings.instance_type,
                                                      "VolumeSizeInGB": 30, "VolumeKmsKeyId": self.key.key_arn}},
            "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_minutes * 60},
            "NetworkConfig": {"EnableNetworkIsolation": True},
            "Tags": [{"Key": "MonitoredEndpoint", "Value": watched.endpoint_name}],
        }
        if network.subnet_ids:
            request["NetworkConfig"]["VpcConfig"] = {"Subnets": list(network.subnet_ids),
                                                     "SecurityGroupIds": list(network.security_group_ids)}
        return request

    # ---------------------------------------------------------------- the workflow
    def _variables(self) -> list[dict[str, Any]]:
        """The run's variables, one Pass state each (a state's Assign sees only the
        variables of the states before it)."""
        delay_ms = self.settings.quality_label_delay_days * DAY_MS
        # Drift: the hour before this run. Quality: the whole day `quality_label_delay_days`
        # back (its labels have had time to arrive), read from its day partition.
        window = {
            "kind": jsonata("$states.input.kind = 'quality' ? 'quality' : 'drift'"),
            "now": jsonata("$toMillis($states.context.Execution.StartTime)"),
        }
        timing = {
            "end": jsonata(f"$kind = 'quality' ? $floor(($now - {delay_ms}) / {DAY_MS}) * {DAY_MS} + {DAY_MS} "
                           f": $floor($now / {HOUR_MS}) * {HOUR_MS}"),
            "hours": jsonata("$kind = 'quality' ? 24 : 1"),
        }
        names = {
            "until": jsonata("$fromMillis($end, '[Y0001]-[M01]-[D01]T[H01]:00:00Z')"),
            "partition": jsonata(f"$fromMillis($end - $hours * {HOUR_MS}, $kind = 'quality' ? '[Y0001]/[M01]/[D01]/' "
                                 ": '[Y0001]/[M01]/[D01]/[H01]/')"),
            "jobName": jsonata(f"'{self.job_name_prefix}-' & $kind & '-' & $fromMillis($end, '[Y0001][M01][D01][H01]') "
                               "& '-' & $substring($states.context.Execution.Name, 0, 8)"),
            "reportUri": jsonata(f"'s3://{self.bucket.bucket_name}/{MONITORING_PREFIX}' & $kind & '/' & "
                                 "$fromMillis($end, '[Y0001]/[M01]/[D01]/[H01]')"),
        }
        return [window, timing, names]

    def _definition(self, image: SklearnImage, network: NetworkSettings) -> dict[str, Any]:
        """Before the job, the workflow lists the window's capture (and the labels): an
        empty S3Prefix input is not something to hand SageMaker (training and transform
        jobs refuse one: "No S3 objects found under S3 URL"), so an hour with no capture
        publishes Records 0 and ends with the verdict no_data, and a quality run without
        labels runs without that input (monitoring.job reads a missing folder as none)."""
        run = self._job_arguments(image, network)
        labels = _s3_input("ground-truth", f"s3://{self.bucket.bucket_name}/{GROUND_TRUTH_PREFIX}", f"{INPUT}/ground-truth")
        shadow = self.watched.shadow_variant is not None
        inputs = jsonata_of(run["ProcessingInputs"])
        inputs = f"$append({inputs}, $shadowInputs)" if shadow else inputs
        quality_run = {**run, "ProcessingInputs": jsonata(f"$append({inputs}, $labelInputs)")}
        # The drift check reads no labels.
        drift_run = {**run, "AppSpecification": {**run["AppSpecification"], "ContainerArguments": run["AppSpecification"][
            "ContainerArguments"].replace('"--ground-truth", "%s/ground-truth", ' % INPUT, "")}}
        if shadow:
            drift_run["ProcessingInputs"] = jsonata(inputs)
        window, timing, names = self._variables()
        return {
            "QueryLanguage": "JSONata",
            "Comment": f"Monitor {self.watched.endpoint_name}: run monitoring.job over the window, publish its metrics",
            "StartAt": "Window",
            "States": {
                "Window": {"Type": "Pass", "Assign": window, "Next": "Timing"},
                "Timing": {"Type": "Pass", "Assign": timing, "Next": "Names"},
                "Names": {"Type": "Pass", "Assign": names, "Next": "FindCapture"},
                "FindCapture": _list_one(self.bucket, jsonata(f"'{self._capture_key}' & $partition"),
                                         {"captured": jsonata("$states.result.KeyCount > 0")},
                                         "FindShadowCapture" if shadow else "WhichCheck"),
                # A shadow's hour is its own input, and only when it holds capture (it may get
                # a share of the requests, and its folder is partitioned like production's).
                **({"FindShadowCapture": self._find_shadow_capture()} if shadow else {}),
                "WhichCheck": {"Type": "Choice", "Default": "RunDriftJob", "Choices": [
                    {"Condition": jsonata("$not($captured)"), "Next": "PublishNoData"},
                    {"Condition": jsonata("$kind = 'quality'"), "Next": "FindLabels"}]},
                "FindLabels": _list_one(self.bucket, GROUND_TRUTH_PREFIX, {"labelInputs": jsonata(
                    f"$states.result.KeyCount > 0 ? [{jsonata_of(labels)}] : []")}, "RunQualityJob"),
                "RunDriftJob": _sync_job(drift_run),
                "RunQualityJob": _sync_job(quality_run),
                "ReadMetrics": {
                    "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                    "Arguments": {"Bucket": self.bucket.bucket_name,
                                  "Key": jsonata(f"'{MONITORING_PREFIX}' & $kind & '/' & "
                                                 "$fromMillis($end, '[Y0001]/[M01]/[D01]/[H01]') & '/metrics.json'")},
                    "Output": jsonata("$parse($states.result.Body)"), "Next": "PublishMetrics"},
                "PublishMetrics": {
                    "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:cloudwatch:putMetricData",
                    "Arguments": {"Namespace": jsonata("$states.input.Namespace"),
                                  "MetricData": jsonata("$states.input.MetricData")},
                    "End": True},
                "PublishNoData": self._no_data(),
            },
        }

    def _find_shadow_capture(self) -> dict[str, Any]:
        shadow = self.watched.shadow_variant
        key = f"{DATA_CAPTURE_PREFIX}{self.watched.endpoint_name}/{shadow}/"
        shadow_input = _s3_input("shadow-capture", jsonata(f"'s3://{self.bucket.bucket_name}/{key}' & $partition"),
                                 jsonata(f"'{INPUT}/capture/{self.watched.endpoint_name}/{shadow}/' & $partition"))
        return _list_one(self.bucket, jsonata(f"'{key}' & $partition"), {"shadowInputs": jsonata(
            f"$states.result.KeyCount > 0 ? [{jsonata_of(shadow_input)}] : []")}, "WhichCheck")

    @property
    def _capture_key(self) -> str:
        """The production variant's capture, under which the hours are partitioned."""
        return f"{DATA_CAPTURE_PREFIX}{self.watched.endpoint_name}/{self.watched.production_variant}/"

    def _no_data(self) -> dict[str, Any]:
        """What the job publishes for a window without capture (monitoring.monitor.metric_data
        of a no_data report: Records 0, for each variant it judges), and the verdict."""
        variants = [self.watched.production_variant] + ([self.watched.shadow_variant] if self.watched.shadow_variant else [])
        records = [{"MetricName": "Records", "Value": 0, "Unit": "Count", "Dimensions": [
            {"Name": "EndpointName", "Value": self.watched.endpoint_name}, {"Name": "VariantName", "Value": variant},
            {"Name": "Check", "Value": jsonata("$kind")}]} for variant in variants]
        return {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:cloudwatch:putMetricData",
                "Arguments": {"Namespace": NAMESPACE, "MetricData": records},
                "Output": {"verdict": "no_data", "records": 0, "window": {
                    "start": jsonata(f"$fromMillis($end - $hours * {HOUR_MS}, '[Y0001]-[M01]-[D01]T[H01]:00:00Z')"),
                    "end": jsonata("$until")}},
                "End": True}

    def _state_machine(self, image: SklearnImage, network: NetworkSettings) -> sfn.StateMachine:
        stack = cdk.Stack.of(self)
        log_group_name = f"/aws/vendedlogs/states/{self.watched.endpoint_name}-monitor"
        # The data key lets CloudWatch Logs use it for this group only (an imported key's
        # owner adds the same statement: add_to_resource_policy does nothing on it).
        self.key.add_to_resource_policy(iam.PolicyStatement(
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.{stack.url_suffix}")], resources=["*"],
            conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                service="logs", resource="log-group", resource_name=log_group_name,
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)}}))
        log_group = logs.LogGroup(self, "WorkflowLogs", log_group_name=log_group_name, encryption_key=self.key,
                                  retention=logs.RetentionDays.ONE_YEAR, removal_policy=cdk.RemovalPolicy.DESTROY)
        machine = sfn.StateMachine(
            self, "Workflow", state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(stack.to_json_string(self._definition(image, network))),
            timeout=cdk.Duration.minutes(self.settings.max_runtime_minutes + 15), tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        self._grant_workflow(machine.role)
        # CDK makes the machine depend on its role and the role's policy; the role is already
        # a dependency through RoleArn (cfn-lint W3005), so only the policy stays.
        policy = machine.role.node.try_find_child("DefaultPolicy")
        machine.node.default_child.add_override("DependsOn", [stack.get_logical_id(policy.node.default_child)])
        return machine

    def _grant_workflow(self, role: iam.IRole) -> None:
        """Start, watch and stop its own jobs; pass the job role; read the metrics; publish them."""
        stack = cdk.Stack.of(self)
        jobs = stack.format_arn(service="sagemaker", resource="processing-job", resource_name=f"{self.job_name_prefix}-*")
        sync_rule = stack.format_arn(service="events", resource="rule",
                                     resource_name="StepFunctionsGetEventsForSageMakerProcessingJobsRule")
        statements = [
            iam.PolicyStatement(sid="RunMonitoringJobs", resources=[jobs], actions=[
                "sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob",
                "sagemaker:AddTags", "sagemaker:ListTags"]),
            iam.PolicyStatement(sid="WaitForJobs", resources=[sync_rule],
                                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"]),
            iam.PolicyStatement(sid="PassJobRole", actions=["iam:PassRole"], resources=[self.job_role.role_arn],
                                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}),
            self._list_capture_and_labels(),
            iam.PolicyStatement(sid="ReadJobMetrics", actions=["s3:GetObject"],
                                resources=[self.bucket.arn_for_objects(f"{MONITORING_PREFIX}*")]),
            iam.PolicyStatement(sid="PublishMetrics", actions=["cloudwatch:PutMetricData"], resources=["*"],
                                conditions={"StringEquals": {"cloudwatch:namespace": NAMESPACE}}),
        ]
        for statement in statements:
            role.add_to_principal_policy(statement)
        self.key.grant(role, "kms:Decrypt")
        for resource in (jobs, self.bucket.arn_for_objects(f"{MONITORING_PREFIX}*")):
            acknowledge_wildcard_resource(role, resource, "each run starts a job named for its window and reads "
                                          "the metrics.json that job wrote under monitoring/")
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]", "cloudwatch:PutMetricData has no resource ARN (the "
                    "statement is limited to the monitor's namespace by the cloudwatch:namespace condition); Step "
                    "Functions' log delivery (logs:*LogDelivery*, DescribeLogGroups, resource policies) and X-Ray "
                    "actions take only *")
        acknowledge_in_compliance_packs(role, "IAMNoInlinePolicy", INLINE_POLICY_REASON)

    def _schedule(self, kind: str, schedule: events.Schedule) -> events.Rule:
        rule = events.Rule(self, f"{kind.capitalize()}Schedule", schedule=schedule,
                           description=f"{kind} check of {self.watched.endpoint_name}'s captured traffic")
        rule.add_target(targets.SfnStateMachine(self.state_machine, role=self.schedule_role,
                                                input=events.RuleTargetInput.from_object({"kind": kind})))
        return rule

    # ---------------------------------------------------------------- alarms
    def _alarms(self, topics: Sequence[sns.ITopic]) -> list[cloudwatch.Alarm]:
        """A silent monitor is an alarm: no record monitored for two hours (no report, or an
        hour without capture: Records 0), or a failed run, fires."""
        s = self.settings
        day = cdk.Duration.days(1)
        specs = [
            ("FeatureDrift", self.metric("MaxFeaturePSI"), s.psi, "a feature's PSI over the baseline's bins",
             cloudwatch.TreatMissingData.NOT_BREACHING),
            ("ScoreDrift", self.metric("ScorePSI"), s.psi, "the fraud score's PSI", cloudwatch.TreatMissingData.NOT_BREACHING),
            ("MonitorBreach", self.metric("Breach"), 0.5, "the monitor's verdict (drift, flag rate or data quality)",
             cloudwatch.TreatMissingData.NOT_BREACHING),
            ("InvalidRecords", self.metric("InvalidRate"), s.max_invalid_rate, "the rate of unreadable captured records",
             cloudwatch.TreatMissingData.NOT_BREACHING),
            ("QualityBreach", self.metric("Breach", check="quality", period=day), 0.5,
             f"recall on labelled traffic more than {s.recall_drop} below the baseline's",
             cloudwatch.TreatMissingData.NOT_BREACHING),
        ]
        alarms = [self._alarm(name, metric, threshold, what, missing) for name, metric, threshold, what, missing in specs]
        silent = cloudwatch.Alarm(
            self, "MonitorSilent", metric=self.metric("Records"), threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD, evaluation_periods=2,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            alarm_name=f"{self.watched.endpoint_name}-monitor-silent",
            alarm_description="No captured record monitored for 2 hours: the drift job failed or is not scheduled, "
                              "or nothing was captured (no traffic, or capture stopped). A silent monitor is an alarm "
                              "(docs/monitoring.md).")
        failed = cloudwatch.Alarm(
            self, "MonitorRunsFailed", metric=self.state_machine.metric_failed(period=cdk.Duration.hours(1)),
            threshold=1, evaluation_periods=1, treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_name=f"{self.watched.endpoint_name}-monitor-run-failed",
            alarm_description="A monitoring run failed: read its execution in Step Functions (docs/monitoring.md).")
        for alarm in [*alarms, silent, failed]:
            for topic in topics:
                alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return [*alarms, silent, failed]

    def _alarm(self, name: str, metric: cloudwatch.Metric, threshold: float, what: str,
               missing: cloudwatch.TreatMissingData) -> cloudwatch.Alarm:
        return cloudwatch.Alarm(
            self, f"{name}Alarm", metric=metric, threshold=threshold, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD, treat_missing_data=missing,
            alarm_name=f"{self.watched.endpoint_name}-monitor-{name}",
            alarm_description=f"{what} is above {threshold:g}: read the report under monitoring/ "
                              "(docs/monitoring.md, what to do)")

    def dashboard_widgets(self) -> list[cloudwatch.IWidget]:
        """The dashboard's monitoring row."""
        return [
            cloudwatch.GraphWidget(title="Drift (PSI)", left=[self.metric("MaxFeaturePSI"), self.metric("ScorePSI")],
                                   left_annotations=[cloudwatch.HorizontalAnnotation(value=self.settings.psi, label="PSI threshold")],
                                   width=8),
            cloudwatch.GraphWidget(title="Fraud flag rate and recall",
                                   left=[self.metric("FlagRate"), self.metric("Recall", check="quality", period=cdk.Duration.days(1))],
                                   width=8),
            cloudwatch.GraphWidget(title="Monitored records and invalid rate", left=[self.metric("Records", statistic="Sum")],
                                   right=[self.metric("InvalidRate")], width=8),
        ]


def jsonata(expression: str) -> str:
    """A JSONata expression as Step Functions reads it in a JSONata state's field."""
    return "{% " + expression + " %}"


def _s3_input(name: str, uri: str, local_path: str) -> dict[str, Any]:
    return {"InputName": name, "S3Input": {"S3Uri": uri, "LocalPath": local_path, "S3DataType": "S3Prefix",
                                           "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}}


def jsonata_of(value: Any) -> str:
    """A JSON value whose strings may be JSONata templates (`{% … %}`), as one JSONata
    expression: to build a list whose length a run decides."""
    if isinstance(value, str) and value.startswith("{% ") and value.endswith(" %}"):
        return f"({value[3:-3]})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {jsonata_of(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(jsonata_of(v) for v in value) + "]"
    return json.dumps(value)


def _list_one(bucket: s3.IBucket, prefix: str, assign: dict[str, str], next_state: str) -> dict[str, Any]:
    """ListObjectsV2 of at most one key under `prefix`: whether anything is there."""
    return {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:listObjectsV2",
            "Arguments": {"Bucket": bucket.bucket_name, "Prefix": prefix, "MaxKeys": 1},
            "Assign": assign, "Next": next_state}


def _sync_job(request: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "Task", "Resource": "arn:aws:states:::sagemaker:createProcessingJob.sync", "Arguments": request,
            "Next": "ReadMetrics"}
