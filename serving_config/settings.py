"""The settings the constructs take, validated once: SageMaker's limits as types.

The app's configuration (`serving_config.config`) parses `cdk.json` into these same classes, so
a construct receives what was checked, never a copy of it. A bad value becomes one
problem naming the key, the value and what is allowed; every problem of a document is
collected (see `Settings`). No CDK import: the configuration loads this without jsii.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, ClassVar, Iterator, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, WrapValidator, model_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

# SageMaker's and S3's name rules, re-exported beside the settings that use them.
from serving_runtime.contract import S3_BUCKET_NAME, SAGEMAKER_NAME, SAGEMAKER_NAME_MAX  # noqa: F401

# A problem found by a rule across fields: (key path below the object, value, what is allowed).
Problem = tuple[tuple[str | int, ...], Any, str]


def allowing(allowed: str) -> WrapValidator:
    """Replace pydantic's own message about a value with what is allowed (nested errors,
    such as a bad field inside a list item, keep their own)."""

    def check(value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError as error:
            nested = [e for e in error.errors() if e["loc"]]
            if not nested:
                raise PydanticCustomError("not_allowed", "{allowed}", {"allowed": allowed}) from None
            raise ValidationError.from_exception_data("nested", [*map(_carried, nested)]) from None

    return WrapValidator(check)


def integer(low: int, high: int) -> Any:
    return Annotated[int, Strict(), Field(ge=low, le=high), allowing(f"an integer from {low} to {high}")]


def number(low: float, high: float) -> Any:
    return Annotated[float, Strict(), Field(ge=low, le=high), allowing(f"a number from {low:g} to {high:g}")]


def matching(pattern: str, allowed: str) -> Any:
    return Annotated[str, Strict(), Field(pattern=pattern), allowing(allowed)]


def one_of(*values: Any) -> Any:
    return Annotated[Literal[values], allowing(" | ".join(json.dumps(v) for v in values))]


Flag = Annotated[bool, Strict(), allowing("true | false")]
_T = TypeVar("_T")
# A field the document around an object gives it (an environment's name, its project):
# declared, but never a key of the object's own JSON, nor in its schema.
FromDocument = Annotated[_T, SkipJsonSchema(), Field(exclude=True)]


def _error(loc: tuple[str | int, ...], value: Any, kind: str, ctx: dict[str, Any]) -> InitErrorDetails:
    message = ctx.get("message", "{allowed}")
    return InitErrorDetails(type=PydanticCustomError(kind, message, ctx), loc=loc, input=value)


def _carried(error: ErrorDetails) -> InitErrorDetails:
    """An error raised below, carried up unchanged (type, place, value, context)."""
    return _error(error["loc"], error["input"], error["type"], {**error.get("ctx", {}), "message": error["msg"]})


class Settings(BaseModel):
    """Frozen; unknown keys and cross-field rules (`problems`) are reported together with
    every other bad value of the document, not one at a time."""

    # Unknown keys are reported by `_collect_problems` (with the keys allowed), and refused by the schema.
    model_config = ConfigDict(frozen=True, extra="ignore", json_schema_extra={"additionalProperties": False})
    # Keys that are known but refused here, with what is allowed instead of them.
    refused_keys: ClassVar[dict[str, str]] = {}

    def problems(self) -> Iterator[Problem]:
        """The rules across this object's fields (each field's own range is its type)."""
        return iter(())

    @model_validator(mode="wrap")
    @classmethod
    def _collect_problems(cls, data: Any, handler: Any) -> Any:
        errors: list[InitErrorDetails] = []
        if isinstance(data, dict):
            known = {field.alias or name for name, field in cls.model_fields.items() if not field.exclude}
            for key in sorted(set(data) - known, key=str):
                if key in cls.refused_keys:
                    errors.append(_error((key,), data[key], "not_allowed", {"allowed": cls.refused_keys[key]}))
                else:
                    errors.append(_error((key,), data[key], "unknown_key", {"allowed": ", ".join(sorted(known))}))
            # What the document gives (FromDocument) is not read from the object's own keys.
            data = {key: value for key, value in data.items() if key in known or key not in cls.model_fields}
        try:
            settings = handler(data)
        except ValidationError as error:
            raise ValidationError.from_exception_data(cls.__name__, [*map(_carried, error.errors()), *errors]) from None
        errors += [_error(loc, value, "not_allowed", {"allowed": allowed}) for loc, value, allowed in settings.problems()]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return settings


def describe(error: ErrorDetails, *, root: str, hidden: frozenset[Any] = frozenset()) -> str:
    """One line: the dotted key, the value and what is allowed."""
    loc = [part for part in error["loc"] if part not in hidden]
    key = "".join(map(_key_part, loc)).lstrip(".") or root
    ctx, value = error.get("ctx", {}), error["input"]
    if "key" in ctx and isinstance(value, dict):  # a problem with one key of this object
        key, value = f"{key}.{ctx['key']}", value.get(ctx["key"])
    if error["type"] == "missing":
        return f"{key}: missing; it is required"
    if error["type"] == "unknown_key":
        return f"{key}: unknown key; allowed keys: {ctx['allowed']}"
    allowed = ctx.get("allowed") or _ALLOWED.get(error["type"], error["msg"])
    return f"{key}: got {json.dumps(value, default=repr)}; allowed: {allowed}"


def _key_part(part: str | int) -> str:
    """`.name`, `[0]` for a list item, `["odd key"]` for a key that is not a plain word."""
    if isinstance(part, int):
        return f"[{part}]"
    return f".{part}" if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f"[{json.dumps(part)}]"


_ALLOWED = {"model_type": "an object", "model_attributes_type": "an object", "dict_type": "an object",
            "tuple_type": "a list", "list_type": "a list"}


# --------------------------------------------------------------- SageMaker's limits
# ../shared/reference/SAGEMAKER.md, "Limits".
SERVERLESS_MEMORY_SIZES = (1024, 2048, 3072, 4096, 5120, 6144)
Concurrency = integer(1, 200)
Cooldown = integer(0, 3600)
InstanceCount = integer(1, 100)
INSTANCE_TYPE = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"
InstanceType = matching(INSTANCE_TYPE, "an ml.* instance type such as ml.m5.large")
VariantName = Annotated[str, Strict(), Field(pattern=SAGEMAKER_NAME, max_length=SAGEMAKER_NAME_MAX),
                        allowing(f"letters, digits and single hyphens, at most {SAGEMAKER_NAME_MAX}")]


class ServerlessSettings(Settings):
    """A serverless variant's capacity."""

    memory_mb: one_of(*SERVERLESS_MEMORY_SIZES) = 2048
    max_concurrency: Concurrency = 5
    provisioned_concurrency: Concurrency | None = None

    def problems(self) -> Iterator[Problem]:
        if self.provisioned_concurrency is not None and self.provisioned_concurrency > self.max_concurrency:
            yield ("provisioned_concurrency",), self.provisioned_concurrency, f"at most max_concurrency ({self.max_concurrency})"


