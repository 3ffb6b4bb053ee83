"""The project's configuration: one frozen, typed object parsed once from `cdk.json`.

Everything that can be wrong with the configuration is found here, before any
construct exists and before any AWS call: each problem names the key, the value and
what is allowed, and all problems are reported together in one `ConfigError`.

This module imports nothing from the CDK, so `endpointctl` can read the same
configuration without starting a jsii runtime.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from sagemaker_serving.network import ModelNetwork as Network
from serving_runtime.image import (
    DEFAULT_FRAMEWORK_VERSION,
    INSTANCE_PAYLOAD_LIMIT_BYTES,
    PROJECT_ROOT,
    SERVERLESS_PAYLOAD_LIMIT_BYTES,
    framework_versions,
)

CDK_JSON = PROJECT_ROOT / "cdk.json"
CONTEXT_KEY = "serving"
ENVIRONMENT_NAMES = ("dev", "staging", "prod")

# SageMaker's limits (../shared/reference/SAGEMAKER.md, "Limits").
SERVERLESS_MEMORY_SIZES = (1024, 2048, 3072, 4096, 5120, 6144)
MAX_CONCURRENCY_RANGE = (1, 200)
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
SAGEMAKER_NAME_MAX = 63
IAM_ROLE_NAME_MAX = 64
INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LOWER_NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
CAMEL_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
ACCOUNT = re.compile(r"^\d{12}$")
KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
# The whole batch mini-batch must fit the handler and the transform's own limit.
MAX_PAYLOAD_MB_RANGE = (1, 100)
TRANSFORM_PAYLOAD_BUDGET_MB = 100  # MaxConcurrentTransforms x MaxPayloadInMB <= 100


EndpointKind = Literal["serverless", "instance"]
Provision = Literal["create", "import"]


class ConfigError(ValueError):
    """Bad configuration. `problems` holds one line per bad key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration in cdk.json context '{CONTEXT_KEY}':\n{lines}")


@dataclass(frozen=True)
class InstanceAutoscaling:
    """Target tracking on SageMakerVariantInvocationsPerInstance, per variant."""

    min_instances: int
    max_instances: int
    target_invocations_per_instance: int = 100
    scale_in_cooldown_s: int = 300
    scale_out_cooldown_s: int = 60


@dataclass(frozen=True)
class ProvisionedConcurrencyScaling:
    """Target tracking on SageMakerVariantProvisionedConcurrencyUtilization."""

    min_concurrency: int
    max_concurrency: int
    target_utilization: float = 0.7
    scale_in_cooldown_s: int = 300
    scale_out_cooldown_s: int = 60


RolloutStrategy = Literal["all_at_once", "canary", "linear"]


@dataclass(frozen=True)
class Rollout:
    """Blue/green deployment guardrails for instance-backed endpoint updates."""

    strategy: RolloutStrategy = "canary"
    step_percent: int = 10  # canary size, or linear step
    wait_s: int = 300  # between traffic shifts
    baking_s: int = 600  # after all traffic moved, before the old fleet goes
    max_execution_s: int = 3600


@dataclass(frozen=True)
class ServerlessEndpoint:
    memory_mb: int = 2048
    max_concurrency: int = 5
    provisioned_concurrency: int | None = None
    provisioned_scaling: ProvisionedConcurrencyScaling | None = None
    kind: EndpointKind = "serverless"

    @property
    def payload_limit_bytes(self) -> int:
        return SERVERLESS_PAYLOAD_LIMIT_BYTES


@dataclass(frozen=True)
class Variant:
    name: str
    instance_type: str
    instance_count: int
    weight: float = 1.0
    # A challenger may serve another artifact; None means the environment's model.
    model_data: str | None = None


@dataclass(frozen=True)
class InstanceEndpoint:
    variants: tuple[Variant, ...]
    autoscaling: InstanceAutoscaling | None = None
    rollout: Rollout | None = None
    data_capture_percent: int | None = None
    kind: EndpointKind = "instance"

    @property
    def payload_limit_bytes(self) -> int:
        return INSTANCE_PAYLOAD_LIMIT_BYTES


@dataclass(frozen=True)
class BatchSettings:
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = 1
    max_payload_mb: int = 6
    max_concurrent_transforms: int = 1

    @property
    def payload_limit_bytes(self) -> int:
        return self.max_payload_mb * 1024 * 1024


