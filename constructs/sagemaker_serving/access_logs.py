"""S3 server access logs of one bucket into a log bucket, as S3 log delivery requires."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3


def log_access(bucket: s3.Bucket, *, bucket_name: str, to: s3.IBucket, sid: str) -> None:
    """Who read or wrote which object of `bucket` (named `bucket_name`): its access logs
    go to `to` under `<bucket_name>/`, which lets only logging.s3.amazonaws.com put them,
    only for this bucket (aws:SourceArn) and account (aws:SourceAccount) — the S3 guide's
    log-delivery policy. Written out rather than with `server_access_logs_bucket`, whose
    policy-or-ACL choice hangs on a feature flag."""
    resource = log_into(bucket, bucket_name=bucket_name, log_bucket_name=to.bucket_name)
    delivery = grant_log_delivery(to, source_bucket_name=bucket_name, sid=sid)
    if delivery.policy_dependable is not None:
        resource.node.add_dependency(delivery.policy_dependable)  # logs can be delivered from the start


def log_into(bucket: s3.Bucket, *, bucket_name: str, log_bucket_name: str) -> s3.CfnBucket:
    """The logging configuration alone, for a log bucket whose policy another stack
    writes (with `grant_log_delivery`): `bucket`'s access logs under `<bucket_name>/`."""
    resource = bucket.node.default_child
    assert isinstance(resource, s3.CfnBucket)
    resource.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(
        destination_bucket_name=log_bucket_name, log_file_prefix=f"{bucket_name}/")
    return resource


def grant_log_delivery(to: s3.IBucket, *, source_bucket_name: str, sid: str) -> iam.AddToResourcePolicyResult:
    """Let S3 log delivery put the access logs of `source_bucket_name` (a bucket of this
    account) into `to`, under `<source_bucket_name>/` only."""
    stack = cdk.Stack.of(to)
    prefix = f"{source_bucket_name}/"
    return to.add_to_resource_policy(iam.PolicyStatement(
        sid=sid,
        principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
        actions=["s3:PutObject"],
        resources=[to.arn_for_objects(f"{prefix}*")],
        # By name, not GetAtt: the bucket waits for this policy, which must not wait for it.
        conditions={"ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:s3:::{source_bucket_name}"},
                    "StringEquals": {"aws:SourceAccount": stack.account}},
    ))
