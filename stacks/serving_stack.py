"""One environment's stack: the model, endpoint, alarms and batch transform access.

`ServingStack` is wiring: each unit below is a construct that owns its decisions, built
in the template's order (each adds statements to the roles built before it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from sagemaker_serving.alarms import EndpointAlarms
from sagemaker_serving.autoscaling import InstanceCountScaling, ProvisionedConcurrencyScaling
from sagemaker_serving.batch import BatchTransform
from sagemaker_serving.dashboard import EndpointDashboard
from sagemaker_serving.deployment_checks import DeploymentCheckRole
from sagemaker_serving.endpoint import DataCapture, InstanceVariant, ServerlessVariant, ServingEndpoint
from serving_config.config import Environment, ServerlessEndpoint
from serving_config.model_package import DeploymentChecks, RegistrySettings, ResolvedPackage
from serving_config.paths import HANDLER_DIR
from stacks.data_store import DataStore
from stacks.delivery import deploys_package, model_registry_of
from stacks.live_monitor import watch_live_model
from stacks.served_models import ServedModels


class ServingStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        environment: Environment,
        handler_dir: Path = HANDLER_DIR,
        model_registry: RegistrySettings | None = None,
        registry_readers: Sequence[str] = (),
        deployment_checks: DeploymentChecks | None = None,
        model_package: ResolvedPackage | None = None,
        **kwargs,
    ) -> None:
        """`model_registry`: this stack creates the registry (group and archive bucket),
        readable by `registry_readers` accounts. `deployment_checks`: the role a
        pipeline assumes here to smoke-test the endpoint and plan the release.
        `model_package`: the approved version the environment's `model_package` resolved
        to; its archive (model and handler, approved together) replaces `model_data` for
        the endpoint's and the batch model, each with its environment as today."""
        env = environment
        super().__init__(
            scope, id, stack_name=env.stack_name,
            description=f"{env.project.project_camel} model served by SageMaker ({env.name}, {env.endpoint.kind})",
            env=cdk.Environment(account=env.account, region=env.region) if env.account or env.region else None,
            **kwargs,
        )
        self.environment_config = env
        # The access logs outlive the environment when they also log the registry, which is retained.
        self.data = DataStore(self, "DataStore", environment=env, keep_access_logs=env.retain_data or bool(model_registry),
                              pipeline_logs_here=bool(model_registry and model_registry.pipeline_artifacts_bucket))
        self.key, self.bucket = self.data.key, self.data.bucket
        self.models = ServedModels(self, "ServedModels", environment=env, handler_dir=handler_dir,
                                   model_package=model_package)
        self.inference_role = self.models.role
        self.endpoint = serving_endpoint(self, env, self.models, self.data)
        self.topic = alarm_topic(self, env, self.key)
        paging = [sns.Topic.from_topic_arn(self, "PagingTopic", env.alarms.topic_arn)] if env.alarms.topic_arn else []
        self.alarms = EndpointAlarms(self, "Alarms", endpoint=self.endpoint, topics=[self.topic, *paging],
                                     thresholds=env.alarms)
        endpoint_scaling(self, env, self.endpoint)
        rollout(self, env, self.endpoint, self.alarms, self.inference_role)
        endpoint_role_grants(env, self.endpoint, self.data, self.inference_role)
        self.log_group = endpoint_log_group(self, env, self.endpoint, self.data)
        self.dashboard = EndpointDashboard(self, "Dashboard", endpoint=self.endpoint)
        self.monitor = watch_live_model(self, env, model_package)
        self.batch = BatchTransform(
            self, "BatchTransform", bucket=self.bucket, role_name=env.batch_role_name, role_path=env.iam_path,
            image=self.models.image, model_data=self.models.batch_model_data, source=self.models.source,
            job_name_prefix=env.transform_job_prefix, max_payload_bytes=env.batch.payload_limit_bytes,
            kms_key=self.key, network=self.models.batch_network,
        )
        stack_outputs(self, env)
        self.registry = model_registry_of(self, model_registry, registry_readers, self.data)
        checks = DeploymentCheckRole(self, "DeploymentChecks", endpoint=self.endpoint, **vars(deployment_checks)
                                     ) if deployment_checks is not None else None
        if model_package is not None:
            deploys_package(self, model_package, registry=self.registry, roles=[self.inference_role, self.batch.role],
                            checks=checks.role if checks else None)
        for key, value in env.tags.items():
            cdk.Tags.of(self).add(key, value)


def serving_endpoint(stack: cdk.Stack, env: Environment, models: ServedModels, data: DataStore) -> ServingEndpoint:
    """One serverless variant, or instance variants (A/B) with data capture to `data-capture/`."""
    if isinstance(env.endpoint, ServerlessEndpoint):
        return ServingEndpoint(
            stack, "Endpoint", endpoint_name=env.endpoint_name, kms_key=data.key,
            serverless=ServerlessVariant(model=models.model_for(None), capacity=env.endpoint),
        )
    capture, shadow = env.endpoint.data_capture_percent, env.endpoint.shadow
    return ServingEndpoint(
        stack, "Endpoint", endpoint_name=env.endpoint_name, kms_key=data.key,
        data_capture=DataCapture(destination_s3_uri=data.data_capture_uri, sampling_percent=capture) if capture else None,
        retain_instance_counts=env.endpoint.autoscaling is not None or (shadow is not None and shadow.autoscaling is not None),
        instance_variants=[InstanceVariant(model=models.model_for(v.model_data), fleet=v) for v in env.endpoint.variants],
        shadow=InstanceVariant(model=models.model_for(shadow.model_data), fleet=shadow.fleet(env.endpoint.variants[0]))
        if shadow is not None else None,
    )