@dataclass(frozen=True)
class AlarmSettings:
    model_latency_ms: float = 1000.0
    memory_utilization_percent: float = 80.0
    client_error_rate_percent: float = 5.0
    email: str | None = None
    # dev: notify when the endpoint had no invocation for this long (destroy it).
    idle_hours: int | None = None


@dataclass(frozen=True)
class Encryption:
    """`create` a key (rotation on) or `import` one by ARN, for endpoint storage,
    data capture, batch output and the alarm topic."""

    mode: Provision = "create"
    key_arn: str | None = None


@dataclass(frozen=True)
class Environment:
    """One deployment target: its own stack, endpoint, bucket and roles."""

    name: str
    project: "Project"
    endpoint: ServerlessEndpoint | InstanceEndpoint
    model_data: str
    inference_role: Provision = "create"
    bucket: Provision = "create"
    retain_data: bool = True
    account: str | None = None
    region: str | None = None
    batch: BatchSettings = field(default_factory=BatchSettings)
    alarms: AlarmSettings = field(default_factory=AlarmSettings)
    encryption: Encryption = field(default_factory=Encryption)
    network: Network = field(default_factory=Network)
    log_retention_days: int = 30

    # Names, derived the way the guide derives them. Created resources carry the
    # environment so that dev, staging and prod can share one account; imported
    # ones keep the platform team's exact names.
    @property
    def env_camel(self) -> str:
        return self.name[:1].upper() + self.name[1:]

    @property
    def stack_name(self) -> str:
        return f"{self.project.team}-{self.project.project}-{self.name}"

    @property
    def endpoint_name(self) -> str:
        suffix = "serverless" if self.endpoint.kind == "serverless" else "realtime"
        return f"{self.project.team}-{self.project.project}-{self.name}-{suffix}"

    @property
    def endpoint_log_group(self) -> str:
        """Where SageMaker writes the endpoint's container logs."""
        return f"/aws/sagemaker/Endpoints/{self.endpoint_name}"

    @property
    def transform_job_prefix(self) -> str:
        return f"{self.project.team}-{self.project.project}-{self.name}"

    @property
    def iam_path(self) -> str:
        return f"/{self.project.company}-sagemaker/"

    @property
    def inference_role_name(self) -> str:
        p = self.project
        if self.inference_role == "import":
            return f"SageMaker-{p.team_fullname}-{p.project_camel}-InferenceRole"
        return f"SageMaker-{p.team_fullname}-{p.project_camel}-{self.env_camel}-InferenceRole"

    @property
    def batch_role_name(self) -> str:
        p = self.project
        return f"SageMaker-{p.team_fullname}-{p.project_camel}-{self.env_camel}-BatchRole"

    @property
    def bucket_name(self) -> str:
        p = self.project
        base = f"{p.company}-sm-{p.team}-{p.project}"
        return base if self.bucket == "import" else f"{base}-{self.name}"

    @property
    def tags(self) -> dict[str, str]:
        return {"Team": self.project.team, "Project": self.project.project, "Environment": self.name}


@dataclass(frozen=True)
class Project:
    company: str
    team: str
    team_fullname: str
    project: str
    project_camel: str
    framework_version: str = DEFAULT_FRAMEWORK_VERSION


@dataclass(frozen=True)
class ServingConfig:
    project: Project
    environments: Mapping[str, Environment]

    def environment(self, name: str) -> Environment:
        if name not in self.environments:
            raise ConfigError([f"env: {name!r} is not an environment; allowed: {', '.join(self.environments)}"])
        return self.environments[name]


# --------------------------------------------------------------------------- parsing


