"""Endpoint config (serverless or instance-backed) and the endpoint itself."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from sagemaker_serving.model import SklearnModel
from serving_config.settings import DEFAULT_VARIANT_NAME, RolloutSettings, ServerlessSettings, VariantSettings
from sagemaker_serving.variant import EndpointVariant


@dataclass(frozen=True)
class ServerlessVariant:
    model: SklearnModel
    capacity: ServerlessSettings

    name = DEFAULT_VARIANT_NAME
    serverless = True

    def production_variant(self) -> sagemaker.CfnEndpointConfig.ProductionVariantProperty:
        return sagemaker.CfnEndpointConfig.ProductionVariantProperty(
            variant_name=self.name,
            model_name=self.model.model_name,
            serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                memory_size_in_mb=self.capacity.memory_mb,
                max_concurrency=self.capacity.max_concurrency,
                provisioned_concurrency=self.capacity.provisioned_concurrency,
            ),
        )


@dataclass(frozen=True)
class DataCapture:
    """Requests and responses of an instance-backed endpoint, sampled to S3."""

    destination_s3_uri: str
    sampling_percent: int


@dataclass(frozen=True)
class InstanceVariant:
    model: SklearnModel
    fleet: VariantSettings

    serverless = False

    @property
    def name(self) -> str:
        return self.fleet.name

    def production_variant(self) -> sagemaker.CfnEndpointConfig.ProductionVariantProperty:
        return sagemaker.CfnEndpointConfig.ProductionVariantProperty(
            variant_name=self.fleet.name,
            model_name=self.model.model_name,
            instance_type=self.fleet.instance_type,
            initial_instance_count=self.fleet.instance_count,
            initial_variant_weight=self.fleet.weight,
        )


class ServingEndpoint(Construct):
    """An `AWS::SageMaker::EndpointConfig` and the `AWS::SageMaker::Endpoint` using it.

    The config is named by CloudFormation: every change to it is a replacement, and a
    fixed name would collide with the old config. The endpoint keeps the fixed name
    callers use; pointing it at a new config is an in-place update.

    Props: `endpoint_name` (fixed; `name` keeps it as a literal, `endpoint_name` is the
    deployed attribute); exactly one of `serverless` (one variant) or `instance_variants`
    (A/B); `kms_key` (storage and captured data; default AWS-owned); `data_capture`
    (instance endpoints only; default off); `retain_instance_counts` (default False: set
    with autoscaling, so an update keeps the counts it chose); `shadow` (a challenger
    that gets a copy of the single production variant's requests, its weight's share of
    the production weight, and whose answers are captured, never returned: reference,
    "Watching a live endpoint"; default none). `variants` (production) and `shadow` are
    `EndpointVariant` objects owning their `metric_*`.
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
        super().__init__(scope, id)
        self._validate(serverless, instance_variants)
        if shadow is not None and (serverless is not None or len(instance_variants or ()) != 1):
            raise ValueError("ServingEndpoint: a shadow needs exactly one instance-backed production variant")
        if serverless is not None and data_capture is not None:
            raise ValueError("ServingEndpoint: serverless endpoints take no data capture")
        specs = [serverless] if serverless is not None else list(instance_variants or ())
        self.serverless = serverless is not None
        # The fixed name callers use, as a literal: alarm, dashboard and scaling names and
        # the metrics' dimensions derive from it (`endpoint_name` is the deployed attribute).
        self.name = endpoint_name
        self.variants = [EndpointVariant(endpoint=self, name=spec.name, serverless=spec.serverless) for spec in specs]
        variants = [spec.production_variant() for spec in specs]
        self.shadow = EndpointVariant(endpoint=self, name=shadow.name, serverless=False) if shadow is not None else None

        self.config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=variants,
            # Instance variants: their storage volumes; serverless: SageMaker's copy of the image.
            kms_key_id=kms_key.key_arn if kms_key is not None else None,
            data_capture_config=self._data_capture(data_capture, kms_key) if data_capture else None,
            shadow_production_variants=[shadow.production_variant()] if shadow is not None else None,
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
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

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
