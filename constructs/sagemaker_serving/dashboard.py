"""A CloudWatch dashboard per endpoint: one line per variant on every graph.

Latencies are published in microseconds; the graphs show milliseconds (a math
expression divides by 1000) so a reader compares them with the 1 s alarm at a glance.
"""

from __future__ import annotations

from typing import Callable

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from sagemaker_serving.endpoint import ServingEndpoint
from sagemaker_serving.variant import EndpointVariant

WIDTH = 12
HEIGHT = 6


class EndpointDashboard(Construct):
    """A dashboard named after `endpoint`, graphing every one of its variants."""

    def __init__(self, scope: Construct, id: str, *, endpoint: ServingEndpoint) -> None:
        super().__init__(scope, id)
        variants = endpoint.variants
        self.dashboard = cloudwatch.Dashboard(self, "Resource", dashboard_name=endpoint.name,
                                              default_interval=cdk.Duration.hours(3))

        def per_variant(metric: Callable[[EndpointVariant], cloudwatch.Metric], label: str) -> list[cloudwatch.IMetric]:
            return [metric(v).with_(label=f"{label} {v.name}") for v in variants]

        def in_ms(metric: Callable[[EndpointVariant], cloudwatch.Metric], label: str) -> list[cloudwatch.IMetric]:
            # Metric ids must be unique within a graph: one per (label, variant).
            return [
                cloudwatch.MathExpression(expression=f"{label}{i} / 1000", using_metrics={f"{label}{i}": metric(v)},
                                          label=f"{label} {v.name} (ms)", period=cdk.Duration.minutes(5))
                for i, v in enumerate(variants)
            ]

        V = EndpointVariant
        widgets: list[cloudwatch.IWidget] = [
            graph("Invocations", per_variant(V.metric_invocations, "invocations")),
            graph("Model and overhead latency (ms; the metrics are µs)",
                  in_ms(V.metric_model_latency, "model") + in_ms(V.metric_overhead_latency, "overhead"),
                  unit_label="ms"),
            graph("Errors",
                  per_variant(V.metric_invocation_4xx_errors, "4XX")
                  + per_variant(V.metric_invocation_5xx_errors, "5XX")
                  + per_variant(V.metric_invocation_model_errors, "model errors")),
        ]
        if endpoint.serverless:
            widgets += [
                graph("Memory utilization (%)", per_variant(V.metric_memory_utilization, "memory")),
                graph("Serverless concurrency utilization", per_variant(V.metric_serverless_concurrency, "concurrency")),
                graph("Model setup time, cold starts (ms)", in_ms(V.metric_model_setup_time, "setup"), unit_label="ms"),
            ]
        else:
            widgets += [
                graph("CPU / memory / disk utilization (%; CPU is summed over cores)",
                      [v.metric_utilization(name).with_(label=f"{name.removesuffix('Utilization')} {v.name}")
                       for name in ("CPUUtilization", "MemoryUtilization", "DiskUtilization") for v in variants]),
                graph("Invocations per instance (what autoscaling tracks)",
                      per_variant(V.metric_invocations_per_instance, "per instance")),
            ]
        for row_start in range(0, len(widgets), 2):
            self.dashboard.add_widgets(*widgets[row_start:row_start + 2])

    @property
    def dashboard_name(self) -> str:
        return self.dashboard.dashboard_name


def graph(title: str, metrics: list[cloudwatch.IMetric], *, unit_label: str | None = None) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(
        title=title, left=metrics, width=WIDTH, height=HEIGHT,
        left_y_axis=cloudwatch.YAxisProps(label=unit_label, show_units=False) if unit_label else None,
    )
