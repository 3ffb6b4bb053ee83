"""What the synthesized templates must say, point by point (issue 2), including the
traps in ../shared/reference/SAGEMAKER.md that a clean synth would not catch."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

IMAGES = json.loads((ROOT / "serving_runtime" / "sklearn_images.json").read_text())
TAGGABLE = {
    "AWS::S3::Bucket", "AWS::IAM::Role", "AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig",
    "AWS::SageMaker::Endpoint", "AWS::KMS::Key", "AWS::SNS::Topic", "AWS::Lambda::Function",
}


def statements(template: dict, logical_prefix: str = "") -> list[dict]:
    found = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and logical_id.startswith(logical_prefix):
            found += resource["Properties"]["PolicyDocument"]["Statement"]
    return found


def as_list(value):
    return value if isinstance(value, list) else [value]


def data_bucket(synthesized, case: str) -> dict:
    """The bucket of batch data and captured requests (not its access-log bucket)."""
    return synthesized.templates[case]["Resources"][_logical_id(synthesized.templates[case], "Bucket", "AWS::S3::Bucket")]


def not_isolated(models: dict) -> list[dict]:
    """Models that fetch their code from S3 (a serverless endpoint's; isolated ones carry it inside)."""
    return [m for m in models.values() if not m["Properties"].get("EnableNetworkIsolation")]


# ------------------------------------------------------------------------- names


def test_stack_per_environment_named_from_team_project_environment(synthesized):
    names = {case: stack.stack_name for case, stack in synthesized.stacks.items()}
    assert names["dev"] == "rc-fraud-detection-dev"
    assert names["staging"] == "rc-fraud-detection-staging"
    assert names["prod"] == "rc-fraud-detection-prod"


def test_endpoint_names_follow_the_guide_plus_environment(synthesized):
    assert synthesized.one("dev", "AWS::SageMaker::Endpoint")["Properties"]["EndpointName"] == "rc-fraud-detection-dev-serverless"
    assert synthesized.one("prod", "AWS::SageMaker::Endpoint")["Properties"]["EndpointName"] == "rc-fraud-detection-prod-realtime"


def test_created_roles_and_bucket_carry_the_environment(synthesized):
    roles = synthesized.resources("dev", "AWS::IAM::Role")
    named = {r["Properties"].get("RoleName"): r["Properties"].get("Path") for r in roles.values()}
    assert named["SageMaker-RiskControl-FraudDetection-Dev-InferenceRole"] == "/acme-sagemaker/"
    assert named["SageMaker-RiskControl-FraudDetection-Dev-BatchRole"] == "/acme-sagemaker/"
    assert data_bucket(synthesized, "dev")["Properties"]["BucketName"] == "acme-sm-rc-fraud-detection-dev"
    buckets = {r["Properties"].get("BucketName") for r in synthesized.resources("dev", "AWS::S3::Bucket").values()}
    # dev's stack also holds the model registry (model_registry.environment), whose archive bucket carries no environment
    assert "acme-sm-rc-fraud-detection-registry" in buckets


def test_imported_role_and_bucket_use_the_platform_teams_exact_names(synthesized):
    template = synthesized.templates["prod-pinned-imported"]
    assert not synthesized.resources("prod-pinned-imported", "AWS::S3::Bucket")
    role_names = [r["Properties"].get("RoleName") for r in synthesized.resources("prod-pinned-imported", "AWS::IAM::Role").values()]
    assert "SageMaker-RiskControl-FraudDetection-InferenceRole" not in role_names  # imported, not created
    model = synthesized.resources("prod-pinned-imported", "AWS::SageMaker::Model")
    role_arns = json.dumps([m["Properties"]["ExecutionRoleArn"] for m in model.values()])
    assert "role/acme-sagemaker/SageMaker-RiskControl-FraudDetection-InferenceRole" in role_arns
    assert "acme-sm-rc-fraud-detection/batch-input/*" in json.dumps(template)


def test_every_taggable_resource_has_team_project_environment(synthesized):
    for case, template in synthesized.templates.items():
        env = synthesized.stacks[case].environment_config.name
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] not in TAGGABLE:
                continue
            tags = {t["Key"]: t["Value"] for t in resource["Properties"].get("Tags", [])}
            assert tags.get("Team") == "rc" and tags.get("Project") == "fraud-detection", (case, logical_id)
            assert tags.get("Environment") == env, (case, logical_id)


