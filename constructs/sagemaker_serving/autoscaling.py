"""Application Auto Scaling for an endpoint's variants.

Instance variants scale `sagemaker:variant:DesiredInstanceCount` on
SageMakerVariantInvocationsPerInstance; serverless variants with provisioned
concurrency scale `sagemaker:variant:DesiredProvisionedConcurrency` on
SageMakerVariantProvisionedConcurrencyUtilization. The scalable target depends on the
endpoint, so CloudFormation deregisters it before deleting the endpoint.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_iam as iam
from constructs import Construct

from sagemaker_serving.endpoint import ServingEndpoint
from serving_config.settings import InstanceAutoscalingSettings, ProvisionedConcurrencySettings
from sagemaker_serving.variant import EndpointVariant


def _resource_id(variant: EndpointVariant) -> str:
    return f"endpoint/{variant.endpoint.name}/variant/{variant.name}"


def _service_linked_role(scope: Construct) -> iam.IRole:
    """Application Auto Scaling acts on SageMaker through its service-linked role; CDK's
    default would create an extra role with no permissions."""
    stack = cdk.Stack.of(scope)
    arn = (f"arn:{stack.partition}:iam::{stack.account}:role/aws-service-role/"
           "sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint")
    return iam.Role.from_role_arn(scope, "ServiceLinkedRole", arn, mutable=False)


def _track(
    scope: Construct,
    id: str,
    *,
    variant: EndpointVariant,
    dimension: str,
    capacity: tuple[int, int],
    metric: autoscaling.PredefinedMetric,
    policy_id: str,
    target_value: float,
    cooldowns: tuple[int, int],
    role: iam.IRole,
) -> autoscaling.ScalableTarget:
    """A scalable target on one variant, tracking one predefined metric; it depends on the
    endpoint, so CloudFormation deregisters it before deleting the endpoint."""
    target = autoscaling.ScalableTarget(
        scope,
        id,
        service_namespace=autoscaling.ServiceNamespace.SAGEMAKER,
        resource_id=_resource_id(variant),
        scalable_dimension=dimension,
        min_capacity=capacity[0],
        max_capacity=capacity[1],
        role=role,
    )
    target.node.add_dependency(variant.endpoint)
    target.scale_to_track_metric(
        policy_id,
        target_value=target_value,
        predefined_metric=metric,
        scale_in_cooldown=cdk.Duration.seconds(cooldowns[0]),
        scale_out_cooldown=cdk.Duration.seconds(cooldowns[1]),
    )
    return target


class InstanceCountScaling(Construct):
    """Every variant of an instance-backed `endpoint` scaled on invocations per instance
    (`settings`: bounds, target and cooldowns, defaults in `InstanceAutoscalingSettings`)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        endpoint: ServingEndpoint,
        settings: InstanceAutoscalingSettings,
    ) -> None:
        super().__init__(scope, id)
        if endpoint.serverless:
            raise ValueError("InstanceCountScaling: a serverless endpoint has no instance count")
        role = _service_linked_role(self)
        self.targets = [
            _track(
                self, variant.name, variant=variant,
                dimension="sagemaker:variant:DesiredInstanceCount",
                capacity=(settings.min_instances, settings.max_instances),
                metric=autoscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
                policy_id="InvocationsPerInstance", target_value=settings.target_invocations_per_instance,
                cooldowns=(settings.scale_in_cooldown_s, settings.scale_out_cooldown_s), role=role,
            )
            for variant in endpoint.variants
        ]


class ProvisionedConcurrencyScaling(Construct):
    """The serverless `endpoint`'s provisioned concurrency scaled on its utilization
    (`settings`: bounds, target and cooldowns, defaults in `ProvisionedConcurrencySettings`)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        endpoint: ServingEndpoint,
        settings: ProvisionedConcurrencySettings,
    ) -> None:
        super().__init__(scope, id)
        if not endpoint.serverless:
            raise ValueError("ProvisionedConcurrencyScaling: only serverless endpoints have provisioned concurrency")
        self.target = _track(
            self, "Target", variant=endpoint.variants[0],
            dimension="sagemaker:variant:DesiredProvisionedConcurrency",
            capacity=(settings.min_concurrency, settings.max_concurrency),
            metric=autoscaling.PredefinedMetric.SAGEMAKER_VARIANT_PROVISIONED_CONCURRENCY_UTILIZATION,
            policy_id="ProvisionedConcurrencyUtilization", target_value=settings.target_utilization,
            cooldowns=(settings.scale_in_cooldown_s, settings.scale_out_cooldown_s), role=_service_linked_role(self),
        )