# What SageMaker's own tools call a lone variant.
DEFAULT_VARIANT_NAME = "AllTraffic"


class VariantSettings(Settings):
    """One instance-backed production variant: its fleet and its share of the traffic."""

    name: VariantName = DEFAULT_VARIANT_NAME
    instance_type: InstanceType = "ml.m5.large"
    instance_count: InstanceCount = 1
    weight: number(0, 1_000_000) = 1.0


class InstanceAutoscalingSettings(Settings):
    """Target tracking on SageMakerVariantInvocationsPerInstance, per variant."""

    min_instances: InstanceCount = 1
    max_instances: InstanceCount = 4
    target_invocations_per_instance: integer(1, 100_000) = 100
    scale_in_cooldown_s: Cooldown = 300
    scale_out_cooldown_s: Cooldown = 60


class ProvisionedConcurrencySettings(Settings):
    """Target tracking on SageMakerVariantProvisionedConcurrencyUtilization."""

    min_concurrency: Concurrency = 1
    # Defaults to the endpoint's max_concurrency (filled in by the endpoint's settings).
    max_concurrency: Concurrency = Field(1, json_schema_extra=lambda schema: schema.pop("default"))
    target_utilization: number(0.1, 0.95) = 0.7
    scale_in_cooldown_s: Cooldown = 300
    scale_out_cooldown_s: Cooldown = 60


