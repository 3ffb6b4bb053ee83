"""What watches the live model once it serves: a shadow's own alarms and dashboard row
(docs/shadow.md), and the scheduled monitor of captured traffic (docs/monitoring.md) —
with the decisions, read from the configuration, that their constructs do not make:
which environments get a monitor, against which baseline: `monitoring.baseline` when
set, else the deployed registry version's (registered with it), else the one beside a
local model_data."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import aws_cdk as cdk

from sagemaker_serving.monitoring import LiveModelMonitor, MonitorBaseline, MonitoredEndpoint
from sagemaker_serving.shadow import ShadowWatch
from serving_config.config import Environment, ServerlessEndpoint
from serving_config.model_package import ResolvedPackage
from serving_config.paths import PROJECT_ROOT

if TYPE_CHECKING:
    from stacks.serving_stack import ServingStack


def monitoring_baseline(env: Environment) -> Path:
    """The baseline the environment's model is watched against: `monitoring.baseline`, else
    <model>.baseline.json beside a local model_data (as `endpointctl train-sample` writes it)."""
    named = env.monitoring.baseline or re.sub(r"\.tar\.gz$", ".baseline.json", env.model_data)
    return Path(named) if Path(named).is_absolute() else PROJECT_ROOT / named


def monitoring_skipped(env: Environment, package: ResolvedPackage | None = None) -> str | None:
    """Why this environment gets no scheduled monitor, or None when it gets one."""
    if not env.monitoring.enabled:
        return "monitoring.enabled is false"
    if isinstance(env.endpoint, ServerlessEndpoint):
        return "serverless endpoints cannot capture data (SageMaker)"
    if not env.endpoint.data_capture_percent:
        return "endpoint.data_capture_percent is not set, so nothing is captured"
    if env.monitoring.baseline is None and package is not None:
        if package.baseline_url is None:
            return (f"version {package.version} of {package.group} was registered without a baseline: register it "
                    "with `endpointctl register --baseline-data holdout.csv`, or set monitoring.baseline")
        return None
    if env.model_data.startswith("s3://") and env.monitoring.baseline is None:
        return "model_data is in S3: set monitoring.baseline to the model's baseline.json"
    if not monitoring_baseline(env).is_file():
        if env.monitoring.baseline is not None:
            raise ValueError(f"monitoring.baseline: {env.monitoring.baseline} is not a file; write one with "
                             "`endpointctl baseline --model-data M --data holdout.csv --out FILE`")
        return (f"no baseline at {monitoring_baseline(env)}: write one with `endpointctl baseline` "
                "(or `endpointctl train-sample`, which writes it beside the model)")
    return None


def baseline_of(env: Environment, package: ResolvedPackage | None) -> MonitorBaseline:
    """The registered version's baseline (in the registry bucket), unless config names one."""
    if env.monitoring.baseline is None and package is not None and package.baseline_url is not None:
        return MonitorBaseline.from_registered_package(package.baseline_url)
    return MonitorBaseline.from_file(monitoring_baseline(env))


def live_model_monitor(stack: "ServingStack", env: Environment,
                       package: ResolvedPackage | None = None) -> LiveModelMonitor | None:
    """The scheduled monitor of an endpoint that captures, per variant (a shadow is compared
    with production), with a monitoring row on the dashboard; where there is nothing to
    monitor, the synth says why."""
    reason = monitoring_skipped(env, package)
    if reason is not None:
        cdk.Annotations.of(stack.endpoint).add_info(f"no live-model monitor: {reason}")
        return None
    shadow = stack.endpoint.shadow
    monitor = LiveModelMonitor(
        stack, "Monitoring",
        watched=MonitoredEndpoint(stack.endpoint.name, stack.endpoint.variants[0].name,
                                  shadow.name if shadow is not None else None),
        settings=env.monitoring, baseline=baseline_of(env, package), bucket=stack.bucket, key=stack.key,
        image=stack.models.image, network=env.network, topics=[stack.topic], job_name_prefix=env.stack_name)
    stack.dashboard.dashboard.add_widgets(*monitor.dashboard_widgets())
    return monitor


def watch_live_model(stack: "ServingStack", env: Environment,
                     package: ResolvedPackage | None = None) -> LiveModelMonitor | None:
    """A challenger's own alarms, topic and dashboard row (a shadow pages nobody), then the
    scheduled monitor, which also watches the shadow; `package`: the registry version
    deployed, whose baseline it is watched against."""
    if (shadow := getattr(env.endpoint, "shadow", None)) is not None:
        ShadowWatch(stack, "Shadow", endpoint=stack.endpoint, kms_key=stack.key, notify_email=shadow.notify_email,
                    thresholds=env.alarms, dashboard=stack.dashboard.dashboard, scaling=shadow.autoscaling)
    return live_model_monitor(stack, env, package)