# ------------------------------------------------------------------------- image


def test_region_agnostic_stack_maps_every_region_to_its_ecr_account(synthesized):
    template = synthesized.templates["dev"]
    mapping = next(iter(template["Mappings"].values()))
    assert mapping == {region: {"account": account} for region, account in IMAGES["1.2-1"]["registries"].items()}
    models = synthesized.resources("dev", "AWS::SageMaker::Model").values()
    image = json.dumps([m["Properties"]["PrimaryContainer"]["Image"] for m in models])
    assert "Fn::FindInMap" in image and "AWS::Region" in image and "AWS::URLSuffix" in image
    assert "sagemaker-scikit-learn:1.2-1-cpu-py3" in image


def test_pinned_region_gets_the_literal_account_of_that_region(synthesized):
    models = synthesized.resources("prod-pinned-imported", "AWS::SageMaker::Model")
    for model in models.values():
        image = json.dumps(model["Properties"]["PrimaryContainer"]["Image"])
        assert "354813040037.dkr.ecr.ap-northeast-1." in image  # the SDK's account for ap-northeast-1
        assert "FindInMap" not in image


def test_unknown_region_is_refused_with_the_list_of_regions():
    import aws_cdk as cdk

    from sagemaker_serving.image import SklearnImage

    stack = cdk.Stack(cdk.App(), "S", env=cdk.Environment(region="xx-nowhere-1"))
    with pytest.raises(ValueError, match="not published in region 'xx-nowhere-1'"):
        SklearnImage("1.2-1").image_uri(stack)


# ------------------------------------------------------------------- container env


def test_container_environment_matches_the_sagemaker_sdk(synthesized):
    models = synthesized.resources("dev", "AWS::SageMaker::Model")
    for model in models.values():
        if model["Properties"].get("EnableNetworkIsolation"):  # the batch model: code inside the artifact
            assert model["Properties"]["PrimaryContainer"]["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
            continue
        environment = model["Properties"]["PrimaryContainer"]["Environment"]
        assert environment["SAGEMAKER_PROGRAM"] == "inference.py"
        assert environment["SAGEMAKER_CONTAINER_LOG_LEVEL"] == "20"
        assert environment["SAGEMAKER_REGION"] == {"Ref": "AWS::Region"}
        # A file asset: CDK keys it <hash>.gz (its last extension); a directory asset
        # would be a .zip, which the container cannot extract.
        submit = json.dumps(environment["SAGEMAKER_SUBMIT_DIRECTORY"])
        assert submit.startswith('{"Fn::Sub": "s3://cdk-') and submit.endswith('.gz"}') and ".zip" not in submit
        model_url = json.dumps(model["Properties"]["PrimaryContainer"]["ModelDataUrl"])
        assert model_url.startswith('{"Fn::Sub": "s3://cdk-') and model_url.endswith('.gz"}')


def test_handler_limits_follow_the_endpoint_kind(synthesized):
    def limits(case):
        return sorted(
            int(m["Properties"]["PrimaryContainer"]["Environment"]["HANDLER_MAX_REQUEST_BYTES"])
            for m in synthesized.resources(case, "AWS::SageMaker::Model").values()
        )
    assert limits("dev") == [4 * 1024 * 1024, 6 * 1024 * 1024]  # serverless 4 MB, batch 6 MB
    assert limits("prod") == [6 * 1024 * 1024, 6 * 1024 * 1024]


def test_code_asset_is_a_gzip_tar_with_the_handler_at_its_root(synthesized):
    code_urls = {
        json.dumps(m["Properties"]["PrimaryContainer"]["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"])
        for m in not_isolated(synthesized.resources("dev", "AWS::SageMaker::Model"))
    }
    assert len(code_urls) == 1  # the serverless endpoint's model (batch is isolated: code inside its artifact)
    manifest = json.loads(next(synthesized.outdir.glob("Dev.assets.json")).read_text())
    tarballs = [synthesized.outdir / f["source"]["path"] for f in manifest["files"].values() if f["source"]["path"].endswith(".tar.gz")]
    code = [t for t in tarballs if "inference.py" in tarfile.open(t).getnames()]
    assert len(code) == 1
    with tarfile.open(code[0], "r:gz") as tar:
        assert tar.getnames() == ["inference.py"]
        assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in tar.getmembers())
    assert gzip.open(code[0]).read()  # a real gzip stream, not a zip


