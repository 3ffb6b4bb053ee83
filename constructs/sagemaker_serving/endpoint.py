"""Endpoint config (serverless or instance-backed) and the endpoint itself."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from sagemaker_serving.model import SklearnModel
from sagemaker_serving.settings import DEFAULT_VARIANT_NAME, RolloutSettings, ServerlessSettings, VariantSettings

NAMESPACE = "AWS/SageMaker"
# Instance (and serverless memory) utilization lives in its own namespace.
UTILIZATION_NAMESPACE = "/aws/sagemaker/Endpoints"
@dataclass(frozen=True)
class ServerlessVariant:
    model: SklearnModel
    capacity: ServerlessSettings


@dataclass(frozen=True)
class DataCapture:
    """Requests and responses of an instance-backed endpoint, sampled to S3."""

    destination_s3_uri: str
    sampling_percent: int


@dataclass(frozen=True)
class InstanceVariant:
    model: SklearnModel
    fleet: VariantSettings


class ServingEndpoint(Construct):
    """An `AWS::SageMaker::EndpointConfig` and the `AWS::SageMaker::Endpoint` using it.

    The config is named by CloudFormation: every change to it is a replacement, and a
    fixed name would collide with the old config. The endpoint keeps the fixed name
    callers use; pointing it at a new config is an in-place update.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        endpoint_name: str,
        serverless: ServerlessVariant | None = None,
        instance_variants: list[InstanceVariant] | None = None,
        kms_key: kms.IKey | None = None,
        data_capture: DataCapture | None = None,
        retain_instance_counts: bool = False,
        shadow: InstanceVariant | None = None,
    ) -> None:
        """`shadow`: a challenger that gets a copy of the single production variant's
        requests (its weight's share of the production weight) and whose answers are
        captured, never returned (reference, "Watching a live endpoint")."""
        super().__init__(scope, id)
        self._validate(serverless, instance_variants)
        if shadow is not None and (serverless is not None or len(instance_variants or ()) != 1):
            raise ValueError("ServingEndpoint: a shadow needs exactly one instance-backed production variant")
        self.shadow_variant_name = shadow.fleet.name if shadow is not None else None
        if serverless is not None and data_capture is not None:
            raise ValueError("ServingEndpoint: serverless endpoints take no data capture")
        if serverless is not None:
            self.variant_names = [DEFAULT_VARIANT_NAME]
            self.serverless = True
            variants = [self._serverless_variant(serverless)]
        else:
            assert instance_variants is not None
            self.variant_names = [v.fleet.name for v in instance_variants]
            self.serverless = False
            variants = [self._instance_variant(v) for v in instance_variants]

        self.config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=variants,
            # Instance variants: their storage volumes; serverless: SageMaker's copy of the image.
            kms_key_id=kms_key.key_arn if kms_key is not None else None,
            data_capture_config=self._data_capture(data_capture, kms_key) if data_capture else None,
            shadow_production_variants=[self._instance_variant(shadow)] if shadow is not None else None,
        )
        self.resource = sagemaker.CfnEndpoint(
            self,
            "Resource",
            endpoint_name=endpoint_name,
            endpoint_config_name=self.config.attr_endpoint_config_name,
            # With autoscaling, an update must not reset the instance counts it chose;
            # weights and data capture still follow the config.
            retain_all_variant_properties=True if retain_instance_counts else None,
            exclude_retained_variant_properties=[
                sagemaker.CfnEndpoint.VariantPropertyProperty(variant_property_type=t)
                for t in ("DesiredWeight", "DataCaptureConfig")
            ] if retain_instance_counts else None,
        )
        self._endpoint_name = endpoint_name

    @staticmethod
    def _serverless_variant(serverless: ServerlessVariant) -> sagemaker.CfnEndpointConfig.ProductionVariantProperty:
        capacity = serverless.capacity
        return sagemaker.CfnEndpointConfig.ProductionVariantProperty(
            variant_name=DEFAULT_VARIANT_NAME,
            model_name=serverless.model.model_name,
            serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                memory_size_in_mb=capacity.memory_mb,
                max_concurrency=capacity.max_concurrency,
                provisioned_concurrency=capacity.provisioned_concurrency,
            ),
        )

    @staticmethod
    def _instance_variant(v: InstanceVariant) -> sagemaker.CfnEndpointConfig.ProductionVariantProperty:
        return sagemaker.CfnEndpointConfig.ProductionVariantProperty(
            variant_name=v.fleet.name,
            model_name=v.model.model_name,
            instance_type=v.fleet.instance_type,
            initial_instance_count=v.fleet.instance_count,
            initial_variant_weight=v.fleet.weight,
        )

    @staticmethod
    def _data_capture(capture: DataCapture, kms_key: kms.IKey | None) -> sagemaker.CfnEndpointConfig.DataCaptureConfigProperty:
        return sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
            enable_capture=True,
            initial_sampling_percentage=capture.sampling_percent,
            destination_s3_uri=capture.destination_s3_uri,
            kms_key_id=kms_key.key_arn if kms_key is not None else None,
            capture_options=[
                sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
            ],
            capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                csv_content_types=["text/csv"], json_content_types=["application/json"]
            ),
        )

    def use_deployment_guardrails(self, shifting: RolloutSettings, *, rollback_alarm_names: list[str]) -> None:
        """Blue/green updates with traffic shifting, rolled back when an alarm fires.
        Only instance-backed endpoints have them; a serverless update is all at once."""
        if self.serverless:
            raise ValueError("ServingEndpoint: serverless endpoints have no deployment guardrails")
        routing = {"all_at_once": "ALL_AT_ONCE", "canary": "CANARY", "linear": "LINEAR"}[shifting.strategy]
        step = sagemaker.CfnEndpoint.CapacitySizeProperty(type="CAPACITY_PERCENT", value=shifting.step_percent)
        self.resource.deployment_config = sagemaker.CfnEndpoint.DeploymentConfigProperty(
            blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
                traffic_routing_configuration=sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
                    type=routing,
                    wait_interval_in_seconds=shifting.wait_s if routing != "ALL_AT_ONCE" else None,
                    canary_size=step if routing == "CANARY" else None,
                    linear_step_size=step if routing == "LINEAR" else None,
                ),
                termination_wait_in_seconds=shifting.baking_s,
                maximum_execution_timeout_in_seconds=shifting.max_execution_s,
            ),
            auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
                alarms=[sagemaker.CfnEndpoint.AlarmProperty(alarm_name=name) for name in rollback_alarm_names]
            ),
        )

    @staticmethod
    def _validate(serverless: ServerlessVariant | None, instance_variants: list[InstanceVariant] | None) -> None:
        # The settings types hold SageMaker's limits; what is left is the choice of one kind.
        if (serverless is None) == (not instance_variants):
            raise ValueError("ServingEndpoint: give exactly one of serverless or instance_variants")

    @property
    def endpoint_name(self) -> str:
        # Ref of an Endpoint is its ARN; the name comes from the attribute.
        return self.resource.attr_endpoint_name

    @property
    def endpoint_arn(self) -> str:
        return self.resource.ref

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["sagemaker:InvokeEndpoint"], resource_arns=[self.endpoint_arn]
        )

    # ---------------------------------------------------------------- metrics
    def metric(
        self,
        metric_name: str,
        *,
        variant_name: str | None = None,
        namespace: str = NAMESPACE,
        statistic: str = "Average",
        period: cdk.Duration = cdk.Duration.minutes(5),
        unit: cloudwatch.Unit | None = None,
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=namespace,
            metric_name=metric_name,
            dimensions_map={"EndpointName": self._endpoint_name, "VariantName": variant_name or self.variant_names[0]},
            statistic=statistic,
            period=period,
            unit=unit,
        )

    def metric_invocations(self, *, variant_name: str | None = None) -> cloudwatch.Metric:
        return self.metric("Invocations", variant_name=variant_name, statistic="Sum")

    def metric_model_latency(self, *, variant_name: str | None = None, statistic: str = "Average") -> cloudwatch.Metric:
        """In microseconds, as SageMaker publishes it."""
        return self.metric("ModelLatency", variant_name=variant_name, statistic=statistic)

    def metric_invocation_5xx_errors(self, *, variant_name: str | None = None) -> cloudwatch.Metric:
        return self.metric("Invocation5XXErrors", variant_name=variant_name, statistic="Sum")

    def metric_invocation_4xx_error_rate(self, *, variant_name: str | None = None) -> cloudwatch.Metric:
        """Each request emits 1 or 0, so the Average is the rate (0..1)."""
        return self.metric("Invocation4XXErrors", variant_name=variant_name, statistic="Average")

    def metric_memory_utilization(self, *, variant_name: str | None = None) -> cloudwatch.Metric:
        """Percent; published for serverless endpoints too."""
        return self.metric_utilization("MemoryUtilization", variant_name=variant_name)

    def metric_overhead_latency(self, *, variant_name: str | None = None) -> cloudwatch.Metric:
        """In microseconds: SageMaker's own time around the model."""
        return self.metric("OverheadLatency", variant_name=variant_name)

    def metric_model_setup_time(self, *, variant_name: str | None = None) -> cloudwatch.Metric:
        """In microseconds: serverless cold starts."""
        return self.metric("ModelSetupTime", variant_name=variant_name)

    def metric_invocation_model_errors(self, *, variant_name: str | None = None) -> cloudwatch.Metric:
        return self.metric("InvocationModelErrors", variant_name=variant_name, statistic="Sum")

    def metric_invocation_4xx_errors(self, *, variant_name: str | None = None) -> cloudwatch.Metric:
        return self.metric("Invocation4XXErrors", variant_name=variant_name, statistic="Sum")

    def metric_utilization(self, metric_name: str, *, variant_name: str | None = None) -> cloudwatch.Metric:
        """CPUUtilization (summed over cores), MemoryUtilization, DiskUtilization, percent."""
        return self.metric(metric_name, variant_name=variant_name, namespace=UTILIZATION_NAMESPACE)

    def metric_invocations_per_instance(self, *, variant_name: str | None = None) -> cloudwatch.Metric:
        return self.metric("InvocationsPerInstance", variant_name=variant_name, statistic="Sum")

    def metric_serverless_concurrency(self, *, variant_name: str | None = None) -> cloudwatch.Metric:
        return self.metric("ServerlessConcurrentExecutionsUtilization", variant_name=variant_name)