class _Reader:
    """Reads a JSON object key by key, collecting every problem instead of stopping."""

    def __init__(self, problems: list[str], path: str, data: Any):
        self.problems = problems
        self.path = path
        self.data = data if isinstance(data, dict) else {}
        self.seen: set[str] = set()
        if not isinstance(data, dict):
            self.fail("", data, "an object")

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, value: Any, allowed: str) -> None:
        where = self.key(name) if name else (self.path or CONTEXT_KEY)
        self.problems.append(f"{where}: got {json.dumps(value)}; allowed: {allowed}")

    def get(self, name: str, default: Any = ..., *, required: bool = False) -> Any:
        self.seen.add(name)
        if name in self.data:
            return self.data[name]
        if required:
            self.problems.append(f"{self.key(name)}: missing; it is required")
        return None if default is ... else default

    def string(self, name: str, pattern: re.Pattern[str], allowed: str, default: Any = ..., *, required: bool = False):
        value = self.get(name, default, required=required)
        if value is None or (default is not ... and value == default):
            return value
        if not isinstance(value, str) or not pattern.match(value):
            self.fail(name, value, allowed)
        return value

    def integer(self, name: str, low: int, high: int, default: Any = ...) -> Any:
        value = self.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(name, value, f"an integer from {low} to {high}")
        return value

    def number(self, name: str, low: float, high: float, default: float) -> Any:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            self.fail(name, value, f"a number from {low:g} to {high:g}")
        return value

    def choice(self, name: str, allowed: tuple[Any, ...], default: Any = ...) -> Any:
        value = self.get(name, default)
        if value not in allowed:
            self.fail(name, value, " | ".join(json.dumps(a) for a in allowed))
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            self.fail(name, value, "true | false")
        return value

    def finish(self) -> None:
        for unknown in sorted(set(self.data) - self.seen):
            self.problems.append(
                f"{self.key(unknown)}: unknown key; allowed keys: {', '.join(sorted(self.seen))}"
            )


def _parse_serverless(r: _Reader) -> ServerlessEndpoint:
    memory = r.choice("memory_mb", SERVERLESS_MEMORY_SIZES, 2048)
    max_c = r.integer("max_concurrency", *MAX_CONCURRENCY_RANGE, 5)
    provisioned = r.integer("provisioned_concurrency", *MAX_CONCURRENCY_RANGE, None)
    if isinstance(provisioned, int) and isinstance(max_c, int) and provisioned > max_c:
        r.fail("provisioned_concurrency", provisioned, f"at most max_concurrency ({max_c})")
    scaling = None
    raw_scaling = r.get("provisioned_scaling", None)
    if raw_scaling is not None:
        sr = _Reader(r.problems, r.key("provisioned_scaling"), raw_scaling)
        scaling = ProvisionedConcurrencyScaling(
            min_concurrency=sr.integer("min_concurrency", *MAX_CONCURRENCY_RANGE, 1),
            max_concurrency=sr.integer("max_concurrency", *MAX_CONCURRENCY_RANGE, max_c if isinstance(max_c, int) else 1),
            target_utilization=sr.number("target_utilization", 0.1, 0.95, 0.7),
            scale_in_cooldown_s=sr.integer("scale_in_cooldown_s", 0, 3600, 300),
            scale_out_cooldown_s=sr.integer("scale_out_cooldown_s", 0, 3600, 60),
        )
        sr.finish()
        if provisioned is None:
            r.fail("provisioned_scaling", raw_scaling, "only with provisioned_concurrency set (it scales that)")
        elif _ints(scaling.min_concurrency, scaling.max_concurrency, provisioned, max_c) and not (
            scaling.min_concurrency <= provisioned <= scaling.max_concurrency <= max_c
        ):
            sr.fail("max_concurrency", scaling.max_concurrency,
                    f"min_concurrency <= provisioned_concurrency ({provisioned}) <= max_concurrency <= endpoint max_concurrency ({max_c})")
    for unsupported, why in (("data_capture_percent", "data capture"), ("rollout", "deployment guardrails"),
                             ("autoscaling", "instance autoscaling (use provisioned_scaling)")):
        if unsupported in r.data:
            r.seen.add(unsupported)
            r.fail(unsupported, r.data[unsupported], f"nothing: serverless endpoints have no {why}")
    return ServerlessEndpoint(
        memory_mb=memory, max_concurrency=max_c, provisioned_concurrency=provisioned, provisioned_scaling=scaling
    )