def alarm_topic(stack: cdk.Stack, env: Environment, key: kms.IKey) -> sns.Topic:
    topic = sns.Topic(stack, "AlarmTopic", display_name=f"{env.endpoint_name} alarms", master_key=key, enforce_ssl=True)
    if env.alarms.email:
        topic.add_subscription(subscriptions.EmailSubscription(env.alarms.email))
    return topic


def endpoint_scaling(stack: cdk.Stack, env: Environment, endpoint: ServingEndpoint) -> None:
    """Provisioned concurrency (serverless) or instance count (instance-backed), from config."""
    settings = env.endpoint
    if isinstance(settings, ServerlessEndpoint):
        if settings.provisioned_scaling is not None:
            ProvisionedConcurrencyScaling(stack, "Autoscaling", endpoint=endpoint, settings=settings.provisioned_scaling)
    elif settings.autoscaling is not None:
        InstanceCountScaling(stack, "Autoscaling", endpoint=endpoint, settings=settings.autoscaling)


def rollout(stack: cdk.Stack, env: Environment, endpoint: ServingEndpoint, alarms: EndpointAlarms,
            role: iam.IRole) -> None:
    """Deployment guardrails from config; where the service offers none, say so at synth."""
    if isinstance(env.endpoint, ServerlessEndpoint):
        cdk.Annotations.of(endpoint).add_info(
            "serverless endpoint: SageMaker offers no deployment guardrails; an update shifts all traffic at once "
            "when the new config is ready, and a failed update leaves the old config serving"
        )
        return
    if env.endpoint.rollout is None:
        cdk.Annotations.of(endpoint).add_info(
            "no rollout configured: endpoint updates replace the fleet without traffic shifting or alarm rollback"
        )
        return
    endpoint.use_deployment_guardrails(env.endpoint.rollout, rollback_alarm_names=alarms.rollback_alarm_names)
    endpoint.node.add_dependency(alarms)  # rollback alarms exist before any update
    if isinstance(role, iam.Role):
        # SageMaker reads the rollback alarms as the model's execution role: without
        # cloudwatch:DescribeAlarms the guardrails cannot watch them (reference, "Second deploys").
        rollback_alarms = [stack.format_arn(service="cloudwatch", resource="alarm", resource_name=name,
                                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)
                           for name in alarms.rollback_alarm_names]
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadRollbackAlarms", actions=["cloudwatch:DescribeAlarms"], resources=rollback_alarms))


def endpoint_role_grants(env: Environment, endpoint: ServingEndpoint, data: DataStore, role: iam.IRole) -> None:
    """What the instance-backed endpoint does as its model's role: write captured
    requests, use the data key. An imported role is granted by whoever owns it."""
    if endpoint.serverless or not isinstance(role, iam.Role):
        return
    if env.endpoint.data_capture_percent:
        data.grant_write_data_capture(role)
    data.grant_encrypt_decrypt(role)


def endpoint_log_group(stack: cdk.Stack, env: Environment, endpoint: ServingEndpoint, data: DataStore) -> logs.LogGroup:
    # SageMaker writes here; created first so retention and encryption are ours.
    log_group = logs.LogGroup(stack, "EndpointLogs", log_group_name=env.endpoint_log_group,
                              encryption_key=data.key, removal_policy=data.removal_policy)
    # Config holds days (validated against CloudWatch's allowed values).
    log_group.node.default_child.retention_in_days = env.log_retention_days
    # The group exists before the endpoint starts and outlives its deletion: if
    # SageMaker wrote first, or last, it would create the group itself (no retention,
    # no key) and the next deploy would fail on "already exists".
    endpoint.resource.node.add_dependency(log_group)
    return log_group


def stack_outputs(stack: "ServingStack", env: Environment) -> None:
    outputs = {
        "EndpointName": (stack.endpoint.endpoint_name, "Name for InvokeEndpoint"),
        "InvocationUrl": (
            f"https://runtime.sagemaker.{stack.region}.{stack.url_suffix}/endpoints/{env.endpoint_name}/invocations",
            "SigV4-signed POST target (service 'sagemaker')",
        ),
        "InferenceRoleArn": (stack.inference_role.role_arn, "Execution role of the endpoint's model"),
        "BatchRoleArn": (stack.batch.role.role_arn, "Execution role of the batch transform model"),
        "BatchModelName": (stack.batch.model_name, "ModelName for CreateTransformJob"),
        "BatchLauncherPolicyArn": (stack.batch.launcher_policy.managed_policy_arn, "Attach to whoever starts transform jobs"),
        "BatchJobNamePrefix": (env.transform_job_prefix, "Transform job names must start with this"),
        "BucketName": (stack.bucket.bucket_name, "Bucket for batch input and output"),
        "BatchInputUri": (stack.batch.input_uri, "Upload transform inputs here"),
        "BatchOutputUri": (stack.batch.output_uri, "Transform outputs land here"),
        "AlarmTopicArn": (stack.topic.topic_arn, "Alarm notifications"),
        "DataKeyArn": (stack.key.key_arn, "KMS key of batch data, data capture and endpoint storage"),
        "DashboardName": (stack.dashboard.dashboard_name, "CloudWatch dashboard of the endpoint"),
    }
    for output_id, (value, description) in outputs.items():
        cdk.CfnOutput(stack, output_id, value=value, description=description)
