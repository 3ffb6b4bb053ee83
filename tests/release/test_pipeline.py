"""The delivery pipeline (stacks/pipeline_stack.py) for a three-account configuration,
synthesized once with the same cdk-nag packs as every stack (the synth raises on an
unacknowledged finding), checked with cfn-lint, snapshotted; and `endpointctl
smoke-test` on the local AWS."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from tests.conftest import CONTEXT, ROOT, serving_settings
from tests.stack.test_snapshots import normalized

ACCOUNTS = {"dev": "111111111111", "staging": "222222222222", "prod": "333333333333"}
REGION = "eu-west-1"
CONNECTION = "arn:aws:codeconnections:eu-west-1:111111111111:connection/abcd1234-ab12-cd34-ef56-abcdef123456"
ARTIFACT = "s3://acme-models/fraud/model.tar.gz"
APPROVED = {
    "arn": "arn:aws:sagemaker:eu-west-1:111111111111:model-package/rc-fraud-detection/2",
    "group": "rc-fraud-detection",
    "version": 2,
    "model_data_url": "s3://acme-sm-rc-fraud-detection-registry/model-registry/rc-fraud-detection/model-0123456789abcdef/model.tar.gz",
    "image": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
}


# An archive in S3 holds no handler: an isolated container could not load it, so dev
# turns isolation off, with the reason the synth prints. Staging and prod deploy a
# registered version, whose archive carries its handler: they stay isolated.
S3_ARCHIVE_OPEN = {"isolation": False, "isolation_off_reason": "the artifact comes from S3 and holds no handler under code/"}


def three_accounts() -> dict:
    raw = serving_settings(model_data=ARTIFACT)
    for name, account in ACCOUNTS.items():
        raw["environments"][name].update(account=account, region=REGION)
    raw["environments"]["dev"]["network"] = S3_ARCHIVE_OPEN
    for name in ("staging", "prod"):
        raw["environments"][name]["model_package"] = "rc-fraud-detection:latest-approved"
    return raw


@dataclass
class PipelineSynth:
    outdir: Path
    template: dict  # the pipeline stack
    stages: dict[str, dict]  # environment name -> its ServingStack template

    def pipeline(self) -> dict:
        (pipeline,) = [r for r in self.template["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline"]
        return pipeline["Properties"]

    def stage(self, name: str) -> list[dict]:
        (stage,) = [s for s in self.pipeline()["Stages"] if s["Name"] == name]
        return sorted(stage["Actions"], key=lambda a: a["RunOrder"])

    def buildspec(self, action: dict) -> dict:
        project = self.template["Resources"][action["Configuration"]["ProjectName"]["Ref"]]
        return json.loads(project["Properties"]["Source"]["BuildSpec"])


def build_pipeline_app(raw: dict, outdir: Path):
    import aws_cdk as cdk

    from stacks.checks import add_nag_packs
    from serving_config.config import parse_config
    from serving_config.model_package import RegistrySettings, ResolvedPackage
    from stacks.pipeline_stack import PipelineSource, PipelineStack

    config = parse_config(raw)
    app = cdk.App(context=CONTEXT, outdir=str(outdir))
    stack = PipelineStack(
        app, "Pipeline",
        source=PipelineSource(connection_arn=CONNECTION, repository="acme/fraud-endpoint", branch="main"),
        environments=[config.environment(name) for name in ("dev", "staging", "prod")],
        registry=RegistrySettings(group_name="rc-fraud-detection", bucket_name="acme-sm-rc-fraud-detection-registry"),
        # staging and prod deploy an approved version from dev's registry (resolved beforehand)
        model_packages={name: ResolvedPackage(**APPROVED) for name in ("staging", "prod")},
    )
    add_nag_packs(app)
    return app, stack


@pytest.fixture(scope="session")
def pipeline_synth(tmp_path_factory) -> PipelineSynth:
    outdir = tmp_path_factory.mktemp("pipeline.out")
    app, stack = build_pipeline_app(three_accounts(), outdir)
    assembly = app.synth()  # raises ValidationFailed on any unacknowledged cdk-nag finding
    stages = {}
    for stage in stack.stages:
        stage_assembly = assembly.get_nested_assembly(stage.artifact_id)
        stages[stage.serving.environment_config.name] = stage_assembly.get_stack_artifact(stage.serving.artifact_id).template
    return PipelineSynth(outdir, assembly.get_stack_artifact(stack.artifact_id).template, stages)


def test_stages_run_in_order_each_to_its_account(pipeline_synth):
    names = [s["Name"] for s in pipeline_synth.pipeline()["Stages"]]
    assert names[:3] == ["Source", "Build", "UpdatePipeline"]
    assert [n for n in names if n in ("Dev", "Staging", "Prod")] == ["Dev", "Staging", "Prod"]
    assert names.index("Dev") < names.index("Staging") < names.index("Prod")
    for env, account in ACCOUNTS.items():
        deploys = [a for a in pipeline_synth.stage(env.capitalize()) if a["ActionTypeId"]["Provider"] == "CloudFormation"]
        assert [a["Configuration"]["StackName"] for a in deploys] == [f"rc-fraud-detection-{env}"] * 2
        for action in deploys:
            assert f":iam::{account}:role/cdk-hnb659fds-deploy-role-{account}-{REGION}" in json.dumps(action["RoleArn"])


def test_source_is_the_codestar_connection(pipeline_synth):
    (source,) = pipeline_synth.stage("Source")
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"] == {"ConnectionArn": CONNECTION, "FullRepositoryId": "acme/fraud-endpoint",
                                       "BranchName": "main"}


def test_synth_uses_the_pinned_cli_and_re_resolves_approved_versions(pipeline_synth):
    (synth,) = pipeline_synth.stage("Build")
    spec = pipeline_synth.buildspec(synth)
    install = spec["phases"]["install"]["commands"]
    assert install[0] == "npm ci"  # aws-cdk from package-lock.json, the version package.json pins
    assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.11"}
    assert spec["phases"]["build"]["commands"] == ["export PATH=$PWD/node_modules/.bin:$PATH",
                                                   "npx cdk synth -c pipeline=true -c model_package_refresh=true"]


def test_self_mutation_and_asset_publishing_use_pinned_clis(pipeline_synth):
    cli = json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    (mutate,) = pipeline_synth.stage("UpdatePipeline")
    assert pipeline_synth.buildspec(mutate)["phases"]["install"]["commands"] == [f"npm install -g aws-cdk@{cli}"]
    for publish in pipeline_synth.stage("Assets"):
        assert pipeline_synth.buildspec(publish)["phases"]["install"]["commands"] == ["npm install -g cdk-assets@4.7.3"]


def test_a_smoke_test_follows_each_deploy(pipeline_synth):
    for env, account in ACCOUNTS.items():
        actions = pipeline_synth.stage(env.capitalize())
        last = actions[-1]
        assert last["Name"] == f"SmokeTest{env.capitalize()}"
        assert last["RunOrder"] > max(a["RunOrder"] for a in actions if a["ActionTypeId"]["Provider"] == "CloudFormation")
        commands = pipeline_synth.buildspec(last)["phases"]["build"]["commands"]
        assert commands[-1] == f"endpointctl smoke-test --env {env}"
        assert commands[0].startswith(f"CREDENTIALS=$(aws sts assume-role --role-arn "
                                      f"arn:aws:iam::{account}:role/rc-fraud-detection-{env}-deploy-checks ")


def test_release_plan_and_manual_approval_come_before_prod(pipeline_synth):
    plan, approval, *deploys, smoke = pipeline_synth.stage("Prod")
    assert plan["Name"] == "ReleasePlan" and plan["ActionTypeId"]["Provider"] == "CodeBuild"
    commands = pipeline_synth.buildspec(plan)["phases"]["build"]["commands"]
    assert commands[-3:] == [
        "set -o pipefail",  # a plan that blocks (exit 3) fails the step, before the approval
        "python -m endpointctl.deployed --env prod --out deployed-assembly",
        "endpointctl plan --base deployed-assembly --head cdk.out/assembly-Pipeline-Prod --env prod"
        " | tee release-plan/plan.md",
    ]
    assert commands[0].startswith("CREDENTIALS=$(aws sts assume-role --role-arn "
                                  "arn:aws:iam::333333333333:role/rc-fraud-detection-prod-deploy-checks ")
    assert plan["OutputArtifacts"], "the plan is the step's output artifact"
    assert len(plan["InputArtifacts"]) == 2, "the repository and the synthesized cloud assembly"
    assert approval["ActionTypeId"] == {"Category": "Approval", "Owner": "AWS", "Provider": "Manual", "Version": "1"}
    assert plan["RunOrder"] < approval["RunOrder"] < min(d["RunOrder"] for d in deploys)
    for stage in ("Dev", "Staging"):
        assert not [a for a in pipeline_synth.stage(stage) if a["ActionTypeId"]["Category"] == "Approval"]


def test_an_approved_model_version_starts_the_pipeline(pipeline_synth):
    (rule,) = [r for r in pipeline_synth.template["Resources"].values() if r["Type"] == "AWS::Events::Rule"]
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": ["rc-fraud-detection"], "ModelApprovalStatus": ["Approved"]},
    }
    (target,) = rule["Properties"]["Targets"]
    pipeline_id = [k for k, r in pipeline_synth.template["Resources"].items() if r["Type"] == "AWS::CodePipeline::Pipeline"][0]
    assert {"Ref": pipeline_id} in target["Arn"]["Fn::Join"][1]
    events_role = pipeline_synth.template["Resources"][target["RoleArn"]["Fn::GetAtt"][0]]
    policies = [r for r in pipeline_synth.template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
                and {"Ref": target["RoleArn"]["Fn::GetAtt"][0]} in r["Properties"]["Roles"]]
    (statement,) = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "codepipeline:StartPipelineExecution"
    assert events_role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}


def test_check_roles_can_only_invoke_describe_read_alarms_and_read_the_stack(pipeline_synth):
    for env, account in ACCOUNTS.items():
        template = pipeline_synth.stages[env]
        (role,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"
                   and r["Properties"].get("RoleName") == f"rc-fraud-detection-{env}-deploy-checks"]
        (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert json.dumps(trust["Principal"]).count("rc-fraud-detection-pipeline-checks") == 1
        assert ":iam::111111111111:role/" in json.dumps(trust["Principal"])
        role_id = [k for k, r in template["Resources"].items() if r is role][0]
        actions = set()
        for policy in template["Resources"].values():
            if policy["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in policy["Properties"]["Roles"]:
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                    actions |= set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
        checks = {"sagemaker:InvokeEndpoint", "sagemaker:DescribeEndpoint", "cloudwatch:DescribeAlarms",
                  "cloudwatch:DescribeAlarmHistory", "cloudformation:DescribeStacks",
                  "cloudformation:GetTemplate", "cloudformation:ListStackResources"}
        # Where an approved version is deployed, the release plan also scores the registered
        # archives (the deployed version's and the new one): read them, decrypt through S3.
        deploys_package = "ModelPackageArn" in template.get("Outputs", {})
        assert actions == checks | ({"s3:GetObject", "kms:Decrypt"} if deploys_package else set()), env


def test_the_registry_lives_in_dev_readable_by_staging_and_prod(pipeline_synth):
    dev = pipeline_synth.stages["dev"]
    (group,) = [r for r in dev["Resources"].values() if r["Type"] == "AWS::SageMaker::ModelPackageGroup"]
    assert group["Properties"]["ModelPackageGroupName"] == "rc-fraud-detection"
    assert group["DeletionPolicy"] == "Retain"
    (statement,) = group["Properties"]["ModelPackageGroupPolicy"]["Statement"]
    principals = json.dumps(statement["Principal"])
    assert "222222222222" in principals and "333333333333" in principals and "111111111111" not in principals
    assert set(statement["Action"]) == {"sagemaker:DescribeModelPackageGroup", "sagemaker:DescribeModelPackage",
                                        "sagemaker:ListModelPackages"}
    for env in ("staging", "prod"):
        assert not [r for r in pipeline_synth.stages[env]["Resources"].values()
                    if r["Type"] == "AWS::SageMaker::ModelPackageGroup"]


def test_staging_and_prod_serve_the_approved_version_as_today(pipeline_synth):
    """The package's archive, with our handler, environment and batch model; the version
    is tagged on every model and output; reading the archive across accounts is allowed
    only through S3."""
    for env in ("staging", "prod"):
        template = pipeline_synth.stages[env]
        models = [r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Model"]
        assert len(models) == 2  # the endpoint's and the batch model
        for model in models:
            container = model["Properties"]["PrimaryContainer"]
            assert container["ModelDataUrl"] == APPROVED["model_data_url"]
            assert json.dumps(container["Image"]) == json.dumps({"Fn::Join": ["", [
                "141502667606.dkr.ecr.eu-west-1.", {"Ref": "AWS::URLSuffix"}, "/sagemaker-scikit-learn:1.2-1-cpu-py3"]]})
            assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
            # the handler registered (and approved) with the model, inside its archive
            assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
            assert {"Key": "ModelPackageArn", "Value": APPROVED["arn"]} in model["Properties"]["Tags"]
        # isolated wherever SageMaker allows: every batch model, prod's instance endpoint (staging is serverless)
        isolated = [m for m in models if m["Properties"].get("EnableNetworkIsolation")]
        assert len(isolated) == (2 if env == "prod" else 1)
        limits = sorted(m["Properties"]["PrimaryContainer"]["Environment"]["HANDLER_MAX_REQUEST_BYTES"] for m in models)
        assert limits == sorted({"staging": ["4194304", "6291456"], "prod": ["6291456", "6291456"]}[env])
        assert template["Outputs"]["ModelPackageArn"]["Value"] == APPROVED["arn"]
        statements = [st for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
                      for st in r["Properties"]["PolicyDocument"]["Statement"]]
        archive = "arn:aws:s3:::" + APPROVED["model_data_url"].removeprefix("s3://")
        readers = [st for st in statements if st["Action"] == "s3:GetObject" and archive in st["Resource"]]
        assert len(readers) == 2  # the inference role and the batch role, that one object
        decrypt = [st for st in statements if st.get("Sid") == "DecryptRegistryArchives"]
        # the inference and batch roles, and the check role (its release plan scores the archives)
        assert len(decrypt) == 3 and all(st["Resource"] == "arn:aws:kms:eu-west-1:111111111111:key/*" and
                                         '"kms:ViaService": {"Fn::Join": ["", ["s3.eu-west-1.", {"Ref": "AWS::URLSuffix"}]]}'
                                         in json.dumps(st["Condition"])
                                         for st in decrypt)
    dev_models = [r for r in pipeline_synth.stages["dev"]["Resources"].values() if r["Type"] == "AWS::SageMaker::Model"]
    assert all(m["Properties"]["PrimaryContainer"]["ModelDataUrl"] == ARTIFACT for m in dev_models)


def test_cfn_lint_reports_nothing_on_the_pipeline_and_its_stages(pipeline_synth):
    templates = sorted(str(p) for p in pipeline_synth.outdir.rglob("*.template.json"))
    assert len(templates) == 4
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), *templates], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pipeline_snapshot(pipeline_synth, snapshot):
    assert normalized(pipeline_synth.template) == snapshot.use_extension(JSONSnapshotExtension)


# ------------------------------------------------------- endpointctl smoke-test


@pytest.fixture(scope="module")
def deployed_dev():
    """A local AWS with a stack named like dev's, its EndpointName output, and an endpoint
    alarm named as EndpointAlarms names them (moto's CloudFormation skips alarms)."""
    import boto3

    from devtools.demo import local_aws

    template = {"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
                "Outputs": {"EndpointName": {"Value": "rc-fraud-detection-dev-serverless"}}}
    with local_aws():
        boto3.client("cloudformation").create_stack(StackName="rc-fraud-detection-dev", TemplateBody=json.dumps(template))
        boto3.client("cloudwatch").put_metric_alarm(
            AlarmName="rc-fraud-detection-dev-serverless-AllTraffic-ModelLatency", MetricName="ModelLatency",
            Namespace="AWS/SageMaker", Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=1e6,
            ComparisonOperator="GreaterThanThreshold")
        boto3.client("cloudwatch").put_metric_alarm(
            AlarmName="another-endpoint-AllTraffic-ModelLatency", MetricName="ModelLatency", Namespace="AWS/SageMaker",
            Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=1e6, ComparisonOperator="GreaterThanThreshold")
        yield


def set_state(alarm: str, state: str) -> None:
    import boto3

    boto3.client("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue=state, StateReason="test")


def test_smoke_test_passes_on_200_with_no_alarm_firing(deployed_dev):
    from tests.cli.test_cli import endpointctl

    set_state("rc-fraud-detection-dev-serverless-AllTraffic-ModelLatency", "OK")
    set_state("another-endpoint-AllTraffic-ModelLatency", "ALARM")  # not this endpoint's
    result = endpointctl("smoke-test", "--env", "dev")
    assert result.returncode == 0, result.stderr
    assert "invoke rc-fraud-detection-dev-serverless with the guide's request: 200" in result.stdout
    assert "AllTraffic-ModelLatency: OK" in result.stdout and "smoke test of dev passed" in result.stdout


def test_smoke_test_fails_on_an_alarm_in_alarm(deployed_dev):
    from tests.cli.test_cli import endpointctl

    set_state("rc-fraud-detection-dev-serverless-AllTraffic-ModelLatency", "ALARM")
    result = endpointctl("smoke-test", "--env", "dev")
    assert result.returncode == 1
    assert result.stderr.strip() == ("endpointctl smoke-test: smoke test failed: 1 alarm(s) of "
                                     "rc-fraud-detection-dev-serverless in ALARM: "
                                     "rc-fraud-detection-dev-serverless-AllTraffic-ModelLatency")


def test_the_deployed_stack_is_the_release_plans_base(deployed_dev, tmp_path):
    import boto3

    from endpointctl.deployed import write_deployed_assembly
    from endpointctl.plan.assembly import load_assembly

    base = load_assembly(write_deployed_assembly("dev", tmp_path / "dev"), option="--base")
    deployed = boto3.client("cloudformation").get_template(StackName="rc-fraud-detection-dev")["TemplateBody"]
    assert base.stacks["rc-fraud-detection-dev"].template == (json.loads(deployed) if isinstance(deployed, str) else deployed)
    first_deploy = load_assembly(write_deployed_assembly("prod", tmp_path / "prod"), option="--base")
    assert first_deploy.stacks == {}  # nothing deployed yet: the plan shows everything as added


def test_smoke_test_fails_on_a_model_error(monkeypatch, capsys):
    """moto's InvokeEndpoint always answers 200: the ModelError a non-200 container
    answer becomes on AWS is played by botocore's Stubber."""
    import argparse

    import boto3
    from botocore.stub import Stubber

    import endpointctl.smoke as smoke
    from endpointctl.errors import CommandError

    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    stubber = Stubber(runtime)
    stubber.add_client_error("invoke_endpoint", service_error_code="ModelError", service_message="Received server error (500)",
                             http_status_code=424, response_meta={}, modeled_fields={"OriginalStatusCode": 500})
    stubber.activate()
    monkeypatch.setattr(smoke, "stack_outputs", lambda env: {"EndpointName": "rc-fraud-detection-dev-serverless"})
    monkeypatch.setattr(smoke, "check_config", lambda env, name: None)  # the config check: tests/release/test_rollback.py
    monkeypatch.setattr(smoke, "client", lambda service, region=None: runtime)
    with pytest.raises(CommandError, match=r"^smoke test failed: the model answered 500: Received server error \(500\)"):
        smoke.run_smoke_test(argparse.Namespace(env="dev"))


# ------------------------------------------------------------------ bad input


def pipeline_error(raw: dict, **source) -> str:
    from serving_config.config import parse_config
    from serving_config.model_package import RegistrySettings
    from stacks.pipeline_stack import PipelineSource, PipelineStack
    import aws_cdk as cdk

    config = parse_config(raw)
    with pytest.raises(ValueError) as raised:
        PipelineStack(
            cdk.App(context=CONTEXT), "Pipeline",
            source=PipelineSource(**{"connection_arn": CONNECTION, "repository": "acme/fraud-endpoint", **source}),
            environments=[config.environment(name) for name in ("dev", "staging", "prod")],
            registry=RegistrySettings(group_name="rc-fraud-detection", bucket_name="acme-sm-rc-fraud-detection-registry"),
        )
    return str(raised.value)


def test_a_pipeline_without_a_connection_is_refused_by_the_config_before_anything_is_built():
    """The connection and repository are validated once, by the config: the pipeline's
    source is the config's `pipeline` object, so an unvalidated one cannot reach it."""
    from serving_config.config import ConfigError, parse_config
    from stacks.pipeline_stack import PipelineSource

    raw = three_accounts()
    raw["pipeline"] = {"connection_arn": None, "repository": "acme fraud"}
    with pytest.raises(ConfigError) as raised:
        parse_config(raw)
    assert str(raised.value).splitlines()[1:] == [
        "  - pipeline.connection_arn: got null; allowed: a CodeStar connection ARN, "
        "arn:aws:codeconnections:REGION:ACCOUNT:connection/ID (create it in the console and authorize it)",
        "  - pipeline.repository: got \"acme fraud\"; allowed: owner/name",
    ]
    with pytest.raises(ValueError):
        PipelineSource(connection_arn=None, repository="acme/fraud-endpoint")


def test_a_pipeline_needs_accounts_regions_and_artifacts_it_can_reach():
    raw = three_accounts()
    raw["environments"]["staging"].pop("account")
    del raw["environments"]["prod"]["model_package"]
    raw["environments"]["prod"].update(model_data="model.tar.gz")
    lines = pipeline_error(raw).splitlines()[1:]
    assert lines == [
        "  - environments.staging.account: got null; allowed: the account the pipeline deploys staging to "
        "(a pipeline deploys every environment to its own account and region)",
        "  - environments.prod.model_data: got \"model.tar.gz\"; allowed: model_package or an s3:// URL "
        "(the pipeline synthesizes from the repository, where a local archive is not)",
    ]


# ------------------------------------------------------- through app.py and the cdk CLI


def test_cdk_synth_c_pipeline_true_builds_the_pipeline_from_cdk_json(tmp_path):
    """app.py with the real CLI: the pipeline from cdk.json's `pipeline` and `model_registry`
    keys, staging and prod on model_package versions read from cdk.context.json (no AWS)."""
    from serving_config.model_package import context_key
    from tests.release.test_promotion_e2e import cdk_in, project

    raw = three_accounts()
    raw["pipeline"] = {"connection_arn": CONNECTION, "repository": "acme/fraud-endpoint"}
    folder = project(tmp_path / "three-accounts", raw)
    key = context_key("rc-fraud-detection:latest-approved", region=REGION, registry_account=ACCOUNTS["dev"])
    (folder / "cdk.context.json").write_text(json.dumps({key: APPROVED}))
    done = cdk_in(folder, "synth", "-c", "pipeline=true", "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    out = folder / "cdk.out"
    pipeline = json.loads((out / "Pipeline.template.json").read_text())
    assert any(r["Type"] == "AWS::CodePipeline::Pipeline" for r in pipeline["Resources"].values())
    prod = json.loads(next((out / "assembly-Pipeline-Prod").glob("*.template.json")).read_text())
    assert prod["Outputs"]["ModelPackageArn"]["Value"] == APPROVED["arn"]

    del raw["pipeline"]["connection_arn"]
    failed = cdk_in(project(tmp_path / "no-connection", raw), "synth", "-c", "pipeline=true", "--quiet")
    assert failed.returncode != 0
    assert [line for line in failed.stderr.splitlines() if line.startswith(("cdk synth", "  - "))] == [
        "cdk synth: invalid configuration in cdk.json context 'serving':",
        "  - pipeline.connection_arn: missing; it is required",
    ]


def test_c_pipeline_true_without_a_pipeline_key_is_one_line():
    import aws_cdk as cdk

    from stacks.app_stacks import build_stacks
    from serving_config.config import parse_config

    with pytest.raises(ValueError) as raised:
        build_stacks(cdk.App(context=CONTEXT), parse_config(serving_settings()), env_name="dev", pipeline=True,
                     refresh=False, context_file=None)
    assert str(raised.value) == ("pipeline: missing; allowed: an object with connection_arn, repository and branch "
                                 "(cdk.json context serving.pipeline) to synthesize with -c pipeline=true")


# ------------------------------------------- the delivery path, hardened like the serving path


def resources_of(template: dict, type_: str) -> dict[str, dict]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == type_}


def test_the_artifacts_bucket_and_key_are_ours_and_hardened(pipeline_synth):
    (bucket_id, bucket), = resources_of(pipeline_synth.template, "AWS::S3::Bucket").items()
    props = bucket["Properties"]
    assert props["BucketName"] == "acme-sm-rc-fraud-detection-pipeline"
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["LifecycleConfiguration"]["Rules"] == [{
        "Id": "ExpireRunArtifacts", "Status": "Enabled", "ExpirationInDays": 90,
        "NoncurrentVersionExpiration": {"NoncurrentDays": 30}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}]
    # into the registry environment's (dev's) log bucket, which lets S3 log delivery write for it
    assert props["LoggingConfiguration"] == {"DestinationBucketName": "acme-sm-rc-fraud-detection-dev-logs",
                                             "LogFilePrefix": "acme-sm-rc-fraud-detection-pipeline/"}
    dev_buckets = resources_of(pipeline_synth.stages["dev"], "AWS::S3::Bucket")
    (log_bucket_id,) = [k for k, r in dev_buckets.items()
                        if r["Properties"].get("BucketName") == "acme-sm-rc-fraud-detection-dev-logs"]
    (delivery,) = [st for policy in resources_of(pipeline_synth.stages["dev"], "AWS::S3::BucketPolicy").values()
                   if policy["Properties"]["Bucket"] == {"Ref": log_bucket_id}
                   for st in policy["Properties"]["PolicyDocument"]["Statement"]
                   if st.get("Sid") == "S3ServerAccessLogDeliveryPipeline"]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert "arn:aws:s3:::acme-sm-rc-fraud-detection-pipeline" in json.dumps(delivery["Condition"])
    (policy,) = [p for p in resources_of(pipeline_synth.template, "AWS::S3::BucketPolicy").values()
                 if p["Properties"]["Bucket"] == {"Ref": bucket_id}]
    assert {"Effect": "Deny", "Action": "s3:*", "Principal": {"AWS": "*"},
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}.items() <= policy["Properties"]["PolicyDocument"][
                "Statement"][0].items()
    key_id = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
        "KMSMasterKeyID"]["Fn::GetAtt"][0]
    key = pipeline_synth.template["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    assert {"Sid": "GrantsOnlyForAwsResources", "Effect": "Deny", "Principal": "*", "Action": "kms:CreateGrant",
            "Resource": "*", "Condition": {"BoolIfExists": {"kms:GrantIsForAWSResource": "false",
                                                             "aws:PrincipalIsAWSService": "false"}}} \
        in key["KeyPolicy"]["Statement"]
    # CDK Pipelines' own bucket and key are not made
    assert len(resources_of(pipeline_synth.template, "AWS::KMS::Key")) == 1


def test_every_build_logs_to_an_encrypted_log_group_with_retention(pipeline_synth):
    (group_id, group), = resources_of(pipeline_synth.template, "AWS::Logs::LogGroup").items()
    assert group["Properties"]["RetentionInDays"] == 365
    assert group["Properties"]["KmsKeyId"]["Fn::GetAtt"][1] == "Arn"
    projects = resources_of(pipeline_synth.template, "AWS::CodeBuild::Project")
    assert len(projects) >= 7  # synth, self-mutation, assets, three smoke tests, the release plan
    for name, project in projects.items():
        assert project["Properties"]["LogsConfig"] == {"CloudWatchLogs": {"GroupName": {"Ref": group_id},
                                                                          "Status": "ENABLED"}}, name


def test_artifact_and_log_ages_come_from_config(tmp_path):
    import aws_cdk as cdk

    from sagemaker_serving.pipeline_artifacts import ArtifactRetention, PipelineArtifacts

    stack = cdk.Stack(cdk.App(), "S", env=cdk.Environment(account="111111111111", region=REGION))
    PipelineArtifacts(stack, "Artifacts", bucket_name="b-pipeline", log_group_name="/aws/codebuild/p",
                      retention=ArtifactRetention(artifact_days=30, log_retention_days=731), log_bucket_name=None)
    template = cdk.assertions.Template.from_stack(stack).to_json()
    (bucket,) = resources_of(template, "AWS::S3::Bucket").values()
    assert bucket["Properties"]["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 30
    assert "LoggingConfiguration" not in bucket["Properties"]  # an imported registry bucket: no log bucket of ours
    (group,) = resources_of(template, "AWS::Logs::LogGroup").values()
    assert group["Properties"]["RetentionInDays"] == 731


# ------------------------------------------------- the cross-account set-up, dogfooded


def statements(template: dict, type_: str, document_key: str) -> list[dict]:
    return [st for r in resources_of(template, type_).values() for st in r["Properties"][document_key]["Statement"]]


def principal_accounts(statement: dict) -> set[str]:
    rendered = json.dumps(statement.get("Principal", {}))
    return {account for account in ("111111111111", "222222222222", "333333333333") if account in rendered}


def test_staging_and_prod_may_read_the_registry_archives_and_nothing_else_there(pipeline_synth):
    dev = pipeline_synth.stages["dev"]
    others = {"222222222222", "333333333333"}
    bucket_grants = [st for st in statements(dev, "AWS::S3::BucketPolicy", "PolicyDocument") if principal_accounts(st) & others]
    assert [st["Sid"] for st in bucket_grants] == ["OtherEnvironmentsReadArchives"]
    (read,) = bucket_grants
    assert principal_accounts(read) == others and read["Action"] == "s3:GetObject" and read["Effect"] == "Allow"
    assert json.dumps(read["Resource"]).endswith('"/model-registry/*"]]}')


def test_the_archives_key_is_usable_from_those_accounts_only_through_s3(pipeline_synth):
    dev = pipeline_synth.stages["dev"]
    others = {"222222222222", "333333333333"}
    key_grants = [st for st in statements(dev, "AWS::KMS::Key", "KeyPolicy") if principal_accounts(st) & others]
    assert [st["Sid"] for st in key_grants] == ["OtherEnvironmentsDecryptArchives"]
    (decrypt,) = key_grants
    assert principal_accounts(decrypt) == others and decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": {"Fn::Join": ["", ["s3.eu-west-1.", {
        "Ref": "AWS::URLSuffix"}]]}}}
    for env in ("staging", "prod"):  # their roles ask for exactly that
        (own,) = [st for st in statements(pipeline_synth.stages[env], "AWS::IAM::Policy", "PolicyDocument")
                  if st.get("Sid") == "DecryptRegistryArchives"][:1]
        assert own["Condition"] == decrypt["Condition"]


