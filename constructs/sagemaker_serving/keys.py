"""Key policy statements our keys carry, and the bucket such a key encrypts."""

from __future__ import annotations

from typing import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct


def grants_only_for_aws_resources() -> iam.PolicyStatement:
    """Control Tower CT.KMS.PR.3: nobody may grant the key onward by hand (Deny
    kms:CreateGrant to Principal "*", as the control reads it), while AWS services still
    create the grants their resources need (CreateEndpoint with a KmsKeyId: a grant for an
    AWS resource, made by SageMaker on the caller's behalf)."""
    return iam.PolicyStatement(
        sid="GrantsOnlyForAwsResources",
        effect=iam.Effect.DENY,
        principals=[iam.StarPrincipal()],
        actions=["kms:CreateGrant"],
        resources=["*"],
        conditions={"BoolIfExists": {"kms:GrantIsForAWSResource": "false", "aws:PrincipalIsAWSService": "false"}},
    )


def logs_may_encrypt(stack: cdk.Stack, *, log_group_name: str) -> iam.PolicyStatement:
    """CloudWatch Logs may use the key for one log group only (its encryption context)."""
    return iam.PolicyStatement(
        actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
        principals=[iam.ServicePrincipal(f"logs.{stack.region}.{stack.url_suffix}")],
        resources=["*"],
        conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": stack.format_arn(
            service="logs", resource="log-group", resource_name=log_group_name,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)}},
    )


def encrypted_bucket(scope: Construct, id: str, *, bucket_name: str, key: kms.IKey, versioned: bool,
                     removal_policy: cdk.RemovalPolicy, lifecycle_rules: Sequence[s3.LifecycleRule],
                     auto_delete_objects: bool = False) -> s3.Bucket:
    """A private bucket encrypted with `key` (with an S3 Bucket Key) that refuses plain
    HTTP: the data, the registry's archives and the pipeline's artifacts each live in one."""
    return s3.Bucket(
        scope,
        id,
        bucket_name=bucket_name,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        versioned=versioned,
        removal_policy=removal_policy,
        auto_delete_objects=auto_delete_objects,
        lifecycle_rules=list(lifecycle_rules),
    )
