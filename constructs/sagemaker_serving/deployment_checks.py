"""The role a delivery pipeline assumes in an environment's account to check a deploy:
call the endpoint once, describe it and read its alarms and their history (is it on the
endpoint config the stack deployed, or rolled back?), read the stack (outputs, template,
the endpoint config resource) for the smoke test and the release plan. Nothing else: it
cannot change anything."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from sagemaker_serving.endpoint import ServingEndpoint
from sagemaker_serving.nag import INLINE_POLICY_REASON, acknowledge_in_compliance_packs, acknowledge_wildcard_resource


class DeploymentCheckRole(Construct):
    """`role_name`, assumable only by `trusted_role_arn` (the pipeline's check steps), may
    invoke `endpoint`, read its alarms and read this stack."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        role_name: str,
        trusted_role_arn: str,
        endpoint: ServingEndpoint,
    ) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            role_name=role_name,
            assumed_by=iam.ArnPrincipal(trusted_role_arn),
            description="Assumed by the delivery pipeline's smoke test and release plan: invoke, read alarms and stack",
            max_session_duration=cdk.Duration.hours(1),
        )
        endpoint.grant_invoke(self.role)
        self.role.add_to_principal_policy(iam.PolicyStatement(
            sid="DescribeEndpoint", actions=["sagemaker:DescribeEndpoint"], resources=[endpoint.endpoint_arn]))
        alarm_name_prefix = f"{endpoint.name}-"  # EndpointAlarms names every alarm after its endpoint
        alarms = stack.format_arn(service="cloudwatch", resource="alarm", resource_name=f"{alarm_name_prefix}*",
                                  arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)
        self.role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadEndpointAlarms", actions=["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"],
            resources=[alarms]))
        self.role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadThisStack", actions=["cloudformation:DescribeStacks", "cloudformation:GetTemplate",
                                           "cloudformation:ListStackResources"],
            resources=[stack.stack_id]))
        acknowledge_wildcard_resource(self.role, alarms, f"the endpoint's alarms are named {alarm_name_prefix}<variant>-<what>")
        acknowledge_in_compliance_packs(self.role, "IAMNoInlinePolicy", INLINE_POLICY_REASON)

    @property
    def role_arn(self) -> str:
        return self.role.role_arn
