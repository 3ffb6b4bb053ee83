"""The delivery pipeline: CDK Pipelines on CodePipeline/CodeBuild, deploying the
environments in the order `pipeline.stages` gives (default dev → staging → prod), each
to its own account and region.

source (CodeStar connection) → synth (the pinned CDK CLI, re-resolving approved model
versions) → self-update → dev → smoke test → staging → smoke test → release plan →
manual approval → prod → smoke test (a release plan and an approval before
every environment of tier prod). An approval in the model registry (EventBridge
"SageMaker Model Package State Change", Approved) starts it as a push does.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import pipelines
from constructs import Construct

from serving_config.paths import PROJECT_ROOT
from sagemaker_serving.pipeline_artifacts import ArtifactRetention, PipelineArtifacts
from sagemaker_serving.nag import acknowledge, acknowledge_in_compliance_packs, acknowledge_wildcard_resource
# Where the pipeline reads the repository (a CodeStar connection), validated by the config.
from serving_config.config import Environment, Pipeline as PipelineSource
from serving_config.model_package import REFRESH_CONTEXT_KEY, DeploymentChecks, RegistrySettings, ResolvedPackage
from serving_config.names import (pipeline_artifacts_bucket_name, pipeline_check_role_name, pipeline_stack_name,
                                  project_prefix)
from stacks.serving_stack import ServingStack

BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0
# Self-mutation and asset publishing install their CLIs with `npm install -g`: pin them
# as the synth's is pinned (the CDK CLI: package.json; cdk-assets: npm's latest, 2026-11).
CDK_CLI_VERSION = json.loads((PROJECT_ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
CDK_ASSETS_VERSION = "4.7.3"
# The project's Python tools in a build (the CDK CLI comes from package-lock.json via npm ci).
INSTALL_PYTHON = [
    "python3 -m venv .venv",
    ".venv/bin/pip install -q -r requirements.txt",
    ".venv/bin/pip install -q --no-deps -e .",
]


class ServingStage(cdk.Stage):
    """One environment's ServingStack, deployed to its account and region."""

    def __init__(self, scope: Construct, id: str, *, environment: Environment, **stack_kwargs) -> None:
        super().__init__(scope, id, env=cdk.Environment(account=environment.account, region=environment.region))
        self.serving = ServingStack(self, "Serving", environment=environment, **stack_kwargs)


def assume(role_arn: str, region: str, session: str) -> list[str]:
    """Shell lines that make the rest of a build step act as `role_arn` in `region`
    (a failed assume-role fails the step: the assignment carries its exit status)."""
    return [
        f"CREDENTIALS=$(aws sts assume-role --role-arn {role_arn} --role-session-name {session} "
        "--query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text)",
        'read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN <<< "$CREDENTIALS"',
        f"export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION={region} AWS_DEFAULT_REGION={region}",
    ]


def pipeline_problems(source: PipelineSource, environments: Sequence[Environment],
                      model_packages: Mapping[str, ResolvedPackage]) -> list[str]:
    """What stops a pipeline before anything deploys, one line each (key, value, allowed)."""
    # The source's connection ARN and repository were validated with the configuration.
    problems = []
    for env in environments:
        for key in ("account", "region"):
            if getattr(env, key) is None:
                problems.append(f"environments.{env.name}.{key}: got null; allowed: the {key} the pipeline deploys "
                                f"{env.name} to (a pipeline deploys every environment to its own account and region)")
        if env.model_package is None and env.name not in model_packages and not env.model_data.startswith("s3://"):
            problems.append(f"environments.{env.name}.model_data: got {json.dumps(env.model_data)}; allowed: model_package "
                            "or an s3:// URL (the pipeline synthesizes from the repository, where a local archive is not)")
    return problems


class PipelineStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        source: PipelineSource,
        environments: Sequence[Environment],
        registry: RegistrySettings,
        model_packages: Mapping[str, ResolvedPackage] | None = None,
        retention: ArtifactRetention = ArtifactRetention(),
        **kwargs,
    ) -> None:
        problems = pipeline_problems(source, environments, model_packages or {})
        if problems:
            raise ValueError("the pipeline cannot be built:\n" + "\n".join(f"  - {p}" for p in problems))
        home = next((e for e in environments if e.name == registry.environment), environments[0])
        project = home.project
        super().__init__(
            scope, id,
            stack_name=pipeline_stack_name(project),
            description=f"{project.project_camel} delivery pipeline: {' -> '.join(e.name for e in environments)}",
            # The pipeline lives where the model registry is: SageMaker's approval events
            # are delivered to that account's and region's default event bus.
            env=cdk.Environment(account=home.account, region=home.region),
            **kwargs,
        )
        self.artifacts = PipelineArtifacts(
            self, "Artifacts", bucket_name=pipeline_artifacts_bucket_name(project),
            log_group_name=f"/aws/codebuild/{project_prefix(project)}-pipeline", retention=retention,
            # the registry environment's log bucket: its stack lets S3 log delivery write for ours
            log_bucket_name=home.access_log_bucket_name if home.bucket == "create" else None,
        )
        registry = dataclasses.replace(registry, pipeline_artifacts_bucket=pipeline_artifacts_bucket_name(project))
        repository = pipelines.CodePipelineSource.connection(source.repository, source.branch,
                                                              connection_arn=source.connection_arn)
        # One role for every check step: the environments' check roles trust exactly it.
        self.check_role = iam.Role(
            self, "CheckRole",
            role_name=pipeline_check_role_name(project),
            assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
            description="The pipeline's smoke tests and release plan; assumes each environment's check role",
        )
        synth = self._synth_step(repository, registry)
        self.pipeline = self._code_pipeline(project_prefix(project), synth)
        self.stages = [self._add_stage(env, environments, registry, model_packages or {}, repository, synth)
                       for env in environments]
        self.pipeline.build_pipeline()
        self.approval_rule = self._start_on_approval(registry)
        self._acknowledge_pipeline_findings()

    def _synth_step(self, repository: pipelines.IFileSetProducer, registry: RegistrySettings) -> pipelines.CodeBuildStep:
        registry_group_arn = self.format_arn(service="sagemaker", resource="model-package-group",
                                             resource_name=registry.group_name)
        registry_versions_arn = self.format_arn(service="sagemaker", resource="model-package",
                                                resource_name=f"{registry.group_name}/*")
        return pipelines.CodeBuildStep(
            "Synth",
            input=repository,
            install_commands=["npm ci", *INSTALL_PYTHON],
            # Re-resolve `<group>:latest-approved`: an approval must deploy the version approved.
            commands=["export PATH=$PWD/node_modules/.bin:$PATH",  # the CDK CLI and Node 22 from package.json
                      f"npx cdk synth -c pipeline=true -c {REFRESH_CONTEXT_KEY}=true"],
            primary_output_directory="cdk.out",
            role_policy_statements=[iam.PolicyStatement(
                sid="ResolveApprovedModelVersions",
                actions=["sagemaker:DescribeModelPackageGroup", "sagemaker:ListModelPackages", "sagemaker:DescribeModelPackage"],
                resources=[registry_group_arn, registry_versions_arn],
            )],
        )

    def _code_pipeline(self, name: str, synth: pipelines.CodeBuildStep) -> pipelines.CodePipeline:
        """CDK Pipelines over our artifacts bucket, every build (synth, self-mutation,
        assets, checks) logging to our log group."""
        return pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=name,
            synth=synth,
            artifact_bucket=self.artifacts.bucket,
            cross_account_keys=True,  # stages deploy into other accounts
            cli_version=CDK_CLI_VERSION,
            cdk_assets_cli_version=CDK_ASSETS_VERSION,
            enable_key_rotation=True,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE),
                logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(
                    log_group=self.artifacts.log_group)),
                # bash: `<<<` and pipefail in the check steps; Python 3.11 as requires-python allows.
                partial_build_spec=codebuild.BuildSpec.from_object({
                    "env": {"shell": "bash"},
                    "phases": {"install": {"runtime-versions": {"python": "3.11"}}},
                }),
            ),
        )

    def _add_stage(self, env: Environment, environments: Sequence[Environment], registry: RegistrySettings,
                   model_packages: Mapping[str, ResolvedPackage], repository: pipelines.IFileSetProducer,
                   synth: pipelines.IFileSetProducer) -> "ServingStage":
        """`env`'s stack, its smoke test after, and before prod the release plan and the approval."""
        check_role_arn = self.format_arn(service="iam", region="", resource="role",
                                         resource_name=pipeline_check_role_name(env.project))
        stage = ServingStage(
            self, env.env_camel, environment=env,
            model_registry=registry if env.name == registry.environment else None,
            registry_readers=[e.account for e in environments],
            deployment_checks=DeploymentChecks(role_name=env.deploy_checks_role_name, trusted_role_arn=check_role_arn),
            model_package=model_packages.get(env.name),
        )
        target_role = f"arn:{self.partition}:iam::{env.account}:role/{env.deploy_checks_role_name}"
        pre: list[pipelines.Step] = []
        if env.tier == "prod":
            # The plan compares the deployed stack (read as the check role) with this synth's.
            head = f"cdk.out/{stage.artifact_id}"  # the stage's nested assembly folder
            plan = self._check_step(
                "ReleasePlan", repository, target_role, env,
                ["set -o pipefail", f"python -m endpointctl.deployed --env {env.name} --out deployed-assembly",
                 f"endpointctl plan --base deployed-assembly --head {head} --env {env.name} | tee release-plan/plan.md"],
                output="release-plan", assembly=synth,
            )
            approval = pipelines.ManualApprovalStep(
                "ApproveProd", comment="Read the ReleasePlan step's output (its log, release-plan/plan.md), then approve")
            approval.add_step_dependency(plan)
            pre = [plan, approval]
        smoke = self._check_step(f"SmokeTest{env.env_camel}", repository, target_role, env,
                                 [f"endpointctl smoke-test --env {env.name}"])
        self.pipeline.add_stage(stage, pre=pre, post=[smoke])
        return stage

    def _start_on_approval(self, registry: RegistrySettings) -> events.Rule:
        return events.Rule(
            self,
            "OnModelApproval",
            description=f"Start the pipeline when a version of {registry.group_name} is approved",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Model Package State Change"],
                detail={"ModelPackageGroupName": [registry.group_name], "ModelApprovalStatus": ["Approved"]},
            ),
            targets=[targets.CodePipeline(self.pipeline.pipeline)],
        )

    def _check_step(self, id: str, repository: pipelines.IFileSetProducer, target_role: str, env: Environment,
                    commands: list[str], output: str | None = None,
                    assembly: pipelines.IFileSetProducer | None = None) -> pipelines.CodeBuildStep:
        return pipelines.CodeBuildStep(
            id,
            input=repository,
            additional_inputs={"cdk.out": assembly} if assembly else None,
            install_commands=INSTALL_PYTHON,
            commands=[*assume(target_role, env.region or self.region, f"{id}"[:64]),
                      *([f"mkdir -p {output}"] if output else []),
                      "export PATH=$PWD/.venv/bin:$PATH", *commands],
            primary_output_directory=output,
            role=self.check_role,
            role_policy_statements=[iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[target_role])],
        )

    def _acknowledge_pipeline_findings(self) -> None:
        """CDK Pipelines' own roles and projects (the bucket, key and log group are ours,
        PipelineArtifacts): each finding acknowledged on the construct that causes it, its
        id rendered from the policy itself, with why."""
        for construct in self.node.find_all():
            if isinstance(construct, cdk.Stage) or cdk.Stack.of(construct) is not self:
                continue  # the stages' stacks acknowledge their own
            if isinstance(construct, iam.CfnPolicy):
                for statement in self.resolve(construct.policy_document)["Statement"]:
                    _acknowledge_statement(construct, statement)
            elif isinstance(construct, iam.Role):
                acknowledge_in_compliance_packs(construct, "IAMNoInlinePolicy", PIPELINE_POLICY_REASON)
            elif isinstance(construct, codebuild.CfnProject):
                acknowledge_in_compliance_packs(
                    construct, "CodeBuildProjectSourceRepoUrl",
                    "The project's source is CODEPIPELINE: it receives artifacts from the pipeline (the repository comes "
                    "through the CodeStar connection); no repository URL or credential is in the project")
        # cfn-lint, on CDK Pipelines' own rendering of the pipeline: the stages' deploy-role
        # ARNs are Fn::Join'ed around the partition (E3703 prefers Fn::Sub; valid either
        # way), and the pipeline repeats a dependency on its role that RoleArn implies (W3005).
        pipeline_resource = self.pipeline.pipeline.node.default_child
        assert isinstance(pipeline_resource, cdk.CfnResource)
        pipeline_resource.add_metadata("cfn-lint", {"config": {"ignore_checks": ["E3703", "W3005"]}})


