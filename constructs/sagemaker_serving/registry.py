"""The model registry: a SageMaker model package group and the bucket holding the
archives of its versions (`endpointctl register` writes both)."""

from __future__ import annotations

from typing import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from sagemaker_serving.access_logs import grant_log_delivery, log_access
from sagemaker_serving.keys import encrypted_bucket, grants_only_for_aws_resources
from serving_config.settings import REGISTRY_ARCHIVE_PREFIX
from sagemaker_serving.nag import acknowledge, acknowledge_in_compliance_packs

ARCHIVE_PREFIX = REGISTRY_ARCHIVE_PREFIX


class ModelRegistry(Construct):
    """A model package group named `group_name` and its archive bucket, both retained:
    registered versions and their archives are the record of what was deployed when.

    `reader_accounts` (the other environments' accounts) may list and describe the
    versions and read their archives, so their synths resolve and their models load
    an approved version across accounts (default: none). `bucket_name`: the archive
    bucket. `access_log_bucket`: where the archive bucket's access logs go (default none:
    then CloudTrail data events are the record, acknowledged as such).
    `pipeline_artifacts_bucket`: the delivery pipeline's artifacts bucket, in this account,
    whose access logs the access-log bucket takes too (default none).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        group_name: str,
        bucket_name: str,
        reader_accounts: Sequence[str] = (),
        access_log_bucket: s3.IBucket | None = None,
        pipeline_artifacts_bucket: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)
        readers = sorted(set(reader_accounts) - {stack.account})
        self.group_name = group_name
        self.group_arn = stack.format_arn(service="sagemaker", resource="model-package-group", resource_name=group_name)
        versions_arn = stack.format_arn(service="sagemaker", resource="model-package", resource_name=f"{group_name}/*")
        policy = iam.PolicyDocument(statements=[iam.PolicyStatement(
            sid="OtherEnvironmentsResolveApprovedVersions",
            principals=[iam.AccountPrincipal(a) for a in readers],
            actions=["sagemaker:DescribeModelPackageGroup", "sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages"],
            resources=[self.group_arn, versions_arn],
        )]).to_json() if readers else None
        self.group = sagemaker.CfnModelPackageGroup(
            self,
            "Group",
            model_package_group_name=group_name,
            model_package_group_description="Versions of the model; only Approved ones are deployed",
            model_package_group_policy=policy,
        )
        self.group.apply_removal_policy(cdk.RemovalPolicy.RETAIN)

        # Its own key, retained with the archives: the stack's data key goes with a
        # disposable environment (dev), and the archives must stay readable after it.
        self.key = key = kms.Key(self, "Key", description=f"Encrypts the archives of the versions of {group_name}",
                                 enable_key_rotation=True, removal_policy=cdk.RemovalPolicy.RETAIN)
        key.add_to_resource_policy(grants_only_for_aws_resources())
        self.bucket = encrypted_bucket(
            self,
            "Archives",
            bucket_name=bucket_name,
            key=key,
            versioned=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
            # Archives are content-addressed and kept, old versions too (the record of
            # what was registered); an upload that never completed goes.
            lifecycle_rules=[s3.LifecycleRule(
                id="AbortIncompleteUploads", abort_incomplete_multipart_upload_after=cdk.Duration.days(7))],
        )
        self._share_archives(readers, key)
        self._log_access(bucket_name, access_log_bucket, pipeline_artifacts_bucket)
        acknowledge_in_compliance_packs(
            self.bucket, "S3BucketReplicationEnabled",
            "Versioned, KMS-encrypted and retained; cross-region copies are the platform team's DR decision",
        )

    def _share_archives(self, readers: Sequence[str], key: kms.Key) -> None:
        """The other environments' accounts read the archives, through S3 only for the key."""
        if not readers:
            return
        stack = cdk.Stack.of(self)
        principals = [iam.AccountPrincipal(a) for a in readers]
        self.bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="OtherEnvironmentsReadArchives", principals=principals,
            actions=["s3:GetObject"], resources=[self.bucket.arn_for_objects(f"{ARCHIVE_PREFIX}*")],
        ))
        key.add_to_resource_policy(iam.PolicyStatement(
            sid="OtherEnvironmentsDecryptArchives", principals=principals, actions=["kms:Decrypt"], resources=["*"],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{stack.region}.{stack.url_suffix}"}},
        ))

    def _log_access(self, bucket_name: str, access_log_bucket: s3.IBucket | None,
                    pipeline_artifacts_bucket: str | None) -> None:
        if access_log_bucket is not None:  # the stack's access-log bucket, retained with the registry
            log_access(self.bucket, bucket_name=bucket_name, to=access_log_bucket, sid="S3ServerAccessLogDeliveryRegistry")
            if pipeline_artifacts_bucket is not None:  # the pipeline lives in this account and logs here too
                grant_log_delivery(access_log_bucket, source_bucket_name=pipeline_artifacts_bucket,
                                   sid="S3ServerAccessLogDeliveryPipeline")
        else:
            why_no_logs = (
                "This environment imports its data bucket, so it has no access-log bucket of its own; object access "
                "to the archives is recorded by CloudTrail data events, which the platform team enables account-wide"
            )
            acknowledge(self.bucket, "AwsSolutions-S1", why_no_logs)
            acknowledge_in_compliance_packs(self.bucket, "S3BucketLoggingEnabled", why_no_logs)
