"""An environment's data: its KMS key, its bucket, the bucket's access logs and lifecycle."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from sagemaker_serving.access_logs import log_access
from sagemaker_serving.keys import encrypted_bucket, grants_only_for_aws_resources, logs_may_encrypt
from sagemaker_serving.nag import acknowledge, acknowledge_in_compliance_packs, acknowledge_wildcard_resource
from serving_config.settings import DATA_CAPTURE_PREFIX
from serving_config.config import Environment


class DataStore(Construct):
    """The key and the bucket an environment's data lives in, and who may use them.

    Props, all read from `environment`: `encryption` (a key created here with rotation,
    or the platform team's, imported; default created), `bucket` (created or imported;
    default created), `retain_data` (retained and versioned, or destroyed with the stack,
    objects auto-deleted; default retained), `lifecycle` and `access_logs` (their
    settings types give the defaults), `tags` (also put on CDK's auto-delete provider).
    `keep_access_logs`: the access-log bucket outlives the environment (retained,
    versioned) — when the data is retained, or when it also logs a retained registry.
    `pipeline_logs_here` (default False): the delivery pipeline's artifacts bucket, in this
    account, logs to the access-log bucket too, which is then named (`access_log_bucket_name`)
    so that the pipeline's stack can name it as its target.

    The key, the buckets and CDK's provider are children of the stack, not of this
    construct: their logical ids come from their construct paths, and deployed key and
    buckets must keep theirs (a new id replaces the resource and loses its data).
    """

    def __init__(self, scope: Construct, id: str, *, environment: Environment, keep_access_logs: bool,
                 pipeline_logs_here: bool = False) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)
        env = environment
        self.removal_policy = cdk.RemovalPolicy.RETAIN if env.retain_data else cdk.RemovalPolicy.DESTROY
        self.key = data_key(stack, env, self.removal_policy)
        self.access_log_bucket: s3.IBucket | None = None
        if env.bucket == "import":
            self.bucket = s3.Bucket.from_bucket_name(stack, "Bucket", env.bucket_name)
            cdk.Annotations.of(self.bucket).add_info(
                f"bucket {env.bucket_name} is imported: its access logging and lifecycle rules are its owner's "
                "(the access_logs and retention settings apply to buckets this stack creates)"
            )
            return
        self.access_log_bucket = access_log_bucket(stack, env, keep=keep_access_logs, named=pipeline_logs_here)
        self.bucket = data_bucket(stack, env, key=self.key, logs_to=self.access_log_bucket, removal=self.removal_policy)
        if not env.retain_data:
            finish_auto_delete_provider(stack, env)

    @property
    def data_capture_uri(self) -> str:
        return f"s3://{self.bucket.bucket_name}/{DATA_CAPTURE_PREFIX}"

    def grant_write_data_capture(self, role: iam.Role) -> None:
        """What an instance-backed endpoint writes as its model's role."""
        captured = self.bucket.arn_for_objects(f"{DATA_CAPTURE_PREFIX}*")
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="WriteDataCapture", actions=["s3:PutObject"], resources=[captured],
        ))
        acknowledge_wildcard_resource(role, captured, "data capture writes one object per captured batch under data-capture/")

    def grant_encrypt_decrypt(self, grantee: iam.IGrantable) -> None:
        self.key.grant(grantee, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")


def data_key(stack: cdk.Stack, env: Environment, removal: cdk.RemovalPolicy) -> kms.IKey:
    """One key for the bucket (batch data, data capture), endpoint storage, logs and
    the alarm topic: created with rotation, or the platform team's, imported."""
    if env.encryption.mode == "import":
        assert env.encryption.key_arn is not None
        return kms.Key.from_key_arn(stack, "DataKey", env.encryption.key_arn)
    key = kms.Key(
        stack,
        "DataKey",
        description=f"Encrypts {env.stack_name}: batch data, data capture, endpoint storage, logs, alarms",
        enable_key_rotation=True,
        removal_policy=removal,
        pending_window=cdk.Duration.days(7),
    )
    key.add_to_resource_policy(grants_only_for_aws_resources())
    # CloudWatch publishes this account's alarms to the encrypted topic (aws/sns would
    # refuse it); only for alarms of this account and region (confused deputy).
    key.grant(
        iam.ServicePrincipal("cloudwatch.amazonaws.com", conditions={
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": stack.format_arn(
                service="cloudwatch", resource="alarm", resource_name="*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)},
        }),
        "kms:Decrypt", "kms:GenerateDataKey*",
    )
    # CloudWatch Logs encrypts the endpoint's log group, scoped to that group.
    key.add_to_resource_policy(logs_may_encrypt(stack, log_group_name=env.endpoint_log_group))
    return key


def data_bucket(stack: cdk.Stack, env: Environment, *, key: kms.IKey, logs_to: s3.IBucket,
                removal: cdk.RemovalPolicy) -> s3.Bucket:
    bucket = encrypted_bucket(
        stack,
        "Bucket",
        bucket_name=env.bucket_name,
        key=key,
        versioned=env.retain_data,
        removal_policy=removal,
        # dev: `cdk destroy` empties and deletes the bucket (a CDK-provided Lambda).
        auto_delete_objects=not env.retain_data,
        lifecycle_rules=data_lifecycle_rules(env),
    )
    log_access(bucket, bucket_name=env.bucket_name, to=logs_to, sid="S3ServerAccessLogDelivery")
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
    return bucket


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


def access_log_bucket(stack: cdk.Stack, env: Environment, *, keep: bool, named: bool = False) -> s3.IBucket:
    """The target of the data bucket's access logs: an existing bucket from config, or
    one created here as S3 log delivery requires — SSE-S3 (log delivery cannot use
    SSE-KMS), no Object Lock, and a bucket policy letting logging.s3.amazonaws.com
    put objects only for our bucket and account (`log_access`)."""
    logs_config = env.access_logs
    if logs_config.bucket:
        existing = s3.Bucket.from_bucket_name(stack, "AccessLogBucket", logs_config.bucket)
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
        stack,
        "AccessLogBucket",
        bucket_name=env.access_log_bucket_name if named else None,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        versioned=keep,
        removal_policy=cdk.RemovalPolicy.RETAIN if keep else cdk.RemovalPolicy.DESTROY,
        auto_delete_objects=not keep,
        lifecycle_rules=rules,
    )
    acknowledge_access_log_bucket(log_bucket, env, keep=keep)
    return log_bucket


def acknowledge_access_log_bucket(log_bucket: s3.Bucket, env: Environment, *, keep: bool) -> None:
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


def finish_auto_delete_provider(stack: cdk.Stack, env: Environment) -> None:
    """CDK's auto-delete-objects provider is a raw CfnResource: the Tags aspect skips
    it, and it carries two findings of its own."""
    provider = stack.node.try_find_child("Custom::S3AutoDeleteObjectsCustomResourceProvider")
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
