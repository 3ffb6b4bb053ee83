"""The guide's monitoring table as CloudWatch alarms, one set per variant.

| guide                  | what SageMaker really publishes                                  |
| ModelLatency > 1 s     | ModelLatency, in microseconds: threshold 1,000,000               |
| InvocationErrors > 0   | no such metric: Invocation5XXErrors (Sum) for server-side errors;|
|                        | Invocation4XXErrors as a rate, since bad requests are the caller's|
| MemoryUtilization > 80 | /aws/sagemaker/Endpoints namespace, percent                      |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from sagemaker_serving.endpoint import ServingEndpoint
from serving_config.settings import AlarmSettings
from sagemaker_serving.variant import EndpointVariant

MICROSECONDS_PER_MS = 1000


@dataclass(frozen=True)
class VariantAlarm:
    """One alarm of a variant: `<endpoint>-<variant>-<what>`, above `threshold` for
    `periods` consecutive 5-minute periods; `rollback` when deployment guardrails roll an
    update back on it."""

    what: str
    metric: cloudwatch.IMetric
    threshold: float
    description: str
    periods: int
    rollback: bool = False


def variant_alarms(variant: EndpointVariant, thresholds: AlarmSettings) -> list[VariantAlarm]:
    """The guide's table (module docstring) for one variant, with our thresholds."""
    latency_ms = thresholds.model_latency_ms
    return [
        VariantAlarm(
            "ModelLatency", variant.metric_model_latency(), latency_ms * MICROSECONDS_PER_MS,
            f"Average ModelLatency above {latency_ms:g} ms ({latency_ms * MICROSECONDS_PER_MS:,.0f} microseconds, "
            "the metric's unit) for 3 consecutive 5-minute periods",
            periods=3, rollback=True,
        ),
        VariantAlarm(
            "ServerErrors", variant.metric_invocation_5xx_errors(), 0,
            "Any Invocation5XXErrors: the model or container failed a request", periods=1, rollback=True,
        ),
        VariantAlarm(
            "ClientErrorRate", variant.metric_invocation_4xx_error_rate(), thresholds.client_error_rate_percent / 100,
            f"More than {thresholds.client_error_rate_percent:g} % of requests refused as bad input (4XX)", periods=1,
        ),
        VariantAlarm(
            "MemoryUtilization", variant.metric_memory_utilization(), thresholds.memory_utilization_percent,
            f"MemoryUtilization above {thresholds.memory_utilization_percent:g} % for 3 consecutive 5-minute periods",
            periods=3,
        ),
    ]


class EndpointAlarms(Construct):
    """Latency, server-error, client-error-rate and memory alarms for every variant of
    `endpoint`, and an idle alarm when `thresholds.idle_hours` is set.

    Props: `endpoint` (its variants and name); `topics`, every one notified on alarm and
    on OK (the stack's own, and an existing paging topic when one is configured);
    `thresholds`, the alarm settings (defaults in `AlarmSettings`).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        endpoint: ServingEndpoint,
        topics: Sequence[sns.ITopic],
        thresholds: AlarmSettings,
    ) -> None:
        super().__init__(scope, id)
        self.alarms: list[cloudwatch.Alarm] = []
        # Literal names: deployment guardrails roll back when one of these fires.
        self.rollback_alarm_names: list[str] = []
        self._actions = [cw_actions.SnsAction(topic) for topic in topics]
        for variant in endpoint.variants:
            # The first variant's construct ids carry no prefix, so a single-variant
            # endpoint's alarms keep their ids if a challenger is added later.
            scope_for_variant = self if variant is endpoint.variants[0] else Construct(self, variant.name)
            for spec in variant_alarms(variant, thresholds):
                self._add(scope_for_variant, variant, spec)
        if thresholds.idle_hours:
            idle = self._idle_alarm(endpoint, thresholds.idle_hours)
            idle.add_alarm_action(*self._actions)
            self.alarms.append(idle)

    def _add(self, scope: Construct, variant: EndpointVariant, spec: VariantAlarm) -> None:
        alarm_name = f"{variant.endpoint.name}-{variant.name}-{spec.what}"
        alarm = cloudwatch.Alarm(
            scope,
            f"{spec.what}Alarm",
            alarm_name=alarm_name,
            alarm_description=spec.description,
            metric=spec.metric,
            threshold=spec.threshold,
            evaluation_periods=spec.periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            # No traffic is not an incident (a serverless endpoint may be idle for days).
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(*self._actions)
        alarm.add_ok_action(*self._actions)
        self.alarms.append(alarm)
        if spec.rollback:
            self.rollback_alarm_names.append(alarm_name)

    def _idle_alarm(self, endpoint: ServingEndpoint, hours: int) -> cloudwatch.Alarm:
        hourly = {
            f"v{i}": v.metric_invocations().with_(period=cdk.Duration.hours(1))
            for i, v in enumerate(endpoint.variants)
        }
        # No invocation means no data point at all: missing data is what "idle" looks like.
        return cloudwatch.Alarm(
            self,
            "IdleAlarm",
            alarm_name=f"{endpoint.name}-Idle",
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