def test_code_bundle_is_byte_for_byte_reproducible(tmp_path):
    from serving_runtime.bundle import source_bundle_bytes

    first = source_bundle_bytes(ROOT / "inference")
    # Touch the file: a new mtime must not change the archive.
    handler = ROOT / "inference" / "inference.py"
    stat = handler.stat()
    os.utime(handler, (stat.st_atime, stat.st_mtime + 3600))
    try:
        second = source_bundle_bytes(ROOT / "inference")
    finally:
        os.utime(handler, (stat.st_atime, stat.st_mtime))
    assert first == second
    assert first[4:8] == b"\x00\x00\x00\x00"  # gzip header mtime


def test_code_bundle_hash_is_stable_across_synths_in_separate_processes():
    """Two interpreters build the bundle; the asset hash must not move (else every
    deploy replaces the model)."""
    script = "from serving_runtime.bundle import source_bundle_bytes; import hashlib, pathlib; " \
             f"print(hashlib.sha256(source_bundle_bytes(pathlib.Path({str(ROOT / 'inference')!r}))).hexdigest())"
    digests = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
               for _ in range(2)}
    assert len(digests) == 1


# -------------------------------------------------------------- endpoint + config


def test_dev_is_serverless_as_the_guide(synthesized):
    variants = synthesized.one("dev", "AWS::SageMaker::EndpointConfig")["Properties"]["ProductionVariants"]
    assert len(variants) == 1
    assert variants[0]["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert "InstanceType" not in variants[0]


def test_staging_has_provisioned_concurrency(synthesized):
    variant = synthesized.one("staging", "AWS::SageMaker::EndpointConfig")["Properties"]["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 4096, "MaxConcurrency": 20, "ProvisionedConcurrency": 2}


def test_prod_is_instance_backed(synthesized):
    variant = synthesized.one("prod", "AWS::SageMaker::EndpointConfig")["Properties"]["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.m5.large" and variant["InitialInstanceCount"] == 2
    assert variant["VariantName"] == "AllTraffic" and variant["InitialVariantWeight"] == 1


def test_ab_split_has_weighted_variants_with_their_own_models(synthesized):
    variants = synthesized.one("staging-ab", "AWS::SageMaker::EndpointConfig")["Properties"]["ProductionVariants"]
    assert [(v["VariantName"], v["InitialVariantWeight"]) for v in variants] == [("Champion", 0.9), ("Challenger", 0.1)]


def test_endpoint_config_and_model_are_named_by_cloudformation(synthesized):
    """Every property change replaces them; a fixed name would then collide."""
    for case in synthesized.templates:
        for config in synthesized.resources(case, "AWS::SageMaker::EndpointConfig").values():
            assert "EndpointConfigName" not in config["Properties"]
        for model in synthesized.resources(case, "AWS::SageMaker::Model").values():
            assert "ModelName" not in model["Properties"]
        endpoint = synthesized.one(case, "AWS::SageMaker::Endpoint")
        assert endpoint["Properties"]["EndpointConfigName"] == {
            "Fn::GetAtt": [next(iter(synthesized.resources(case, "AWS::SageMaker::EndpointConfig"))), "EndpointConfigName"]
        }




# ------------------------------------------------------------------------ alarms


def _alarms(synthesized, case):
    return {a["Properties"]["MetricName"]: a["Properties"] for a in synthesized.resources(case, "AWS::CloudWatch::Alarm").values()
            if "MetricName" in a["Properties"]}


def test_latency_alarm_threshold_is_in_microseconds(synthesized):
    latency = _alarms(synthesized, "dev")["ModelLatency"]
    assert latency["Namespace"] == "AWS/SageMaker"
    assert latency["Threshold"] == 1_000_000  # 1 s in the metric's own unit
    assert latency["ComparisonOperator"] == "GreaterThanThreshold"
    assert {d["Name"] for d in latency["Dimensions"]} == {"EndpointName", "VariantName"}
    assert {d["Value"] for d in latency["Dimensions"]} == {"rc-fraud-detection-dev-serverless", "AllTraffic"}


def test_error_alarms_use_metrics_that_exist(synthesized):
    alarms = _alarms(synthesized, "prod")
    assert "InvocationErrors" not in json.dumps(synthesized.templates["prod"])  # no such metric
    assert alarms["Invocation5XXErrors"]["Statistic"] == "Sum" and alarms["Invocation5XXErrors"]["Threshold"] == 0
    assert alarms["Invocation4XXErrors"]["Statistic"] == "Average" and alarms["Invocation4XXErrors"]["Threshold"] == 0.05


def test_memory_alarm_reads_the_endpoints_namespace(synthesized):
    memory = _alarms(synthesized, "dev")["MemoryUtilization"]
    assert memory["Namespace"] == "/aws/sagemaker/Endpoints" and memory["Threshold"] == 80


def test_alarms_notify_the_topic_and_each_variant_has_its_own(synthesized):
    alarms = {k: v for k, v in synthesized.resources("staging-ab", "AWS::CloudWatch::Alarm").items() if "Dimensions" in v["Properties"]}
    topic_id = next(iter(synthesized.resources("staging-ab", "AWS::SNS::Topic")))
    assert len(alarms) == 8  # 4 per variant
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching"
    variants = {d["Value"] for a in alarms.values() for d in a["Properties"]["Dimensions"] if d["Name"] == "VariantName"}
    assert variants == {"Champion", "Challenger"}


def test_email_subscription_only_when_configured(synthesized):
    assert not synthesized.resources("dev", "AWS::SNS::Subscription")
    subscription = synthesized.one("prod-pinned-imported", "AWS::SNS::Subscription")["Properties"]
    assert subscription["Protocol"] == "email" and subscription["Endpoint"] == "oncall@acme.example"


# --------------------------------------------------------------------------- IAM


def test_no_service_wide_actions_and_star_resources_only_where_unavoidable(synthesized):
    for case, template in synthesized.templates.items():
        in_a_vpc = any("VpcConfig" in m["Properties"] for m in synthesized.resources(case, "AWS::SageMaker::Model").values())
        for statement in statements(template):
            actions = as_list(statement["Action"])
            assert not any(a == "*" or a.endswith(":*") for a in actions), (case, statement)
            if "*" in as_list(statement["Resource"]):
                allowed = {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"} | STEP_FUNCTIONS_LOGS_AND_TRACES
                if in_a_vpc:  # network interfaces have no resource-level form at creation
                    allowed |= {a for a in actions if a.startswith("ec2:") and ("NetworkInterface" in a or "Describe" in a)}
                assert set(actions) <= allowed, (case, statement)
                if "cloudwatch:PutMetricData" in actions:
                    assert statement["Condition"] in (
                        {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
                        {"StringEquals": {"cloudwatch:namespace": "FraudModel/Monitoring"}},  # the monitor's workflow
                    )


# A Step Functions workflow's log delivery (CloudWatch Logs vended logs) and X-Ray traces:
# these actions take only "*" (Step Functions developer guide, "IAM policies for logging"
# and "X-Ray"); CDK grants them to the monitor's workflow role.
STEP_FUNCTIONS_LOGS_AND_TRACES = {
    "logs:CreateLogDelivery", "logs:DeleteLogDelivery", "logs:DescribeLogGroups", "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:UpdateLogDelivery",
    "xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords", "xray:PutTraceSegments",
}






def test_model_roles_read_single_objects_not_the_asset_bucket(synthesized):
    template = synthesized.templates["dev"]
    for statement in statements(template, "InferenceRole") + statements(template, "BatchTransformRole"):
        if "s3:GetObject" in as_list(statement["Action"]):
            for resource in map(json.dumps, as_list(statement["Resource"])):
                assert "batch-input" in resource or resource.endswith('.gz"]]}'), statement



# ------------------------------------------------------------ batch transform (issue 7)
# A transform job runs as its model's role (CreateTransformJob takes no role), so batch
# has its own model, run as the batch role, and the launcher passes no role.

CASES = ("dev", "staging", "prod", "prod-pinned-imported", "staging-ab")


def _logical_id(template: dict, prefix: str, type_: str) -> str:
    found = [k for k, v in template["Resources"].items() if k.startswith(prefix) and v["Type"] == type_]
    assert len(found) == 1, (prefix, found)
    return found[0]


def _batch(synthesized, case: str) -> dict:
    template = synthesized.templates[case]
    model_id = _logical_id(template, "BatchTransformModel", "AWS::SageMaker::Model")
    endpoint_config = synthesized.one(case, "AWS::SageMaker::EndpointConfig")["Properties"]
    first_variant_model = endpoint_config["ProductionVariants"][0]["ModelName"]["Fn::GetAtt"][0]
    return {
        "template": template,
        "model": template["Resources"][model_id],
        "model_id": model_id,
        "endpoint_model": template["Resources"][first_variant_model],
        "role_id": _logical_id(template, "BatchTransformRole", "AWS::IAM::Role"),
        "launcher_id": _logical_id(template, "BatchTransformLauncherPolicy", "AWS::IAM::ManagedPolicy"),
    }


def _flat(value) -> str:
    """A template value as text, intrinsic references as <ref>: literal (pinned) and
    Fn::Join (region-agnostic) values compare alike."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_flat(part) for part in parts)
    return "<ref>"


def _allowed(statements_: list[dict], action: str) -> list[dict]:
    return [s for s in statements_ if s["Effect"] == "Allow" and action in as_list(s["Action"])]


@pytest.mark.parametrize("case", CASES)
def test_batch_model_is_the_endpoint_model_run_as_the_batch_role(synthesized, case):
    batch = _batch(synthesized, case)
    ours, endpoints = batch["model"]["Properties"], batch["endpoint_model"]["Properties"]
    assert ours["PrimaryContainer"]["Image"] == endpoints["PrimaryContainer"]["Image"]
    assert ours.get("VpcConfig") == endpoints.get("VpcConfig")  # the job runs where the endpoint runs
    # A batch job reads whole datasets: isolated in every environment, serverless or not.
    assert ours["EnableNetworkIsolation"] is True
    assert ours["PrimaryContainer"]["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert ours["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == endpoints["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"]
    if endpoints.get("EnableNetworkIsolation"):  # then both carry the same repacked artifact
        assert ours["PrimaryContainer"]["ModelDataUrl"] == endpoints["PrimaryContainer"]["ModelDataUrl"]
    assert ours["ExecutionRoleArn"] == {"Fn::GetAtt": [batch["role_id"], "Arn"]}
    assert endpoints["ExecutionRoleArn"] != ours["ExecutionRoleArn"]


@pytest.mark.parametrize("case", CASES)
def test_batch_role_has_what_a_job_needs(synthesized, case):
    batch = _batch(synthesized, case)
    granted = statements(batch["template"], "BatchTransformRole")
    reads, writes = _allowed(granted, "s3:GetObject"), _allowed(granted, "s3:PutObject")
    assert any("/batch-input/*" in json.dumps(s["Resource"]) for s in reads)
    assert [json.dumps(s["Resource"]) for s in writes] and all("/batch-output/*" in json.dumps(s["Resource"]) for s in writes)
    # the model and code objects the batch model names, and only those
    container = batch["model"]["Properties"]["PrimaryContainer"]
    objects = {json.dumps(container["ModelDataUrl"]), json.dumps(container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"])}
    keys = {re.search(r"/([^/\"]+)\"", o).group(1) for o in objects if "cdk-" in o}  # asset objects
    for key in keys:
        assert any(key in json.dumps(s["Resource"]) for s in reads), key
    assert _allowed(granted, "ecr:BatchGetImage") and _allowed(granted, "ecr:GetDownloadUrlForLayer")
    assert _allowed(granted, "ecr:GetAuthorizationToken")
    logs = _allowed(granted, "logs:PutLogEvents")
    assert logs and "/aws/sagemaker/TransformJobs" in json.dumps(logs)
    kms = _allowed(granted, "kms:GenerateDataKey")  # every case has a key (created or imported)
    assert kms and _allowed(granted, "kms:Decrypt")


@pytest.mark.parametrize("case", [c for c in CASES if c != "prod-pinned-imported"])  # that one imports its role
def test_the_inference_role_has_no_batch_access(synthesized, case):
    granted = statements(synthesized.templates[case], "InferenceRole")
    assert granted
    assert "batch-input" not in json.dumps(granted) and "batch-output" not in json.dumps(granted)
    for statement in _allowed(granted, "s3:PutObject"):  # data capture only, never the bucket at large
        assert all(_flat(r).endswith("/data-capture/*") for r in as_list(statement["Resource"])), statement


@pytest.mark.parametrize("case", CASES)
def test_launcher_starts_jobs_only_with_the_batch_model_and_passes_no_role(synthesized, case):
    batch = _batch(synthesized, case)
    launcher = batch["template"]["Resources"][batch["launcher_id"]]["Properties"]["PolicyDocument"]["Statement"]
    actions = {a for s in launcher for a in as_list(s["Action"])}
    assert "iam:PassRole" not in actions  # CreateTransformJob takes no role
    assert actions == {
        "sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob",
        "sagemaker:AddTags", "s3:PutObject", "s3:GetObject", "s3:ListBucket", "cloudformation:DescribeStacks",
        "kms:Decrypt", "kms:GenerateDataKey",
    }
    prefix = synthesized.stacks[case].stack_name
    for action in ("sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob", "sagemaker:AddTags"):
        for statement in _allowed(launcher, action):
            assert _flat(statement["Resource"]).endswith(f":transform-job/{prefix}-*"), statement
    (create,) = _allowed(launcher, "sagemaker:CreateTransformJob")
    assert create["Condition"] == {"ArnEquals": {"sagemaker:ModelArn": {"Fn::GetAtt": [batch["model_id"], "ModelArn"]}}}
    (upload,) = _allowed(launcher, "s3:PutObject")
    (download,) = _allowed(launcher, "s3:GetObject")
    assert _flat(upload["Resource"]).endswith("/batch-input/*")
    assert _flat(download["Resource"]).endswith("/batch-output/*")
    (outputs,) = _allowed(launcher, "cloudformation:DescribeStacks")
    assert _flat(outputs["Resource"]).endswith(f":stack/{prefix}/*")


@pytest.mark.parametrize("case", CASES)
def test_outputs_name_what_endpointctl_transform_needs(synthesized, case):
    batch = _batch(synthesized, case)
    outputs = {k: v["Value"] for k, v in batch["template"]["Outputs"].items()}
    assert outputs["BatchModelName"] == {"Fn::GetAtt": [batch["model_id"], "ModelName"]}
    assert outputs["BatchLauncherPolicyArn"] == {"Ref": batch["launcher_id"]}
    assert _flat(outputs["BatchInputUri"]).endswith("/batch-input/")
    assert _flat(outputs["BatchOutputUri"]).endswith("/batch-output/")
    assert outputs["BatchJobNamePrefix"] == synthesized.stacks[case].stack_name


@pytest.mark.parametrize("case", CASES)
def test_models_wait_for_their_roles_policy(synthesized, case):
    """Not only the role: a model created before its policy is attached fails on S3/ECR."""
    template = synthesized.templates[case]
    models = synthesized.resources(case, "AWS::SageMaker::Model")
    assert len(models) >= 2  # the endpoint's and batch's
    for model in models.values():
        role = model["Properties"]["ExecutionRoleArn"]
        if "Fn::GetAtt" not in role:  # an imported role: its policies are not ours to wait for
            continue
        role_id = role["Fn::GetAtt"][0]
        policies = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::IAM::Policy"
                    and {"Ref": role_id} in v["Properties"]["Roles"]]
        assert policies and set(policies) <= set(as_list(model.get("DependsOn", [])))


# --------------------------------------------------------------- removal, outputs


def test_dev_data_is_destroyed_prod_data_retained(synthesized):
    dev_bucket = data_bucket(synthesized, "dev")
    prod_bucket = data_bucket(synthesized, "prod")
    dev_buckets = {r["Properties"].get("BucketName"): r for r in synthesized.resources("dev", "AWS::S3::Bucket").values()}
    assert dev_bucket["DeletionPolicy"] == "Delete" and synthesized.resources("dev", "Custom::S3AutoDeleteObjects")
    # The model registry outlives a disposable dev: registered versions are the record of what was deployed.
    assert dev_buckets["acme-sm-rc-fraud-detection-registry"]["DeletionPolicy"] == "Retain"
    assert synthesized.one("dev", "AWS::SageMaker::ModelPackageGroup")["DeletionPolicy"] == "Retain"
    registry_key_id = dev_buckets["acme-sm-rc-fraud-detection-registry"]["Properties"]["BucketEncryption"][
        "ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]["Fn::GetAtt"][0]
    assert synthesized.templates["dev"]["Resources"][registry_key_id]["DeletionPolicy"] == "Retain"
    assert prod_bucket["DeletionPolicy"] == "Retain" and not synthesized.resources("prod", "Custom::S3AutoDeleteObjects")
    assert synthesized.one("prod", "AWS::KMS::Key")["DeletionPolicy"] == "Retain"
    for case in ("dev", "prod"):  # what bills is always removed by `cdk destroy`
        for type_ in ("AWS::SageMaker::Endpoint", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Model",
                      "AWS::CloudWatch::Alarm"):
            for resource in synthesized.resources(case, type_).values():
                assert resource.get("DeletionPolicy", "Delete") == "Delete"


def test_outputs_give_what_callers_need(synthesized):
    outputs = synthesized.templates["prod-pinned-imported"]["Outputs"]
    assert set(outputs) >= {"EndpointName", "InvocationUrl", "InferenceRoleArn", "BatchRoleArn", "BucketName",
                            "BatchInputUri", "BatchOutputUri", "BatchModelName", "BatchLauncherPolicyArn"}
    url = json.dumps(outputs["InvocationUrl"]["Value"])
    assert "https://runtime.sagemaker.ap-northeast-1." in url
    assert "/endpoints/rc-fraud-detection-prod-realtime/invocations" in url


# ------------------------------------------------------------------ nag, cfn-lint


def test_cfn_lint_reports_nothing(synthesized):
    templates = sorted(str(p) for p in synthesized.outdir.glob("*.template.json"))
    assert len(templates) == len(synthesized.templates)
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), *templates], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cdk_nag_fails_the_synth_on_an_unacknowledged_finding(tmp_path):
    """The session synth passing means something only if the pack can fail."""
    import aws_cdk as cdk
    from aws_cdk import aws_iam as iam
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Probe")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["*"]))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert "AwsSolutions-IAM5[Resource::*]" in json.dumps(report)


def test_every_acknowledgment_sits_on_its_construct_with_a_specific_reason(synthesized):
    import aws_cdk as cdk

    acknowledged = {}
    for case, stack in synthesized.stacks.items():
        for construct in stack.node.find_all():
            for entry in construct.node.metadata:
                if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                    for rule, reason in entry.data.items():
                        acknowledged[(case, construct.node.path, rule)] = reason
    assert acknowledged
    for (case, path, rule), reason in acknowledged.items():
        assert path != synthesized.stacks[case].node.path, f"{rule} acknowledged stack-wide"
        assert len(reason) >= 40 and "TODO" not in reason, (path, rule, reason)


def test_local_artifact_is_preflighted_at_synth(tmp_path):
    import aws_cdk as cdk

    from serving_runtime.preflight import PreflightError
    from serving_config.config import parse_config
    from stacks.serving_stack import ServingStack
    from tests.conftest import serving_settings

    broken = tmp_path / "model.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("nested/model.joblib")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    broken.write_bytes(buffer.getvalue())
    environment = parse_config(serving_settings(model_data=str(broken))).environment("dev")
    with pytest.raises(PreflightError, match="no model.joblib at its root"):
        ServingStack(cdk.App(), "Broken", environment=environment)


def test_missing_local_artifact_says_how_to_make_one(tmp_path):
    import aws_cdk as cdk

    from serving_config.config import parse_config
    from stacks.serving_stack import ServingStack
    from tests.conftest import serving_settings

    environment = parse_config(serving_settings(model_data=str(tmp_path / "none.tar.gz"))).environment("dev")
    with pytest.raises(ValueError, match="endpointctl train-sample"):
        ServingStack(cdk.App(), "Missing", environment=environment)


def test_s3_model_data_is_used_as_given_and_read_only_that_object(tmp_path):
    from sagemaker_serving.model import ModelData

    with pytest.raises(ValueError, match="s3://bucket/key/model.tar.gz"):
        ModelData.from_s3_url("s3://bucket/model.zip")
    assert ModelData.from_s3_url("s3://acme-sm-rc-fraud-detection/training/output/model.tar.gz").key.endswith("model.tar.gz")


def test_app_refuses_bad_config_before_any_aws_call(tmp_path):
    """The real app entry point: one message with key, value and what is allowed; exit 1."""
    from tests.conftest import CONTEXT

    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "CDK_CONTEXT_JSON": json.dumps({**CONTEXT, "env": "qa"}), "CDK_OUTDIR": str(tmp_path)},
    )
    assert result.returncode == 1
    assert "env: 'qa' is not an environment; allowed: dev, staging, prod" in result.stderr
    assert "Traceback" not in result.stderr