class RolloutSettings(Settings):
    """Blue/green deployment guardrails: how traffic moves to the new fleet."""

    strategy: one_of("all_at_once", "canary", "linear") = "canary"
    step_percent: integer(1, 50) = 10  # canary size, or linear step
    wait_s: integer(0, 3600) = 300  # between traffic shifts
    baking_s: integer(0, 3600) = 600  # after all traffic moved, before the old fleet goes
    max_execution_s: integer(600, 28800) = 3600

    def problems(self) -> Iterator[Problem]:
        # SageMaker's limits: a canary is at most 50 % of the fleet, a linear step 10-50 %;
        # the whole update must fit its timeout.
        if self.strategy == "linear" and self.step_percent < 10:
            yield ("step_percent",), self.step_percent, "10 to 50 for a linear rollout"
        if self.strategy != "all_at_once":
            steps = 1 if self.strategy == "canary" else -(-100 // self.step_percent)
            needed = steps * self.wait_s + self.baking_s
            if self.max_execution_s <= needed:
                yield ("max_execution_s",), self.max_execution_s, f"more than the rollout's waits and baking ({needed} s)"


IdleHours = integer(1, 24)
SNS_TOPIC_ARN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$"


class AlarmSettings(Settings):
    model_latency_ms: number(1, 60_000) = 1000.0
    memory_utilization_percent: number(1, 100) = 80.0
    client_error_rate_percent: number(0, 100) = 5.0
    email: matching(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "an e-mail address or null") | None = None
    # An existing topic the alarms notify too, e.g. the on-call pager's.
    topic_arn: matching(SNS_TOPIC_ARN, "an SNS topic ARN such as arn:aws:sns:REGION:ACCOUNT:NAME, or null") | None = None
    # Refuse to synth unless someone is paged (always on in prod).
    required: Flag = False
    # Notify when the endpoint had no invocation for this many hours (dev: destroy it).
    idle_hours: IdleHours | None = None

    def problems(self) -> Iterator[Problem]:
        if self.required and self.email is None and self.topic_arn is None:
            yield (("email",), None, "an e-mail address, or an existing SNS topic ARN in alarms.topic_arn: "
                   "alarms.required is on (always in prod), so an alarm must page someone")


SUBNET_ID = r"^subnet-[0-9a-f]{8,17}$"
SECURITY_GROUP_ID = r"^sg-[0-9a-f]{8,17}$"


class NetworkSettings(Settings):
    """Where a model's container runs: in a VPC (subnets and security groups), and with
    no network at all (isolation) unless turned off for a written reason.

    An isolated container gets no network and no AWS credentials: our handler and the
    pickle it loads cannot reach the internet or call AWS with the model's role, even
    with live requests in hand. The reason for turning it off is shown at every synth."""

    subnet_ids: tuple[matching(SUBNET_ID, f"an id like {SUBNET_ID}"), ...] = ()
    security_group_ids: tuple[matching(SECURITY_GROUP_ID, f"an id like {SECURITY_GROUP_ID}"), ...] = ()
    isolation: Flag = True
    isolation_off_reason: Annotated[str, Strict(), Field(pattern=r"\S"), allowing("a written reason, or null")] | None = None

    def problems(self) -> Iterator[Problem]:
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            yield ("subnet_ids",), list(self.subnet_ids), "subnet_ids and security_group_ids together (a VPC needs both)"
        if not self.isolation and self.isolation_off_reason is None:
            yield (("isolation_off_reason",), None,
                   "a written reason (shown at every synth) when isolation is false: an open container holds its "
                   "role's credentials and can reach the network while it runs the pickle")
        if self.isolation and self.isolation_off_reason is not None:
            yield ("isolation_off_reason",), self.isolation_off_reason, "null while isolation is true"


# The data bucket's prefixes: batch inputs and outputs, and the endpoint's captured requests.
BATCH_INPUT_PREFIX = "batch-input/"
BATCH_OUTPUT_PREFIX = "batch-output/"
DATA_CAPTURE_PREFIX = "data-capture/"
# The registry bucket's archives (`endpointctl register` writes them there).
REGISTRY_ARCHIVE_PREFIX = "model-registry/"
# Labels collected after the fact (the documented ground-truth format), and the monitor's reports.
GROUND_TRUTH_PREFIX = "ground-truth/"
MONITORING_PREFIX = "monitoring/"
Days = integer(1, 36500)


class LifecycleSettings(Settings):
    """Days before objects under each prefix of the data bucket expire; null keeps them.

    Captured requests and batch data are customer transactions: kept only as long as
    someone needs them. In a versioned bucket an expiry leaves a noncurrent version,
    which goes after `noncurrent_version_days`; an upload that never completed goes
    after `incomplete_upload_days` (its parts are billed but invisible)."""

    data_capture_days: Days | None = 90
    batch_input_days: Days | None = 30
    batch_output_days: Days | None = 90
    # Labels outlive the captures they judge: chargebacks arrive weeks later.
    ground_truth_days: Days | None = 180
    monitoring_days: Days | None = 400
    noncurrent_version_days: Days | None = 30
    incomplete_upload_days: integer(1, 365) = 7

    def by_prefix(self) -> dict[str, int | None]:
        return {
            DATA_CAPTURE_PREFIX: self.data_capture_days,
            BATCH_INPUT_PREFIX: self.batch_input_days,
            BATCH_OUTPUT_PREFIX: self.batch_output_days,
            GROUND_TRUTH_PREFIX: self.ground_truth_days,
            MONITORING_PREFIX: self.monitoring_days,
        }


# The delivery pipeline's artifacts bucket keeps an overwritten or expired version this
# long, and aborts an upload that never completed after this many days (its own ages:
# cdk.json's `pipeline`).
PIPELINE_NONCURRENT_VERSION_DAYS = 30
PIPELINE_INCOMPLETE_UPLOAD_DAYS = 7


class MonitoringSettings(Settings):
    """The scheduled monitor of an instance endpoint's captured traffic (docs/monitoring.md).

    Drift runs every hour on the hour before (at `drift_minute`, after capture's few
    minutes of delivery lag); realized quality runs daily at `quality_hour` on the day
    `quality_label_delay_days` back, with every label collected since. Thresholds: PSI
    above `psi` (with KS beyond chance), the flag rate beyond x or / `flag_rate_ratio`,
    recall more than `recall_drop` under the baseline's (once `min_labelled_positives`
    frauds are labelled), more than `max_invalid_rate` unreadable records, a feature with
    more than `max_out_of_range_rate` of its values non-finite or out of the baseline's range."""

    enabled: Flag = True
    baseline: Annotated[str, Strict(), Field(pattern=r"\.json$"), allowing("a local .json path, or null")] | None = Field(
        None, description="default: beside model_data, <name>.baseline.json (as `endpointctl train-sample` writes it)")
    psi: number(0.01, 10) = 0.2
    flag_rate_ratio: number(1.1, 100) = 2.0
    recall_drop: number(0.01, 1) = 0.1
    min_labelled_positives: integer(1, 1_000_000) = 20
    max_invalid_rate: number(0, 1) = 0.01
    max_out_of_range_rate: number(0, 1) = 0.05
    drift_minute: integer(0, 59) = 15
    quality_hour: integer(0, 23) = 3
    quality_label_delay_days: integer(1, 90) = 7
    instance_type: matching(INSTANCE_TYPE, "an ml.* instance type") = "ml.m5.large"
    max_runtime_minutes: integer(5, 55) = 30

    def thresholds(self) -> dict[str, float]:
        """The monitor's own threshold names (monitoring.monitor.DEFAULT_THRESHOLDS)."""
        return {"psi": self.psi, "flag_rate_ratio": self.flag_rate_ratio, "recall_drop": self.recall_drop,
                "min_labelled_positives": self.min_labelled_positives, "max_invalid_rate": self.max_invalid_rate,
                "max_out_of_range_rate": self.max_out_of_range_rate}


class AccessLogSettings(Settings):
    """Where the data bucket's S3 server access logs go: a log bucket the stack creates
    (SSE-S3, expiring after `retention_days`; null keeps them), or an existing `bucket`
    whose policy lets S3 log delivery write for ours."""

    bucket: matching(rf"^{S3_BUCKET_NAME}$", "an existing bucket's name, or null") | None = None
    retention_days: Days | None = 365

    def problems(self) -> Iterator[Problem]:
        if self.bucket is not None and "retention_days" in self.model_fields_set:
            yield (("retention_days",), self.retention_days,
                   "nothing with an existing bucket: its own lifecycle rules keep its logs")
