"""Statements every KMS key of the project carries."""

from __future__ import annotations

from aws_cdk import aws_iam as iam


def grants_only_for_aws_resources() -> iam.PolicyStatement:
    """Control Tower CT.KMS.PR.3: nobody may grant the key onward by hand, while SageMaker
    still creates the grants an endpoint's storage needs (CreateEndpoint with KmsKeyId: a
    grant for an AWS resource, made by the service on the caller's behalf)."""
    return iam.PolicyStatement(
        sid="GrantsOnlyForAwsResources",
        effect=iam.Effect.DENY,
        principals=[iam.StarPrincipal()],  # "Principal": "*", as the control reads it
        actions=["kms:CreateGrant"],
        resources=["*"],
        conditions={"BoolIfExists": {"kms:GrantIsForAWSResource": "false", "aws:PrincipalIsAWSService": "false"}},
    )