def test_the_check_roles_are_assumable_only_by_the_pipelines_role(pipeline_synth):
    pipeline_role = "arn:aws:iam::111111111111:role/rc-fraud-detection-pipeline-checks"
    check_roles = []
    for env, account in ACCOUNTS.items():
        template = pipeline_synth.stages[env]
        roles = [r for r in resources_of(template, "AWS::IAM::Role").values()
                 if r["Properties"].get("RoleName") == f"rc-fraud-detection-{env}-deploy-checks"]
        (role,) = roles
        assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
            {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"AWS": pipeline_role}}]
        # no other role in the stage trusts a principal of the pipeline's account
        assert [r for r in resources_of(template, "AWS::IAM::Role").values()
                if any("111111111111" in json.dumps(st["Principal"].get("AWS", ""))
                       for st in r["Properties"]["AssumeRolePolicyDocument"]["Statement"])] == [role]
        check_roles.append(f"arn:aws:iam::{account}:role/rc-fraud-detection-{env}-deploy-checks")
    (pipeline_check_role,) = [r for r in resources_of(pipeline_synth.template, "AWS::IAM::Role").values()
                              if r["Properties"].get("RoleName") == "rc-fraud-detection-pipeline-checks"]
    assert pipeline_check_role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "codebuild.amazonaws.com"}
    import re

    assumed = [st["Resource"] for st in statements(pipeline_synth.template, "AWS::IAM::Policy", "PolicyDocument")
               if st["Action"] == "sts:AssumeRole" and "deploy-checks" in json.dumps(st["Resource"])]
    assert set(re.findall(r"arn:aws:iam::\d{12}:role/[a-z-]+", json.dumps(assumed))) == set(check_roles)