def _ints(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _parse_variant(r: _Reader, default_name: str) -> Variant:
    name = r.string("name", SAGEMAKER_NAME, "letters, digits and single hyphens, at most 63", default_name)
    if isinstance(name, str) and len(name) > SAGEMAKER_NAME_MAX:
        r.fail("name", name, f"at most {SAGEMAKER_NAME_MAX} characters")
    instance_type = r.string("instance_type", INSTANCE_TYPE, "an ml.* instance type such as ml.m5.large", "ml.m5.large")
    count = r.integer("instance_count", 1, 100, 1)
    weight = r.number("weight", 0, 1_000_000, 1.0)
    model_data = r.get("model_data", None)
    if model_data is not None and not isinstance(model_data, str):
        r.fail("model_data", model_data, "an s3:// URL or a local .tar.gz path")
    r.finish()
    return Variant(name=name, instance_type=instance_type, instance_count=count, weight=weight, model_data=model_data)


def _parse_instance(r: _Reader, env_name: str) -> InstanceEndpoint:
    variants = _parse_variants(r)
    autoscaling = rollout = None
    raw_scaling = r.get("autoscaling", None)
    if raw_scaling is not None:
        ar = _Reader(r.problems, r.key("autoscaling"), raw_scaling)
        autoscaling = InstanceAutoscaling(
            min_instances=ar.integer("min_instances", 1, 100, 1),
            max_instances=ar.integer("max_instances", 1, 100, 4),
            target_invocations_per_instance=ar.integer("target_invocations_per_instance", 1, 100_000, 100),
            scale_in_cooldown_s=ar.integer("scale_in_cooldown_s", 0, 3600, 300),
            scale_out_cooldown_s=ar.integer("scale_out_cooldown_s", 0, 3600, 60),
        )
        ar.finish()
        for v in variants:
            if isinstance(v.instance_type, str) and v.instance_type.startswith("ml.t"):
                r.fail("autoscaling", raw_scaling, f"no autoscaling with T-family instances ({v.name}: {v.instance_type}); "
                       "use e.g. ml.m5.large")
            if _ints(autoscaling.min_instances, autoscaling.max_instances, v.instance_count) and not (
                autoscaling.min_instances <= v.instance_count <= autoscaling.max_instances
            ):
                ar.fail("min_instances", autoscaling.min_instances,
                        f"min_instances <= instance_count ({v.name}: {v.instance_count}) <= max_instances")
        if env_name == "prod" and _ints(autoscaling.min_instances) and autoscaling.min_instances < 2:
            ar.fail("min_instances", autoscaling.min_instances, "at least 2 in prod (scale-in must not drop below two AZs)")
    raw_rollout = r.get("rollout", None)
    if raw_rollout is not None:
        rr = _Reader(r.problems, r.key("rollout"), raw_rollout)
        rollout = Rollout(
            strategy=rr.choice("strategy", ("all_at_once", "canary", "linear"), "canary"),
            step_percent=rr.integer("step_percent", 1, 50, 10),
            wait_s=rr.integer("wait_s", 0, 3600, 300),
            baking_s=rr.integer("baking_s", 0, 3600, 600),
            max_execution_s=rr.integer("max_execution_s", 600, 28800, 3600),
        )
        rr.finish()
        # SageMaker's limits: a canary is at most 50 % of the fleet, a linear step 10-50 %;
        # the whole update must fit its timeout.
        if rollout.strategy == "linear" and _ints(rollout.step_percent) and rollout.step_percent < 10:
            rr.fail("step_percent", rollout.step_percent, "10 to 50 for a linear rollout")
        if _ints(rollout.wait_s, rollout.baking_s, rollout.max_execution_s, rollout.step_percent) and rollout.strategy != "all_at_once":
            steps = 1 if rollout.strategy == "canary" else -(-100 // rollout.step_percent)
            needed = steps * rollout.wait_s + rollout.baking_s
            if rollout.max_execution_s <= needed:
                rr.fail("max_execution_s", rollout.max_execution_s, f"more than the rollout's waits and baking ({needed} s)")
    capture = r.integer("data_capture_percent", 1, 100, None)
    if env_name == "prod":
        for i, v in enumerate(variants):
            if _ints(v.instance_count) and v.instance_count < 2:
                where = "instance_count" if len(variants) == 1 and "variants" not in r.data else f"variants[{i}].instance_count"
                r.fail(where, v.instance_count, "at least 2 in prod: SageMaker spreads a variant's instances across "
                       "Availability Zones, and one instance is one AZ away from an outage")
    return InstanceEndpoint(variants=variants, autoscaling=autoscaling, rollout=rollout, data_capture_percent=capture)


def _parse_variants(r: _Reader) -> tuple[Variant, ...]:
    raw_variants = r.get("variants", None)
    if raw_variants is None:
        # The single-variant shorthand: instance_type / instance_count at this level.
        variant = _Reader(r.problems, r.path, {k: r.data[k] for k in ("instance_type", "instance_count") if k in r.data})
        r.seen.update(("instance_type", "instance_count"))
        return (_parse_variant(variant, "AllTraffic"),)
    for shorthand in ("instance_type", "instance_count"):
        if shorthand in r.data:
            r.seen.add(shorthand)
            r.fail(shorthand, r.data[shorthand], "set it on each variant when 'variants' is given")
    if not isinstance(raw_variants, list) or not raw_variants:
        r.fail("variants", raw_variants, "a non-empty list of variants")
        return ()
    variants = tuple(
        _parse_variant(_Reader(r.problems, f"{r.key('variants')}[{i}]", raw), f"Variant{i + 1}")
        for i, raw in enumerate(raw_variants)
    )
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        r.fail("variants", names, "distinct variant names")
    if sum(v.weight for v in variants if isinstance(v.weight, (int, float))) <= 0:
        r.fail("variants", [v.weight for v in variants], "weights whose sum is above 0")
    return variants


def _parse_environment(problems: list[str], name: str, raw: Any, project: Project, defaults: dict[str, Any]) -> Environment:
    r = _Reader(problems, f"environments.{name}", raw)
    endpoint_raw = r.get("endpoint", {"kind": "serverless"})
    er = _Reader(problems, r.key("endpoint"), endpoint_raw)
    kind = er.choice("kind", ("serverless", "instance"))
    endpoint: ServerlessEndpoint | InstanceEndpoint
    if kind == "instance":
        endpoint = _parse_instance(er, name)
    else:
        endpoint = _parse_serverless(er)
    er.finish()

    model_data = r.get("model_data", defaults.get("model_data"))
    if not isinstance(model_data, str) or not (model_data.startswith("s3://") or model_data.endswith(".tar.gz")):
        r.fail("model_data", model_data, "an s3://bucket/key/model.tar.gz URL or a local path ending in .tar.gz")

    br = _Reader(problems, r.key("batch"), r.get("batch", {}))
    batch = BatchSettings(
        instance_type=br.string("instance_type", INSTANCE_TYPE, "an ml.* instance type", "ml.m5.xlarge"),
        instance_count=br.integer("instance_count", 1, 100, 1),
        max_payload_mb=br.integer("max_payload_mb", *MAX_PAYLOAD_MB_RANGE, 6),
        max_concurrent_transforms=br.integer("max_concurrent_transforms", 1, 100, 1),
    )
    br.finish()
    if (
        isinstance(batch.max_payload_mb, int)
        and isinstance(batch.max_concurrent_transforms, int)
        and batch.max_payload_mb * batch.max_concurrent_transforms > TRANSFORM_PAYLOAD_BUDGET_MB
    ):
        br.fail("max_concurrent_transforms", batch.max_concurrent_transforms,
                f"max_concurrent_transforms x max_payload_mb <= {TRANSFORM_PAYLOAD_BUDGET_MB}")

    ar = _Reader(problems, r.key("alarms"), r.get("alarms", {}))
    alarms = AlarmSettings(
        model_latency_ms=ar.number("model_latency_ms", 1, 60_000, 1000.0),
        memory_utilization_percent=ar.number("memory_utilization_percent", 1, 100, 80.0),
        client_error_rate_percent=ar.number("client_error_rate_percent", 0, 100, 5.0),
        email=ar.string("email", EMAIL, "an e-mail address or null", None),
        idle_hours=ar.integer("idle_hours", 1, 24, 24 if name == "dev" else None),
    )
    ar.finish()

    kr = _Reader(problems, r.key("encryption"), r.get("encryption", {}))
    encryption = Encryption(
        mode=kr.choice("mode", ("create", "import"), "create"),
        key_arn=kr.string("key_arn", KMS_KEY_ARN, "arn:aws:kms:REGION:ACCOUNT:key/ID", None),
    )
    kr.finish()
    if (encryption.mode == "import") != (encryption.key_arn is not None):
        kr.fail("key_arn", encryption.key_arn, "a key ARN exactly when mode is \"import\"")

    nr = _Reader(problems, r.key("network"), r.get("network", {}))
    subnets = nr.get("subnet_ids", [])
    groups = nr.get("security_group_ids", [])
    network = Network(
        subnet_ids=tuple(subnets) if isinstance(subnets, list) else (),
        security_group_ids=tuple(groups) if isinstance(groups, list) else (),
        isolation=nr.flag("isolation", False),
    )
    for key, values, pattern in (("subnet_ids", subnets, SUBNET_ID), ("security_group_ids", groups, SECURITY_GROUP_ID)):
        if not isinstance(values, list) or not all(isinstance(v, str) and pattern.match(v) for v in values):
            nr.fail(key, values, f"a list of ids like {pattern.pattern}")
    if bool(network.subnet_ids) != bool(network.security_group_ids):
        nr.fail("subnet_ids", subnets, "subnet_ids and security_group_ids together (a VPC needs both)")
    if isinstance(endpoint, ServerlessEndpoint) and (network.subnet_ids or network.isolation):
        nr.fail("isolation" if network.isolation else "subnet_ids", nr.data or None, "nothing: serverless endpoints take no VPC and no network isolation")
    nr.finish()

    env = Environment(
        name=name,
        project=project,
        endpoint=endpoint,
        model_data=model_data,
        inference_role=r.choice("inference_role", ("create", "import"), "create"),
        bucket=r.choice("bucket", ("create", "import"), "create"),
        retain_data=r.flag("retain_data", name != "dev"),
        account=r.string("account", ACCOUNT, "a 12-digit AWS account id or null", None),
        region=r.string("region", REGION, "an AWS region such as ap-northeast-1, or null", None),
        batch=batch,
        alarms=alarms,
        encryption=encryption,
        network=network,
        log_retention_days=r.choice("log_retention_days", LOG_RETENTION_DAYS, 365 if name == "prod" else 30),
    )
    r.finish()
    _check_names(r, env)
    return env


def _check_names(r: _Reader, env: Environment) -> None:
    """Derived names must fit the services' limits, or CloudFormation fails late."""
    if not SAGEMAKER_NAME.match(env.endpoint_name) or len(env.endpoint_name) > SAGEMAKER_NAME_MAX:
        r.problems.append(
            f"endpoint name {env.endpoint_name!r} (from team, project and environment '{env.name}'): "
            f"allowed: at most {SAGEMAKER_NAME_MAX} characters matching {SAGEMAKER_NAME.pattern}; shorten team or project"
        )
    for role in (env.inference_role_name, env.batch_role_name):
        if len(role) > IAM_ROLE_NAME_MAX:
            r.problems.append(
                f"role name {role!r} ({len(role)} characters, from team_fullname and project_camel): "
                f"allowed: at most {IAM_ROLE_NAME_MAX}; shorten team_fullname or project_camel"
            )
    if not BUCKET_NAME.match(env.bucket_name) or "--" in env.bucket_name:
        r.problems.append(
            f"bucket name {env.bucket_name!r} (from company, team and project): "
            "allowed: 3-63 lowercase letters, digits and hyphens"
        )


def parse_config(raw: Any) -> ServingConfig:
    """Parse the `serving` context object; raise ConfigError listing every problem."""
    problems: list[str] = []
    r = _Reader(problems, "", raw)
    project = Project(
        company=r.string("company", LOWER_NAME, "lowercase letters, digits and hyphens", required=True),
        team=r.string("team", LOWER_NAME, "lowercase letters, digits and hyphens", required=True),
        team_fullname=r.string("team_fullname", CAMEL_NAME, "PascalCase letters and digits", required=True),
        project=r.string("project", LOWER_NAME, "lowercase letters, digits and hyphens", required=True),
        project_camel=r.string("project_camel", CAMEL_NAME, "PascalCase letters and digits", required=True),
        framework_version=r.choice("framework_version", framework_versions(), DEFAULT_FRAMEWORK_VERSION),
    )
    defaults = {"model_data": r.get("model_data", "model.tar.gz")}
    raw_envs = r.get("environments", required=True)
    environments: dict[str, Environment] = {}
    if raw_envs is not None:
        if not isinstance(raw_envs, dict):
            r.fail("environments", raw_envs, f"an object with keys {', '.join(ENVIRONMENT_NAMES)}")
        else:
            for name, env_raw in raw_envs.items():
                if name not in ENVIRONMENT_NAMES:
                    r.fail(f"environments.{name}", name, f"environment names {', '.join(ENVIRONMENT_NAMES)}")
                    continue
                environments[name] = _parse_environment(problems, name, env_raw, project, defaults)
    r.finish()
    if problems:
        raise ConfigError(problems)
    return ServingConfig(project=project, environments=environments)


def load_config(cdk_json: Path = CDK_JSON) -> ServingConfig:
    """The configuration as `cdk synth` sees it (for tools that run outside the CDK app)."""
    context = json.loads(cdk_json.read_text())["context"]
    return parse_config(context.get(CONTEXT_KEY))
