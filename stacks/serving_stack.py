"""One environment's stack: the model, endpoint, alarms and batch transform access."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from serving_runtime.preflight import preflight_in_subprocess
from sagemaker_serving.access_logs import log_access
from sagemaker_serving.alarms import EndpointAlarms
from sagemaker_serving.autoscaling import InstanceCountScaling, ProvisionedConcurrencyScaling
from sagemaker_serving.dashboard import EndpointDashboard
from sagemaker_serving.batch import BatchTransform
from sagemaker_serving.endpoint import (
    DataCapture,
    InstanceVariant,
    ServerlessVariant,
    ServingEndpoint,
)
from sagemaker_serving.image import SklearnImage
from sagemaker_serving.deployment_checks import DeploymentCheckRole
from sagemaker_serving.monitoring import LiveModelMonitor, MonitoredEndpoint
from sagemaker_serving.model import ModelData, SklearnModel, SourceBundle, sagemaker_principal
from sagemaker_serving.registry import ModelRegistry
from sagemaker_serving.nag import acknowledge, acknowledge_in_compliance_packs, acknowledge_wildcard_resource
from sagemaker_serving.settings import DATA_CAPTURE_PREFIX, NetworkSettings
from serving_runtime.image import DEFAULT_PROGRAM, HANDLER_DIR, PROJECT_ROOT, image_uri
from stacks.config import Environment, ServerlessEndpoint
from stacks.model_package import DeploymentChecks, RegistrySettings, ResolvedPackage

SERVERLESS_NOT_ISOLATED = (
    "serverless endpoints take no network isolation (SageMaker); this environment's batch model is isolated"
)


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


class ModelFactory:
    """The endpoint's models, one per distinct artifact (`Model`, `Model2`, …), each
    artifact preflighted once; the batch model reuses the artifacts. Isolated unless the
    config turns it off with a reason; a serverless endpoint's model cannot be, and the
    synth says so (the batch model still is)."""

    def __init__(self, stack: cdk.Stack, env: Environment, *, role: iam.IRole, handler_dir: Path, default_model: str,
                 registered: bool = False):
        self.stack = stack
        self.env = env
        self.role = role
        self.handler_dir = handler_dir
        self.default_model = default_model
        self.image = SklearnImage(env.project.framework_version)
        self.source = SourceBundle.from_directory(handler_dir, program=DEFAULT_PROGRAM)
        self.network = env.network
        if isinstance(env.endpoint, ServerlessEndpoint) and env.network.isolation:
            self.network = NetworkSettings(isolation=False, isolation_off_reason=SERVERLESS_NOT_ISOLATED)
        self._artifacts: dict[str, ModelData] = {}
        if registered:
            # A registered version: preflighted when registered; its handler is inside,
            # approved with the model.
            self._artifacts[default_model] = ModelData.from_registered_package(default_model)
        self._models: dict[str, SklearnModel] = {}

    def artifact(self, reference: str) -> ModelData:
        if reference not in self._artifacts:  # one preflight per artifact
            self._artifacts[reference] = resolve_model_data(
                reference,
                payload_limit_bytes=self.env.endpoint.payload_limit_bytes,
                handler_dir=self.handler_dir,
                framework_version=self.env.project.framework_version,
            )
        return self._artifacts[reference]

    def endpoint_model(self, reference: str) -> SklearnModel:
        if reference not in self._models:
            construct_id = "Model" if not self._models else f"Model{len(self._models) + 1}"
            self._models[reference] = SklearnModel(
                self.stack,
                construct_id,
                role=self.role,
                image=self.image,
                model_data=self.artifact(reference),
                source=self.source,
                log_group_prefix=self.env.endpoint_log_group,
                max_request_bytes=self.env.endpoint.payload_limit_bytes,
                network=self.network,
            )
        return self._models[reference]


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
            scope,
            id,
            stack_name=env.stack_name,
            description=f"{env.project.project_camel} model served by SageMaker ({env.name}, {env.endpoint.kind})",
            env=cdk.Environment(account=env.account, region=env.region) if env.account or env.region else None,
            **kwargs,
        )
        self.environment_config = env
        removal = cdk.RemovalPolicy.RETAIN if env.retain_data else cdk.RemovalPolicy.DESTROY
        if model_package is not None:
            self._check_package_image(model_package, env)

        # The order is the template's: each unit adds statements to the roles built before it.
        self.key = self._data_key(env, removal)
        # The access logs outlive the environment when they also log the registry, which is retained.
        self.bucket = self._bucket(env, removal, keep_logs=env.retain_data or model_registry is not None)
        self.inference_role = self._inference_role(env)
        models = ModelFactory(
            self, env, role=self.inference_role, handler_dir=handler_dir,
            default_model=model_package.model_data_url if model_package is not None else env.model_data,
            registered=model_package is not None,
        )
        self.endpoint = self._endpoint(env, models)
        self.topic, self.alarms = self._alarms(env)
        self._scaling(env)
        self._rollout(env)
        self._endpoint_role_grants(env)
        self.log_group, self.dashboard = self._logs_and_dashboard(env, removal)
        self.monitor = self._monitoring(env, models)
        self.batch = self._batch(env, models)
        self._outputs(env)
        self._delivery(env, model_registry, registry_readers, model_package, deployment_checks)
        for key, value in env.tags.items():
            cdk.Tags.of(self).add(key, value)

    # ------------------------------------------------------------------ units
    def _endpoint(self, env: Environment, models: "ModelFactory") -> ServingEndpoint:
        """The endpoint and its config: one serverless variant, or instance variants
        (A/B) with data capture to `data-capture/`."""
        if isinstance(env.endpoint, ServerlessEndpoint):
            return ServingEndpoint(
                self,
                "Endpoint",
                endpoint_name=env.endpoint_name,
                serverless=ServerlessVariant(model=models.endpoint_model(models.default_model), capacity=env.endpoint),
                kms_key=self.key,
            )
        capture = env.endpoint.data_capture_percent
        return ServingEndpoint(
            self,
            "Endpoint",
            endpoint_name=env.endpoint_name,
            kms_key=self.key,
            data_capture=DataCapture(
                destination_s3_uri=f"s3://{self.bucket.bucket_name}/{DATA_CAPTURE_PREFIX}", sampling_percent=capture
            ) if capture else None,
            retain_instance_counts=env.endpoint.autoscaling is not None,
            instance_variants=[
                InstanceVariant(model=models.endpoint_model(v.model_data or models.default_model), fleet=v)
                for v in env.endpoint.variants
            ],
        )

    def _alarms(self, env: Environment) -> tuple[sns.Topic, EndpointAlarms]:
        """The alarms of every variant, to our encrypted topic and the paging topic if any."""
        topic = self._alarm_topic(env)
        paging = [sns.Topic.from_topic_arn(self, "PagingTopic", env.alarms.topic_arn)] if env.alarms.topic_arn else []
        alarms = EndpointAlarms(
            self,
            "Alarms",
            endpoint=self.endpoint,
            endpoint_name=env.endpoint_name,
            topics=[topic, *paging],
            thresholds=env.alarms,
        )
        return topic, alarms

    def _logs_and_dashboard(self, env: Environment, removal: cdk.RemovalPolicy) -> tuple[logs.LogGroup, EndpointDashboard]:
        log_group = logs.LogGroup(
            self,
            "EndpointLogs",
            # SageMaker writes here; created first so retention and encryption are ours.
            log_group_name=env.endpoint_log_group,
            encryption_key=self.key,
            removal_policy=removal,
        )
        # Config holds days (validated against CloudWatch's allowed values).
        log_group.node.default_child.retention_in_days = env.log_retention_days
        # The group exists before the endpoint starts and outlives its deletion: if
        # SageMaker wrote first, or last, it would create the group itself (no retention,
        # no key) and the next deploy would fail on "already exists".
        self.endpoint.resource.node.add_dependency(log_group)
        dashboard = EndpointDashboard(self, "Dashboard", endpoint=self.endpoint, endpoint_name=env.endpoint_name)
        return log_group, dashboard

    def _monitoring(self, env: Environment, models: "ModelFactory") -> LiveModelMonitor | None:
        """The scheduled monitor of an endpoint that captures (docs/monitoring.md), with a
        monitoring row on the dashboard; where there is nothing to monitor, the synth says why."""
        reason = monitoring_skipped(env)
        if reason is not None:
            cdk.Annotations.of(self.endpoint).add_info(f"no live-model monitor: {reason}")
            return None
        monitor = LiveModelMonitor(
            self, "Monitoring", watched=MonitoredEndpoint(env.endpoint_name, self.endpoint.variant_names[0]),
            settings=env.monitoring, baseline_file=monitoring_baseline(env), bucket=self.bucket, key=self.key,
            image=models.image, network=env.network, topics=[self.topic], job_name_prefix=env.stack_name)
        self.dashboard.dashboard.add_widgets(*monitor.dashboard_widgets())
        return monitor

    def _scaling(self, env: Environment) -> None:
        """Provisioned concurrency (serverless) or instance count (instance-backed), from config."""
        endpoint_config = env.endpoint
        if isinstance(endpoint_config, ServerlessEndpoint):
            if endpoint_config.provisioned_scaling is not None:
                ProvisionedConcurrencyScaling(self, "Autoscaling", endpoint=self.endpoint, endpoint_name=env.endpoint_name,
                                              settings=endpoint_config.provisioned_scaling)
        elif endpoint_config.autoscaling is not None:
            InstanceCountScaling(self, "Autoscaling", endpoint=self.endpoint, endpoint_name=env.endpoint_name,
                                 settings=endpoint_config.autoscaling)

    def _rollout(self, env: Environment) -> None:
        """Deployment guardrails from config; where the service offers none, say so at synth."""
        endpoint_config = env.endpoint
        if isinstance(endpoint_config, ServerlessEndpoint):
            cdk.Annotations.of(self.endpoint).add_info(
                "serverless endpoint: SageMaker offers no deployment guardrails; an update shifts all traffic at once "
                "when the new config is ready, and a failed update leaves the old config serving"
            )
            return
        if endpoint_config.rollout is None:
            cdk.Annotations.of(self.endpoint).add_info(
                "no rollout configured: endpoint updates replace the fleet without traffic shifting or alarm rollback"
            )
            return
        self.endpoint.use_deployment_guardrails(endpoint_config.rollout, rollback_alarm_names=self.alarms.rollback_alarm_names)
        self.endpoint.node.add_dependency(self.alarms)  # rollback alarms exist before any update
        if isinstance(self.inference_role, iam.Role):
            # SageMaker reads the rollback alarms as the model's execution role: without
            # cloudwatch:DescribeAlarms the guardrails cannot watch them (reference, "Second deploys").
            rollback_alarms = [self.format_arn(service="cloudwatch", resource="alarm", resource_name=name,
                                               arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)
                               for name in self.alarms.rollback_alarm_names]
            self.inference_role.add_to_principal_policy(iam.PolicyStatement(
                sid="ReadRollbackAlarms", actions=["cloudwatch:DescribeAlarms"], resources=rollback_alarms))

    def _endpoint_role_grants(self, env: Environment) -> None:
        """What the instance-backed endpoint does as its model's role: write captured
        requests, use the data key. An imported role is granted by whoever owns it."""
        if isinstance(env.endpoint, ServerlessEndpoint) or not isinstance(self.inference_role, iam.Role):
            return
        if env.endpoint.data_capture_percent:
            captured = self.bucket.arn_for_objects(f"{DATA_CAPTURE_PREFIX}*")
            self.inference_role.add_to_principal_policy(iam.PolicyStatement(
                sid="WriteDataCapture", actions=["s3:PutObject"], resources=[captured],
            ))
            acknowledge_wildcard_resource(self.inference_role, captured,
                                          "data capture writes one object per captured batch under data-capture/")
        self.key.grant(self.inference_role, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")

    def _batch(self, env: Environment, models: "ModelFactory") -> BatchTransform:
        """Batch Transform's own model (isolated unless turned off), role and launcher policy."""
        return BatchTransform(
            self,
            "BatchTransform",
            bucket=self.bucket,
            role_name=env.batch_role_name,
            role_path=env.iam_path,
            image=models.image,
            model_data=models.artifact(models.default_model),
            source=models.source,
            job_name_prefix=env.transform_job_prefix,
            max_payload_bytes=env.batch.payload_limit_bytes,
            kms_key=self.key,
            network=env.network,
        )

    def _delivery(
        self,
        env: Environment,
        model_registry: RegistrySettings | None,
        registry_readers: Sequence[str],
        model_package: ResolvedPackage | None,
        deployment_checks: DeploymentChecks | None,
    ) -> None:
        """What the delivery pipeline adds: the registry, the deployed version, the check role."""
        self.registry = ModelRegistry(
            self, "ModelRegistry", group_name=model_registry.group_name, bucket_name=model_registry.bucket_name,
            reader_accounts=[a for a in registry_readers if a], access_log_bucket=self.access_log_bucket,
        ) if model_registry is not None else None
        if self.registry is not None:
            cdk.CfnOutput(self, "ModelPackageGroupName", value=model_registry.group_name,
                          description="endpointctl register creates versions here")
            cdk.CfnOutput(self, "ModelRegistryBucketName", value=self.registry.bucket.bucket_name,
                          description="Archives of the registered versions")
        if model_package is not None:
            self._deploys_package(model_package, env)
        if deployment_checks is not None:
            DeploymentCheckRole(
                self, "DeploymentChecks", role_name=deployment_checks.role_name,
                trusted_role_arn=deployment_checks.trusted_role_arn, endpoint=self.endpoint,
                alarm_name_prefix=f"{env.endpoint_name}-",
            )

    # ------------------------------------------------------------------ parts
    def _check_package_image(self, package: ResolvedPackage, env: Environment) -> None:
        """The version must have been registered for the image this stack runs: the
        archive was preflighted against that image's scikit-learn."""
        region = self.region if not cdk.Token.is_unresolved(self.region) else package.arn.split(":")[3]
        expected = image_uri(env.project.framework_version, region)
        if package.image != expected:
            raise ValueError(
                f"model_package: version {package.version} of {package.group} was registered for {package.image}; "
                f"{env.name} runs {expected} (framework_version {env.project.framework_version}): register it again"
            )

    def _deploys_package(self, package: ResolvedPackage, env: Environment) -> None:
        """Record which version is deployed, and let the models decrypt its archive (the
        registry's key policy allows the other environments' accounts through S3)."""
        for model in self.node.find_all():
            if isinstance(model, sagemaker.CfnModel):  # the endpoint's models and the batch model
                cdk.Tags.of(model).add("ModelPackageArn", package.arn)
        cdk.CfnOutput(self, "ModelPackageArn", value=package.arn, description="The approved model version deployed")
        # The archive is encrypted with the registry's key: exactly that key when this
        # stack holds the registry, else any key of the registry's account, through S3 only.
        registry = self.registry
        registry_account = package.arn.split(":")[4]
        keys = registry.key.key_arn if registry else f"arn:{self.partition}:kms:{self.region}:{registry_account}:key/*"
        for role in (self.inference_role, self.batch.role):
            if not isinstance(role, iam.Role):
                continue  # an imported role is granted by whoever owns it
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="DecryptRegistryArchives", actions=["kms:Decrypt"], resources=[keys],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{self.region}.{self.url_suffix}"}},
            ))
            if registry is None:
                acknowledge_wildcard_resource(
                    role, keys, f"the registry's archives in account {registry_account} are encrypted with the "
                    "registry's key, whose id this stack cannot know at synth; only through S3 (kms:ViaService)")

    def _bucket(self, env: Environment, removal: cdk.RemovalPolicy, *, keep_logs: bool) -> s3.IBucket:
        self.access_log_bucket: s3.IBucket | None = None
        if env.bucket == "import":
            imported = s3.Bucket.from_bucket_name(self, "Bucket", env.bucket_name)
            cdk.Annotations.of(imported).add_info(
                f"bucket {env.bucket_name} is imported: its access logging and lifecycle rules are its owner's "
                "(the access_logs and retention settings apply to buckets this stack creates)"
            )
            return imported
        self.access_log_bucket = self._access_log_bucket(env, keep=keep_logs)
        bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=env.bucket_name,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=env.retain_data,
            removal_policy=removal,
            # dev: `cdk destroy` empties and deletes the bucket (a CDK-provided Lambda).
            auto_delete_objects=not env.retain_data,
            lifecycle_rules=data_lifecycle_rules(env),
        )
        log_access(bucket, bucket_name=env.bucket_name, to=self.access_log_bucket, sid="S3ServerAccessLogDelivery")
        acknowledge_in_compliance_packs(
            bucket,
            "S3BucketReplicationEnabled",
            "Batch outputs and captured data can be regenerated from their inputs; the bucket is versioned, "
            "KMS-encrypted and retained in prod. Cross-region copies are the platform team's DR decision.",
        )
        if not env.retain_data:
            acknowledge_in_compliance_packs(
                bucket, "S3BucketVersioningEnabled",
                f"{env.name} data is disposable: retain_data is off, so cdk destroy deletes this bucket and its objects",
            )
            self._finish_auto_delete_provider(env)
        return bucket

    def _access_log_bucket(self, env: Environment, *, keep: bool) -> s3.IBucket:
        """The target of the data bucket's access logs: an existing bucket from config, or
        one created here as S3 log delivery requires — SSE-S3 (log delivery cannot use
        SSE-KMS), no Object Lock, and a bucket policy letting logging.s3.amazonaws.com
        put objects only for our bucket and account (`log_access`)."""
        logs_config = env.access_logs
        if logs_config.bucket:
            existing = s3.Bucket.from_bucket_name(self, "AccessLogBucket", logs_config.bucket)
            cdk.Annotations.of(existing).add_info(
                f"access logs go to the existing bucket {logs_config.bucket}: its policy must let "
                f"logging.s3.amazonaws.com s3:PutObject under {env.bucket_name}/ with aws:SourceArn = this stack's "
                "bucket and aws:SourceAccount = this account (README, Access logs)"
            )
            return existing
        rules = [s3.LifecycleRule(
            id="AbortIncompleteUploads", abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
        )]
        if logs_config.retention_days is not None:
            rules.append(s3.LifecycleRule(
                id="ExpireAccessLogs",
                expiration=cdk.Duration.days(logs_config.retention_days),
                noncurrent_version_expiration=(
                    cdk.Duration.days(env.lifecycle.noncurrent_version_days)
                    if keep and env.lifecycle.noncurrent_version_days is not None else None
                ),
            ))
        log_bucket = s3.Bucket(
            self,
            "AccessLogBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=keep,
            removal_policy=cdk.RemovalPolicy.RETAIN if keep else cdk.RemovalPolicy.DESTROY,
            auto_delete_objects=not keep,
            lifecycle_rules=rules,
        )
        itself = (
            "This is the access-log bucket: logging it into itself loops (S3 guide), and a third bucket would "
            "only move the question; object-level API calls on it are in CloudTrail data events where enabled"
        )
        acknowledge(log_bucket, "AwsSolutions-S1", itself)
        acknowledge_in_compliance_packs(log_bucket, "S3BucketLoggingEnabled", itself)
        acknowledge_in_compliance_packs(
            log_bucket, "S3DefaultEncryptionKMS",
            "S3 server access log delivery writes only to buckets encrypted with SSE-S3, not SSE-KMS (S3 guide, "
            "enable-server-access-logging); the logs hold request metadata, not the objects",
        )
        acknowledge_in_compliance_packs(
            log_bucket, "S3BucketReplicationEnabled",
            "Access logs are kept in this region for the configured retention; copying them elsewhere is the "
            "platform team's log-archive decision",
        )
        if not keep:
            acknowledge_in_compliance_packs(
                log_bucket, "S3BucketVersioningEnabled",
                f"{env.name} access logs are disposable with the environment: retain_data is off, so cdk destroy "
                "deletes this bucket with the data bucket it logs",
            )
        return log_bucket

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
            assumed_by=sagemaker_principal(self),
            description="Execution role of the endpoint's model: reads its artifact and code, pulls the image, writes logs",
        )
        return role

    def _data_key(self, env: Environment, removal: cdk.RemovalPolicy) -> kms.IKey:
        """One key for the bucket (batch data, data capture), endpoint storage, logs and
        the alarm topic: created with rotation, or the platform team's, imported."""
        if env.encryption.mode == "import":
            assert env.encryption.key_arn is not None
            return kms.Key.from_key_arn(self, "DataKey", env.encryption.key_arn)
        key = kms.Key(
            self,
            "DataKey",
            description=f"Encrypts {env.stack_name}: batch data, data capture, endpoint storage, logs, alarms",
            enable_key_rotation=True,
            removal_policy=removal,
            pending_window=cdk.Duration.days(7),
        )
        # Grants only for AWS resources (Control Tower CT.KMS.PR.3): nobody may grant this
        # key onward by hand, while SageMaker still creates the grants an endpoint's
        # storage needs (CreateEndpoint with KmsKeyId: a grant for an AWS resource, made
        # by the service on the caller's behalf).
        key.add_to_resource_policy(iam.PolicyStatement(
            sid="GrantsOnlyForAwsResources",
            effect=iam.Effect.DENY,
            principals=[iam.StarPrincipal()],  # "Principal": "*", as the control reads it
            actions=["kms:CreateGrant"],
            resources=["*"],
            conditions={"BoolIfExists": {"kms:GrantIsForAWSResource": "false", "aws:PrincipalIsAWSService": "false"}},
        ))
        # CloudWatch publishes this account's alarms to the encrypted topic (aws/sns would
        # refuse it); only for alarms of this account and region (confused deputy).
        key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com", conditions={
                "StringEquals": {"aws:SourceAccount": self.account},
                "ArnLike": {"aws:SourceArn": self.format_arn(
                    service="cloudwatch", resource="alarm", resource_name="*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)},
            }),
            "kms:Decrypt", "kms:GenerateDataKey*",
        )
        # CloudWatch Logs encrypts the endpoint's log group, scoped to that group.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                principals=[iam.ServicePrincipal(f"logs.{self.region}.{self.url_suffix}")],
                resources=["*"],
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": self.format_arn(
                    service="logs", resource="log-group", resource_name=env.endpoint_log_group,
                    arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)}},
            )
        )
        return key

    def _alarm_topic(self, env: Environment) -> sns.Topic:
        topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"{env.endpoint_name} alarms",
            master_key=self.key,
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
            "DataKeyArn": (self.key.key_arn, "KMS key of batch data, data capture and endpoint storage"),
            "DashboardName": (self.dashboard.dashboard_name, "CloudWatch dashboard of the endpoint"),
        }
        for output_id, (value, description) in outputs.items():
            cdk.CfnOutput(self, output_id, value=value, description=description)


