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

from sagemaker_serving.alarms import MICROSECONDS_PER_MS
from sagemaker_serving.autoscaling import _resource_id, _service_linked_role, _track
from sagemaker_serving.dashboard import graph
from sagemaker_serving.endpoint import ServingEndpoint
from sagemaker_serving.settings import AlarmSettings, InstanceAutoscalingSettings

SEVERITY = "notify"  # not "page": see the module's docstring


class ShadowWatch(Construct):
    """Alarms `<endpoint>-<shadow>-<what>-notify` on the shadow's server errors, latency
    and memory, to its own encrypted topic (`notify_email` subscribed when given); a
    dashboard row of champion against challenger; a scalable target when `scaling` is given."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        endpoint: ServingEndpoint,
        endpoint_name: str,
        kms_key: kms.IKey,
        notify_email: str | None,
        thresholds: AlarmSettings,
        dashboard: cloudwatch.Dashboard,
        scaling: InstanceAutoscalingSettings | None = None,
    ) -> None:
        super().__init__(scope, id)
        if endpoint.shadow_variant_name is None:
            raise ValueError("ShadowWatch: the endpoint has no shadow variant")
        self.variant = endpoint.shadow_variant_name
        self.topic = sns.Topic(self, "NotifyTopic", display_name=f"{endpoint_name} shadow alarms (notify, not paging)",
                               master_key=kms_key, enforce_ssl=True)
        if notify_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(notify_email))
        actions = [cw_actions.SnsAction(self.topic)]
        self.alarms = [self._alarm(endpoint, endpoint_name, what, metric, threshold, periods, description, actions)
                       for what, metric, threshold, periods, description in self._specs(endpoint, thresholds)]
        self._dashboard_row(endpoint, dashboard)
        if scaling is not None:
            self.scaling_target = _track(
                self, "Autoscaling", endpoint=endpoint, resource_id=_resource_id(endpoint_name, self.variant),
                dimension="sagemaker:variant:DesiredInstanceCount",
                capacity=(scaling.min_instances, scaling.max_instances),
                metric=autoscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
                policy_id="InvocationsPerInstance", target_value=scaling.target_invocations_per_instance,
                cooldowns=(scaling.scale_in_cooldown_s, scaling.scale_out_cooldown_s), role=_service_linked_role(self),
            )

    def _specs(self, endpoint: ServingEndpoint, thresholds: AlarmSettings):
        shadow = self.variant
        latency_us = thresholds.model_latency_ms * MICROSECONDS_PER_MS
        return [
            ("ServerErrors", endpoint.metric_invocation_5xx_errors(variant_name=shadow), 0, 1,
             "Any Invocation5XXErrors on the shadow: the challenger failed a copied request (no caller saw it)"),
            ("ModelLatency", endpoint.metric_model_latency(variant_name=shadow), latency_us, 3,
             f"Shadow's average ModelLatency above {thresholds.model_latency_ms:g} ms for 3 consecutive 5-minute "
             "periods (no caller waits for it)"),
            ("MemoryUtilization", endpoint.metric_memory_utilization(variant_name=shadow),
             thresholds.memory_utilization_percent, 3,
             f"Shadow's MemoryUtilization above {thresholds.memory_utilization_percent:g} % for 3 consecutive "
             "5-minute periods"),
        ]

    def _alarm(self, endpoint, endpoint_name, what, metric, threshold, periods, description, actions) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            f"{what}Alarm",
            alarm_name=f"{endpoint_name}-{self.variant}-{what}-{SEVERITY}",
            alarm_description=f"[{SEVERITY}, not paging, not a rollback alarm] {description}",
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(*actions)
        alarm.add_ok_action(*actions)
        return alarm

    def _dashboard_row(self, endpoint: ServingEndpoint, dashboard: cloudwatch.Dashboard) -> None:
        champion, challenger = endpoint.variant_names[0], self.variant
        pair = ((champion, "champion"), (challenger, "challenger"))
        latency = [
            cloudwatch.MathExpression(expression=f"m{i} / 1000", using_metrics={f"m{i}": endpoint.metric_model_latency(variant_name=v)},
                                      label=f"{role} {v} (ms)", period=cdk.Duration.minutes(5))
            for i, (v, role) in enumerate(pair)
        ]
        errors = [endpoint.metric_invocation_5xx_errors(variant_name=v).with_(label=f"5XX {role} {v}") for v, role in pair]
        errors += [endpoint.metric_invocations(variant_name=v).with_(label=f"invocations {role} {v}") for v, role in pair]
        dashboard.add_widgets(
            graph("Champion vs challenger: model latency (ms)", latency, unit_label="ms"),
            graph("Champion vs challenger: invocations and 5XX", errors),
        )
