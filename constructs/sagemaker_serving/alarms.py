"""The guide's monitoring table as CloudWatch alarms, one set per variant.

| guide                  | what SageMaker really publishes                                  |
| ModelLatency > 1 s     | ModelLatency, in microseconds: threshold 1,000,000               |
| InvocationErrors > 0   | no such metric: Invocation5XXErrors (Sum) for server-side errors;|
|                        | Invocation4XXErrors as a rate, since bad requests are the caller's|
| MemoryUtilization > 80 | /aws/sagemaker/Endpoints namespace, percent                      |
"""

from __future__ import annotations

from typing import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from sagemaker_serving.endpoint import ServingEndpoint
from serving_config.settings import AlarmSettings

MICROSECONDS_PER_MS = 1000


class EndpointAlarms(Construct):
    """Latency, server-error, client-error-rate and memory alarms for every variant,
    all notifying every topic in `topics` (the stack's own, and an existing paging topic
    when one is configured); names are `<endpoint>-<variant>-<what>`."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        endpoint: ServingEndpoint,
        endpoint_name: str,
        topics: Sequence[sns.ITopic],
        thresholds: AlarmSettings,
    ) -> None:
        super().__init__(scope, id)
        self.alarms: list[cloudwatch.Alarm] = []
        # Literal names: deployment guardrails roll back when one of these fires.
        self.rollback_alarm_names: list[str] = []
        actions = [cw_actions.SnsAction(topic) for topic in topics]
        for variant in endpoint.variant_names:
            # The first variant's construct ids carry no prefix, so a single-variant
            # endpoint's alarms keep their ids if a challenger is added later.
            scope_for_variant = self if variant == endpoint.variant_names[0] else Construct(self, variant)
            specs = [
                (
                    "ModelLatency",
                    endpoint.metric_model_latency(variant_name=variant),
                    thresholds.model_latency_ms * MICROSECONDS_PER_MS,
                    f"Average ModelLatency above {thresholds.model_latency_ms:g} ms "
                    f"({thresholds.model_latency_ms * MICROSECONDS_PER_MS:,.0f} microseconds, the metric's unit) "
                    "for 3 consecutive 5-minute periods",
                    3,
                ),
                (
                    "ServerErrors",
                    endpoint.metric_invocation_5xx_errors(variant_name=variant),
                    0,
                    "Any Invocation5XXErrors: the model or container failed a request",
                    1,
                ),
                (
                    "ClientErrorRate",
                    endpoint.metric_invocation_4xx_error_rate(variant_name=variant),
                    thresholds.client_error_rate_percent / 100,
                    f"More than {thresholds.client_error_rate_percent:g} % of requests refused as bad input (4XX)",
                    1,
                ),
                (
                    "MemoryUtilization",
                    endpoint.metric_memory_utilization(variant_name=variant),
                    thresholds.memory_utilization_percent,
                    f"MemoryUtilization above {thresholds.memory_utilization_percent:g} % for 3 consecutive 5-minute periods",
                    3,
                ),
            ]
            for what, metric, threshold, description, periods in specs:
                alarm_name = f"{endpoint_name}-{variant}-{what}"
                alarm = cloudwatch.Alarm(
                    scope_for_variant,
                    f"{what}Alarm",
                    alarm_name=alarm_name,
                    alarm_description=description,
                    metric=metric,
                    threshold=threshold,
                    evaluation_periods=periods,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    # No traffic is not an incident (a serverless endpoint may be idle for days).
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
                alarm.add_alarm_action(*actions)
                alarm.add_ok_action(*actions)
                self.alarms.append(alarm)
                if what in ("ModelLatency", "ServerErrors"):
                    self.rollback_alarm_names.append(alarm_name)

        if thresholds.idle_hours:
            idle = self._idle_alarm(endpoint, endpoint_name, thresholds.idle_hours)
            idle.add_alarm_action(*actions)
            self.alarms.append(idle)

    def _idle_alarm(self, endpoint: ServingEndpoint, endpoint_name: str, hours: int) -> cloudwatch.Alarm:
        hourly = {
            f"v{i}": endpoint.metric_invocations(variant_name=v).with_(period=cdk.Duration.hours(1))
            for i, v in enumerate(endpoint.variant_names)
        }
        # No invocation means no data point at all: missing data is what "idle" looks like.
        return cloudwatch.Alarm(
            self,
            "IdleAlarm",
            alarm_name=f"{endpoint_name}-Idle",
            alarm_description=f"No invocations for {hours} h: destroy this endpoint "
            f"(npx cdk destroy) if nobody needs it; it bills while it exists",
            metric=cloudwatch.MathExpression(
                expression=" + ".join(f"FILL({k}, 0)" for k in hourly), using_metrics=hourly,
                label="invocations", period=cdk.Duration.hours(1),
            ),
            threshold=1,
            evaluation_periods=hours,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