PIPELINE_POLICY_REASON = (
    "CDK Pipelines creates each role's DefaultPolicy with the role, for exactly one build project or pipeline action; "
    "inline keeps it from being attached to any other principal"
)


def _wildcard_reason(value: str) -> str | None:
    """Why CDK Pipelines (or our synth step) needs this wildcard; None for one we did not expect."""
    if value.startswith(("s3:", "kms:")) or "ArtifactsBucket" in value:
        return "CDK Pipelines' grant on this pipeline's own artifact bucket and its key: steps read and write run artifacts"
    if ":log-group:/aws/codebuild/" in value:
        return ("CDK's CodeBuild project always grants its default log group /aws/codebuild/<project>, with no hook "
                "to leave it out; unused, as every build logs to the pipeline's own encrypted log group")
    if ":report-group/" in value:
        return "CodeBuild report groups of a project are named after the project"
    if ":model-package/" in value:
        return "every version of the registry's group: the synth looks for the latest Approved one"
    if value.startswith("arn:*:iam::"):
        return "self-mutation assumes only the CDK bootstrap roles (condition on the aws-cdk:bootstrap-role tag)"
    return None


def _acknowledge_statement(policy: iam.CfnPolicy, statement: dict) -> None:
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    for action in actions:
        if "*" in action and (reason := _wildcard_reason(action)):
            acknowledge(policy, f"AwsSolutions-IAM5[Action::{action}]", reason)
    for resource in resources:
        if resource == "*":
            if set(actions) <= {"codebuild:BatchGetBuilds", "codebuild:StartBuild", "codebuild:StopBuild"}:
                acknowledge(policy, "AwsSolutions-IAM5[Resource::*]",
                            "CDK Pipelines' asset publishing starts its own CodeBuild projects, whose names CDK generates")
            elif set(actions) <= {"cloudformation:DescribeStacks", "s3:ListBucket"}:
                acknowledge(policy, "AwsSolutions-IAM5[Resource::*]",
                            "self-mutation runs `cdk deploy` of this stack, which looks up stacks and the bootstrap bucket")
            continue
        rendered = json.dumps(resource) if not isinstance(resource, str) else resource
        if "*" in rendered and (reason := _wildcard_reason(rendered)):
            acknowledge_wildcard_resource(policy, resource, reason)
