"""`endpointctl cost`: what an environment costs per month, from its config.

Prices are assumptions, printed beside every figure: SageMaker list prices for
us-east-1 (AWS pricing page, "Real-Time Inference" and "Serverless Inference"; check
the current page for your region). Serverless compute is priced per second of a
memory size (metered per ms), not per ms as the guide's table says (1000x apart).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config types load pydantic (~150 ms); the endpoint's `kind` says which it is
    from serving_config.config import Environment, ServingConfig

HOURS_PER_MONTH = 730
# The traffic `cost` and `status` assume unless told otherwise.
DEFAULT_REQUESTS_PER_DAY = 10_000
DEFAULT_DURATION_MS = 50
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
DAYS_PER_MONTH = HOURS_PER_MONTH / 24

# USD per instance-hour, real-time inference, us-east-1.
INSTANCE_HOURLY = {
    "ml.t2.medium": 0.056, "ml.t2.large": 0.111, "ml.m5.large": 0.115, "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461, "ml.c5.large": 0.102, "ml.c5.xlarge": 0.204, "ml.g4dn.xlarge": 0.736,
}
# USD per second of serverless compute, per GB of memory (1024 MB -> 0.00002/s).
SERVERLESS_PER_GB_SECOND = 0.00002
# USD per second of provisioned concurrency, per GB, while provisioned (always on here).
PROVISIONED_PER_GB_SECOND = 0.000004
DATA_PROCESSED_PER_GB = 0.016
ASSUMED_REQUEST_KB = 1.0
# The scheduled monitor (docs/monitoring.md): Processing instances are billed while the
# job runs; a run is mostly start-up. Custom metrics and alarms at CloudWatch list prices.
PROCESSING_HOURLY = {"ml.t3.medium": 0.05, "ml.t3.large": 0.1, "ml.m5.large": 0.115, "ml.m5.xlarge": 0.23}
ASSUMED_MONITOR_RUN_MINUTES = 5
MONITOR_RUNS_PER_DAY = 24 + 1  # hourly drift, daily quality
CUSTOM_METRIC_MONTHLY = 0.30
ALARM_MONTHLY = 0.10
MONITOR_METRICS = 2 * 7  # Records, PSIs, flag rate, invalid rate, recall, breach; for drift and quality
MONITOR_ALARMS = 7


@dataclass(frozen=True)
class Line:
    item: str
    quantity: str
    unit_price: str
    monthly_usd: float


def serverless_lines(memory_mb: int, provisioned_concurrency: int | None, *, requests_per_day: float,
                     duration_ms: float) -> list[Line]:
    gb = memory_mb / 1024
    seconds = requests_per_day * DAYS_PER_MONTH * duration_ms / 1000
    lines = [Line(f"serverless compute, {memory_mb} MB", f"{seconds:,.0f} s/month",
                  f"${SERVERLESS_PER_GB_SECOND * gb:.7f}/s", seconds * SERVERLESS_PER_GB_SECOND * gb)]
    if provisioned_concurrency:
        pc = provisioned_concurrency
        lines.append(Line(f"provisioned concurrency x{pc}", f"{SECONDS_PER_MONTH:,} s/month",
                          f"${PROVISIONED_PER_GB_SECOND * gb:.7f}/s each",
                          pc * SECONDS_PER_MONTH * PROVISIONED_PER_GB_SECOND * gb))
    return lines


def instance_line(variant_name: str, instance_type: str, instance_count: int) -> Line:
    item = f"{variant_name}: {instance_count} x {instance_type}"
    hourly = INSTANCE_HOURLY.get(instance_type)
    if hourly is None:
        return Line(item, f"{HOURS_PER_MONTH * instance_count:,} h", "price unknown: not in table", 0.0)
    return Line(item, f"{HOURS_PER_MONTH * instance_count:,} instance-h", f"${hourly}/h",
                hourly * HOURS_PER_MONTH * instance_count)


def data_processed_line(requests_per_day: float) -> Line:
    data_gb = requests_per_day * DAYS_PER_MONTH * ASSUMED_REQUEST_KB * 2 / (1024 * 1024)  # in and out
    return Line("data processed (in + out)", f"{data_gb:,.2f} GB", f"${DATA_PROCESSED_PER_GB}/GB",
                data_gb * DATA_PROCESSED_PER_GB)


def estimate(env: Environment, *, requests_per_day: float, duration_ms: float) -> list[Line]:
    if env.endpoint.kind == "serverless":
        lines = serverless_lines(env.endpoint.memory_mb, env.endpoint.provisioned_concurrency,
                                 requests_per_day=requests_per_day, duration_ms=duration_ms)
    else:
        lines = [instance_line(v.name, v.instance_type, v.instance_count) for v in env.endpoint.variants]
        shadow = env.endpoint.shadow
        if shadow is not None:  # the challenger's instances bill like the champion's, whatever share they get
            fleet = shadow.fleet(env.endpoint.variants[0])
            added = instance_line(fleet.name, fleet.instance_type, fleet.instance_count)
            lines.append(Line(f"shadow {added.item} (added)", added.quantity, added.unit_price, added.monthly_usd))
    return lines + [data_processed_line(requests_per_day)] + (monitor_lines(env.monitoring.instance_type)
                                                               if monitored(env) else [])


def monitored(env: Environment) -> bool:
    """Whether the stack schedules the live-model monitor (it also needs a baseline at synth)."""
    return env.endpoint.kind == "instance" and bool(env.endpoint.data_capture_percent) and env.monitoring.enabled


def monitor_lines(instance: str) -> list[Line]:
    """The scheduled monitor's jobs on `instance`, its metrics and its alarms."""
    hours = MONITOR_RUNS_PER_DAY * DAYS_PER_MONTH * ASSUMED_MONITOR_RUN_MINUTES / 60
    hourly = PROCESSING_HOURLY.get(instance)
    job = Line(f"monitor jobs: {MONITOR_RUNS_PER_DAY}/day x ~{ASSUMED_MONITOR_RUN_MINUTES} min on {instance}",
               f"{hours:,.0f} instance-h", f"${hourly}/h" if hourly else "price unknown: not in table",
               hours * (hourly or 0.0))
    watch = Line("monitor metrics and alarms", f"{MONITOR_METRICS} metrics, {MONITOR_ALARMS} alarms",
                 f"${CUSTOM_METRIC_MONTHLY}, ${ALARM_MONTHLY} each",
                 MONITOR_METRICS * CUSTOM_METRIC_MONTHLY + MONITOR_ALARMS * ALARM_MONTHLY)
    return [job, watch]


