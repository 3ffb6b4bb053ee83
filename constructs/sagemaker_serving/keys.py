"""Key policy statements every key of ours carries."""

from __future__ import annotations

from aws_cdk import aws_iam as iam


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
