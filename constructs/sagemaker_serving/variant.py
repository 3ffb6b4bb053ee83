"""A production variant of a deployed endpoint, as an object that owns its metrics.

Alarms, the dashboard and autoscaling take a variant (or the endpoint's `variants`):
the `EndpointName` and `VariantName` dimensions come from the object, never from a
name passed alongside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch

if TYPE_CHECKING:
    from sagemaker_serving.endpoint import ServingEndpoint

NAMESPACE = "AWS/SageMaker"
# Instance (and serverless memory) utilization lives in its own namespace.
UTILIZATION_NAMESPACE = "/aws/sagemaker/Endpoints"


@dataclass(frozen=True)
class EndpointVariant:
    """`name` of a variant of `endpoint`; `serverless` when it runs on serverless capacity."""

    endpoint: "ServingEndpoint"
    name: str
    serverless: bool

    def metric(
        self,
        metric_name: str,
        *,
        namespace: str = NAMESPACE,
        statistic: str = "Average",
        period: cdk.Duration = cdk.Duration.minutes(5),
        unit: cloudwatch.Unit | None = None,
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=namespace,
            metric_name=metric_name,
            # The literal name: a dimension must match what SageMaker publishes under.
            dimensions_map={"EndpointName": self.endpoint.name, "VariantName": self.name},
            statistic=statistic,
            period=period,
            unit=unit,
        )

    def metric_invocations(self) -> cloudwatch.Metric:
        return self.metric("Invocations", statistic="Sum")

    def metric_model_latency(self, *, statistic: str = "Average") -> cloudwatch.Metric:
        """In microseconds, as SageMaker publishes it."""
        return self.metric("ModelLatency", statistic=statistic)

    def metric_invocation_5xx_errors(self) -> cloudwatch.Metric:
        return self.metric("Invocation5XXErrors", statistic="Sum")

    def metric_invocation_4xx_error_rate(self) -> cloudwatch.Metric:
        """Each request emits 1 or 0, so the Average is the rate (0..1)."""
        return self.metric("Invocation4XXErrors", statistic="Average")

    def metric_invocation_4xx_errors(self) -> cloudwatch.Metric:
        return self.metric("Invocation4XXErrors", statistic="Sum")

    def metric_invocation_model_errors(self) -> cloudwatch.Metric:
        return self.metric("InvocationModelErrors", statistic="Sum")

    def metric_memory_utilization(self) -> cloudwatch.Metric:
        """Percent; published for serverless endpoints too."""
        return self.metric_utilization("MemoryUtilization")

    def metric_utilization(self, metric_name: str) -> cloudwatch.Metric:
        """CPUUtilization (summed over cores), MemoryUtilization, DiskUtilization, percent."""
        return self.metric(metric_name, namespace=UTILIZATION_NAMESPACE)

    def metric_overhead_latency(self) -> cloudwatch.Metric:
        """In microseconds: SageMaker's own time around the model."""
        return self.metric("OverheadLatency")

    def metric_model_setup_time(self) -> cloudwatch.Metric:
        """In microseconds: serverless cold starts."""
        return self.metric("ModelSetupTime")

    def metric_invocations_per_instance(self) -> cloudwatch.Metric:
        return self.metric("InvocationsPerInstance", statistic="Sum")

    def metric_serverless_concurrency(self) -> cloudwatch.Metric:
        return self.metric("ServerlessConcurrentExecutionsUtilization")