def render(env: Environment, lines: list[Line], *, requests_per_day: float, duration_ms: float) -> str:
    width = max(len(line.item) for line in lines)
    out = [f"{env.stack_name} ({env.endpoint.kind}) — assuming {requests_per_day:,.0f} requests/day, "
           f"{duration_ms:g} ms each, {ASSUMED_REQUEST_KB:g} KB per request and response, and us-east-1 list prices "
           "(assumed; check https://aws.amazon.com/sagemaker/pricing/ for your region):"]
    for line in lines:
        out.append(f"  {line.item:<{width}}  {line.quantity:>22}  at {line.unit_price:<22}  ${line.monthly_usd:>10,.2f}/month")
    total = sum(line.monthly_usd for line in lines)
    out.append(f"  {'total':<{width}}  {'':>22}     {'':<22}  ${total:>10,.2f}/month")
    if env.endpoint.kind == "instance" and env.endpoint.autoscaling:
        ceiling = env.endpoint.autoscaling.max_instances
        extra = sum(INSTANCE_HOURLY.get(v.instance_type, 0.0) * HOURS_PER_MONTH * (ceiling - v.instance_count)
                    for v in env.endpoint.variants)
        out.append(f"  autoscaling may add up to ${extra:,.2f}/month (every variant at max_instances={ceiling})")
    return "\n".join(out)


def monthly_total(env: Environment, *, requests_per_day: float = DEFAULT_REQUESTS_PER_DAY,
                  duration_ms: float = DEFAULT_DURATION_MS) -> float:
    return sum(line.monthly_usd for line in estimate(env, requests_per_day=requests_per_day, duration_ms=duration_ms))


def _kept(days: int | None) -> str:
    return "kept until deleted" if days is None else f"{days} days"


def storage_lines(env: Environment) -> list[str]:
    """What S3 keeps, and for how long (lifecycle rules from config): what grows on the
    bill when nobody deletes anything. S3 storage is not priced here."""
    if env.bucket == "import":
        return [f"storage: {env.bucket_name} is imported; its lifecycle rules and access logs are its owner's"]
    lifecycle = env.lifecycle
    kept = ", ".join(f"{prefix}: {_kept(days)}" for prefix, days in lifecycle.by_prefix().items())
    old_versions = _kept(lifecycle.noncurrent_version_days) if env.retain_data else "none (not versioned)"
    logs = (f"in {env.access_logs.bucket} (its own rules)" if env.access_logs.bucket
            else _kept(env.access_logs.retention_days))
    return [
        f"storage kept in s3://{env.bucket_name}: {kept}",
        f"  old versions: {old_versions}; incomplete uploads aborted after {lifecycle.incomplete_upload_days} days; "
        f"access logs: {logs}",
    ]


def delivery_lines(config: ServingConfig, env: Environment) -> list[str]:
    """What the delivery pipeline keeps, in the account of the registry's environment
    (stacks/pipeline_stack.py; the days come from cdk.json's `pipeline`)."""
    if config.pipeline is None or config.registry_environment != env.name:
        return []
    from serving_config.names import pipeline_artifacts_bucket_name, project_prefix
    from serving_config.settings import PIPELINE_INCOMPLETE_UPLOAD_DAYS, PIPELINE_NONCURRENT_VERSION_DAYS

    pipeline = config.pipeline
    return [
        f"pipeline artifacts kept in s3://{pipeline_artifacts_bucket_name(config)}: {_kept(pipeline.artifact_days)}; "
        f"old versions: {_kept(PIPELINE_NONCURRENT_VERSION_DAYS)}; incomplete uploads aborted after {PIPELINE_INCOMPLETE_UPLOAD_DAYS} days",
        f"  build logs in /aws/codebuild/{project_prefix(config)}-pipeline: {_kept(pipeline.log_retention_days)} "
        "(every CodeBuild step of the pipeline)",
    ]


def run_cost(args: argparse.Namespace) -> int:
    from serving_config.config import load_config

    config = load_config()
    env = config.environment(args.env)
    lines = estimate(env, requests_per_day=args.requests_per_day, duration_ms=args.duration_ms)
    print(render(env, lines, requests_per_day=args.requests_per_day, duration_ms=args.duration_ms))
    print("\n".join(storage_lines(env) + delivery_lines(config, env)))
    return 0
