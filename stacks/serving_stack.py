"""One environment's stack: the model, endpoint, alarms and batch transform access."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from endpointctl.preflight import preflight_in_subprocess
from sagemaker_serving.alarms import AlarmThresholds, EndpointAlarms
from sagemaker_serving.batch import BatchTransform
from sagemaker_serving.endpoint import InstanceVariant, ServerlessVariant, ServingEndpoint
from sagemaker_serving.image import SklearnImage
from sagemaker_serving.model import ModelData, SklearnModel, SourceBundle
from sagemaker_serving.nag import acknowledge
from stacks.config import PROJECT_ROOT, Environment, ServerlessEndpoint

HANDLER_DIR = PROJECT_ROOT / "inference"
HANDLER_PROGRAM = "inference.py"
ENDPOINT_LOG_GROUP = "/aws/sagemaker/Endpoints/"


def resolve_model_data(
    reference: str, *, payload_limit_bytes: int, handler_dir: Path, framework_version: str
) -> ModelData:
    """An s3:// URL as it is; a local artifact only once the preflight accepts it,
    so a broken model stops the synth instead of an endpoint ten minutes later."""
    if reference.startswith("s3://"):
        return ModelData.from_s3_url(reference)
    path = Path(reference)
    path = path if path.is_absolute() else PROJECT_ROOT / path
    if path.is_file():
        preflight_in_subprocess(
            path, handler_dir=handler_dir, max_response_bytes=payload_limit_bytes, framework_version=framework_version
        )
    return ModelData.from_asset(path)


class ServingStack(cdk.Stack):
    def __init__(
        self, scope: Construct, id: str, *, environment: Environment, handler_dir: Path = HANDLER_DIR, **kwargs
    ) -> None:
        env = environment
        super().__init__(
            scope,
            id,
            stack_name=env.stack_name,
            description=f"{env.project.project_camel} model served by SageMaker ({env.name}, {env.endpoint.kind})",
            env=cdk.Environment(account=env.account, region=env.region) if env.account or env.region else None,
            **kwargs,
        )
        self.environment_config = env
        removal = cdk.RemovalPolicy.RETAIN if env.retain_data else cdk.RemovalPolicy.DESTROY
        image = SklearnImage(env.project.framework_version)
        source = SourceBundle.from_directory(handler_dir, program=HANDLER_PROGRAM)

        self.bucket = self._bucket(env, removal)
        self.inference_role = self._inference_role(env)

        # ------------------------------------------------------------- models
        limit = env.endpoint.payload_limit_bytes
        artifacts: dict[str, ModelData] = {}

        def artifact(reference: str) -> ModelData:
            if reference not in artifacts:  # one preflight per artifact
                artifacts[reference] = resolve_model_data(
                    reference,
                    payload_limit_bytes=limit,
                    handler_dir=handler_dir,
                    framework_version=env.project.framework_version,
                )
            return artifacts[reference]

        models: dict[str, SklearnModel] = {}

        def model_for(reference: str) -> SklearnModel:
            if reference not in models:
                construct_id = "Model" if not models else f"Model{len(models) + 1}"
                models[reference] = SklearnModel(
                    self,
                    construct_id,
                    role=self.inference_role,
                    image=image,
                    model_data=artifact(reference),
                    source=source,
                    log_group_prefix=ENDPOINT_LOG_GROUP + env.endpoint_name,
                    max_request_bytes=limit,
                )
            return models[reference]

        # ----------------------------------------------------------- endpoint
        if isinstance(env.endpoint, ServerlessEndpoint):
            self.endpoint = ServingEndpoint(
                self,
                "Endpoint",
                endpoint_name=env.endpoint_name,
                serverless=ServerlessVariant(
                    model=model_for(env.model_data),
                    memory_mb=env.endpoint.memory_mb,
                    max_concurrency=env.endpoint.max_concurrency,
                    provisioned_concurrency=env.endpoint.provisioned_concurrency,
                ),
            )
        else:
            self.endpoint = ServingEndpoint(
                self,
                "Endpoint",
                endpoint_name=env.endpoint_name,
                instance_variants=[
                    InstanceVariant(
                        model=model_for(v.model_data or env.model_data),
                        instance_type=v.instance_type,
                        instance_count=v.instance_count,
                        weight=v.weight,
                        name=v.name,
                    )
                    for v in env.endpoint.variants
                ],
            )

        # ------------------------------------------------------------- alarms
        self.topic = self._alarm_topic(env, removal)
        self.alarms = EndpointAlarms(
            self,
            "Alarms",
            endpoint=self.endpoint,
            endpoint_name=env.endpoint_name,
            topic=self.topic,
            thresholds=AlarmThresholds(
                model_latency_ms=env.alarms.model_latency_ms,
                memory_utilization_percent=env.alarms.memory_utilization_percent,
                client_error_rate_percent=env.alarms.client_error_rate_percent,
            ),
        )

        # -------------------------------------------------------------- batch
        self.batch = BatchTransform(
            self,
            "BatchTransform",
            bucket=self.bucket,
            role_name=env.batch_role_name,
            role_path=env.iam_path,
            image=image,
            model_data=artifact(env.model_data),
            source=source,
            job_name_prefix=env.transform_job_prefix,
            max_payload_bytes=env.batch.payload_limit_bytes,
        )

        self._outputs(env)
        for key, value in env.tags.items():
            cdk.Tags.of(self).add(key, value)

    # ------------------------------------------------------------------ parts
    def _bucket(self, env: Environment, removal: cdk.RemovalPolicy) -> s3.IBucket:
        if env.bucket == "import":
            return s3.Bucket.from_bucket_name(self, "Bucket", env.bucket_name)
        bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=env.bucket_name,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=env.retain_data,
            removal_policy=removal,
            # dev: `cdk destroy` empties and deletes the bucket (a CDK-provided Lambda).
            auto_delete_objects=not env.retain_data,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "Holds batch inputs/outputs only; object access is recorded by CloudTrail data events "
            "where the account enables them. Server access logs would need a second bucket per environment.",
        )
        if not env.retain_data:
            self._finish_auto_delete_provider(env)
        return bucket

    def _finish_auto_delete_provider(self, env: Environment) -> None:
        """CDK's auto-delete-objects provider is a raw CfnResource: the Tags aspect skips
        it, and it carries two findings of its own."""
        provider = self.node.try_find_child("Custom::S3AutoDeleteObjectsCustomResourceProvider")
        if provider is None:
            return
        acknowledge(
            provider,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's own auto-delete-objects provider (dev only); its role only writes its own logs.",
        )
        tags = [{"Key": k, "Value": v} for k, v in env.tags.items()]
        for child in provider.node.children:
            if isinstance(child, cdk.CfnResource) and child.cfn_resource_type in ("AWS::IAM::Role", "AWS::Lambda::Function"):
                child.add_property_override("Tags", tags)
        # cfn-lint W3005: CDK's provider template repeats a dependency a GetAtt already implies.
        handler = provider.node.try_find_child("Handler")
        if isinstance(handler, cdk.CfnResource):
            handler.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})

    def _inference_role(self, env: Environment) -> iam.IRole:
        if env.inference_role == "import":
            arn = self.format_arn(
                service="iam",
                region="",
                resource="role",
                resource_name=f"{env.iam_path.strip('/')}/{env.inference_role_name}",
            )
            # The platform team owns this role and its policies: never modify it.
            return iam.Role.from_role_arn(self, "InferenceRole", arn, mutable=False)
        role = iam.Role(
            self,
            "InferenceRole",
            role_name=env.inference_role_name,
            path=env.iam_path,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Execution role of the endpoint's model: reads its artifact and code, pulls the image, writes logs",
        )
        return role

    def _alarm_topic(self, env: Environment, removal: cdk.RemovalPolicy) -> sns.Topic:
        # A customer managed key: CloudWatch cannot publish to a topic under aws/sns.
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"Encrypts the alarm topic of {env.endpoint_name}",
            enable_key_rotation=True,
            removal_policy=removal,
            pending_window=cdk.Duration.days(7),
        )
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"{env.endpoint_name} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        if env.alarms.email:
            topic.add_subscription(subscriptions.EmailSubscription(env.alarms.email))
        return topic

    def _outputs(self, env: Environment) -> None:
        outputs = {
            "EndpointName": (self.endpoint.endpoint_name, "Name for InvokeEndpoint"),
            "InvocationUrl": (
                f"https://runtime.sagemaker.{self.region}.{self.url_suffix}/endpoints/{env.endpoint_name}/invocations",
                "SigV4-signed POST target (service 'sagemaker')",
            ),
            "InferenceRoleArn": (self.inference_role.role_arn, "Execution role of the endpoint's model"),
            "BatchRoleArn": (self.batch.role.role_arn, "Execution role of the batch transform model"),
            "BatchModelName": (self.batch.model_name, "ModelName for CreateTransformJob"),
            "BatchLauncherPolicyArn": (self.batch.launcher_policy.managed_policy_arn, "Attach to whoever starts transform jobs"),
            "BatchJobNamePrefix": (env.transform_job_prefix, "Transform job names must start with this"),
            "BucketName": (self.bucket.bucket_name, "Bucket for batch input and output"),
            "BatchInputUri": (self.batch.input_uri, "Upload transform inputs here"),
            "BatchOutputUri": (self.batch.output_uri, "Transform outputs land here"),
            "AlarmTopicArn": (self.topic.topic_arn, "Alarm notifications"),
        }
        for output_id, (value, description) in outputs.items():
            cdk.CfnOutput(self, output_id, value=value, description=description)
