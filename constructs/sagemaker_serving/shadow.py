"""Watching a shadow variant: its own alarms, a champion-vs-challenger dashboard row and,
optionally, its own autoscaling (AWS recommends autoscaling the shadow).

Severity: the shadow's alarms *notify* (their own topic, for the team that runs the
experiment, read during working hours) and never *page*: neither the stack's alarm topic
(prod's on-call e-mail) nor the paging topic is an action, and they are not rollback
alarms of the deployment guardrails. A failing or slow shadow harms no
caller: SageMaker returns only the production variant's answer, so the worst a broken
challenger costs is its own comparison data, which can wait for the next working day.
Rolling the endpoint back on a shadow alarm would undo a healthy production update for
the sake of an experiment.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from sagemaker_serving.alarms import MICROSECONDS_PER_MS, VariantAlarm
from sagemaker_serving.autoscaling import _service_linked_role, _track
from sagemaker_serving.dashboard import graph
from sagemaker_serving.endpoint import ServingEndpoint
from sagemaker_serving.variant import EndpointVariant
from serving_config.settings import AlarmSettings, InstanceAutoscalingSettings

SEVERITY = "notify"  # not "page": see the module's docstring


def shadow_alarms(shadow: EndpointVariant, thresholds: AlarmSettings) -> list[VariantAlarm]:
    """The shadow's errors, latency and memory, with the production variant's thresholds."""
    latency_ms = thresholds.model_latency_ms
    memory = thresholds.memory_utilization_percent
    return [
        VariantAlarm("ServerErrors", shadow.metric_invocation_5xx_errors(), 0,
                     "Any Invocation5XXErrors on the shadow: the challenger failed a copied request (no caller saw it)",
                     periods=1),
        VariantAlarm("ModelLatency", shadow.metric_model_latency(), latency_ms * MICROSECONDS_PER_MS,
                     f"Shadow's average ModelLatency above {latency_ms:g} ms for 3 consecutive 5-minute periods "
                     "(no caller waits for it)", periods=3),
        VariantAlarm("MemoryUtilization", shadow.metric_memory_utilization(), memory,
                     f"Shadow's MemoryUtilization above {memory:g} % for 3 consecutive 5-minute periods", periods=3),
    ]


class ShadowWatch(Construct):
    """Alarms `<endpoint>-<shadow>-<what>-notify` on the shadow's server errors, latency
    and memory, to its own encrypted topic; a dashboard row of champion against
    challenger; a scalable target when `scaling` is given.

    Props: `endpoint` (must have a `shadow` variant); `kms_key` (the topic's); `notify_email`
    (subscribed to the topic; default none); `thresholds` (the production variant's);
    `dashboard` (the row is added to it); `scaling` (default none: the shadow keeps its count).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        endpoint: ServingEndpoint,
        kms_key: kms.IKey,
        notify_email: str | None,
        thresholds: AlarmSettings,
        dashboard: cloudwatch.Dashboard,
        scaling: InstanceAutoscalingSettings | None = None,
    ) -> None:
        super().__init__(scope, id)
        if endpoint.shadow is None:
            raise ValueError("ShadowWatch: the endpoint has no shadow variant")
        self.variant = endpoint.shadow
        self.topic = sns.Topic(self, "NotifyTopic", display_name=f"{endpoint.name} shadow alarms (notify, not paging)",
                               master_key=kms_key, enforce_ssl=True)
        if notify_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(notify_email))
        actions = [cw_actions.SnsAction(self.topic)]
        self.alarms = [self._alarm(spec, actions) for spec in shadow_alarms(self.variant, thresholds)]
        self._dashboard_row(endpoint.variants[0], self.variant, dashboard)
        if scaling is not None:
            self.scaling_target = _track(
                self, "Autoscaling", variant=self.variant,
                dimension="sagemaker:variant:DesiredInstanceCount",
                capacity=(scaling.min_instances, scaling.max_instances),
                metric=autoscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
                policy_id="InvocationsPerInstance", target_value=scaling.target_invocations_per_instance,
                cooldowns=(scaling.scale_in_cooldown_s, scaling.scale_out_cooldown_s), role=_service_linked_role(self),
            )

    def _alarm(self, spec: VariantAlarm, actions) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            f"{spec.what}Alarm",
            alarm_name=f"{self.variant.endpoint.name}-{self.variant.name}-{spec.what}-{SEVERITY}",
            alarm_description=f"[{SEVERITY}, not paging, not a rollback alarm] {spec.description}",
            metric=spec.metric,
            threshold=spec.threshold,
            evaluation_periods=spec.periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(*actions)
        alarm.add_ok_action(*actions)
        return alarm

    @staticmethod
    def _dashboard_row(champion: EndpointVariant, challenger: EndpointVariant, dashboard: cloudwatch.Dashboard) -> None:
        pair = ((champion, "champion"), (challenger, "challenger"))
        latency = [
            cloudwatch.MathExpression(expression=f"m{i} / 1000", using_metrics={f"m{i}": v.metric_model_latency()},
                                      label=f"{role} {v.name} (ms)", period=cdk.Duration.minutes(5))
            for i, (v, role) in enumerate(pair)
        ]
        errors = [v.metric_invocation_5xx_errors().with_(label=f"5XX {role} {v.name}") for v, role in pair]
        errors += [v.metric_invocations().with_(label=f"invocations {role} {v.name}") for v, role in pair]
        dashboard.add_widgets(
            graph("Champion vs challenger: model latency (ms)", latency, unit_label="ms"),
            graph("Champion vs challenger: invocations and 5XX", errors),
        )