def monitoring_baseline(env: Environment) -> Path:
    """The baseline the environment's model is watched against: `monitoring.baseline`, else
    <model>.baseline.json beside a local model_data (as `endpointctl train-sample` writes it)."""
    named = env.monitoring.baseline or re.sub(r"\.tar\.gz$", ".baseline.json", env.model_data)
    path = Path(named) if Path(named).is_absolute() else PROJECT_ROOT / named
    return path


def monitoring_skipped(env: Environment) -> str | None:
    """Why this environment gets no scheduled monitor, or None when it gets one."""
    if not env.monitoring.enabled:
        return "monitoring.enabled is false"
    if isinstance(env.endpoint, ServerlessEndpoint):
        return "serverless endpoints cannot capture data (SageMaker)"
    if not env.endpoint.data_capture_percent:
        return "endpoint.data_capture_percent is not set, so nothing is captured"
    if env.model_package is not None and env.monitoring.baseline is None:
        return "a model_package's baseline from the registry is not wired yet; set monitoring.baseline"
    if env.model_data.startswith("s3://") and env.monitoring.baseline is None:
        return "model_data is in S3: set monitoring.baseline to the model's baseline.json"
    if not monitoring_baseline(env).is_file():
        if env.monitoring.baseline is not None:
            raise ValueError(f"monitoring.baseline: {env.monitoring.baseline} is not a file; write one with "
                             "`endpointctl baseline --model-data M --data holdout.csv --out FILE`")
        return (f"no baseline at {monitoring_baseline(env)}: write one with `endpointctl baseline` "
                "(or `endpointctl train-sample`, which writes it beside the model)")
    return None


def data_lifecycle_rules(env: Environment) -> list[s3.LifecycleRule]:
    """Expire each prefix after its configured days (None keeps it), old versions after
    theirs, and abort uploads that never completed."""
    retention = env.lifecycle
    rules = [
        s3.LifecycleRule(id=f"Expire-{prefix.rstrip('/')}", prefix=prefix, expiration=cdk.Duration.days(days))
        for prefix, days in retention.by_prefix().items()
        if days is not None
    ]
    rules.append(s3.LifecycleRule(
        id="OldVersionsAndIncompleteUploads",
        abort_incomplete_multipart_upload_after=cdk.Duration.days(retention.incomplete_upload_days),
        noncurrent_version_expiration=(
            cdk.Duration.days(retention.noncurrent_version_days) if retention.noncurrent_version_days is not None else None
        ),
        # A delete marker with no versions left behind it is clutter in every listing.
        expired_object_delete_marker=True,
    ))
    return rules
