"""The project's configuration: `cdk.json`'s `serving` object, parsed once into frozen,
typed settings (pydantic) before any construct exists and before any AWS call.

Each field's type holds its range; rules across fields are each class's `problems`.
Every problem names the key, the value and what is allowed, and all of them are
reported together in one `ConfigError`. `schema/serving.schema.json` is generated from
these classes (`python -m serving_config.schema`). No CDK import: `endpointctl` reads the same
configuration without starting a jsii runtime.
"""

from __future__ import annotations

import filecmp
import json
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Iterator, Literal, get_args

from pydantic import BeforeValidator, Discriminator, Field, Strict, ValidationError, ValidationInfo
from pydantic import field_validator, model_validator
from pydantic_core import PydanticCustomError

from serving_config.settings import (
    INSTANCE_TYPE, AccessLogSettings, Flag, IdleHours, InstanceCount, InstanceType, AlarmSettings, InstanceAutoscalingSettings,
    VariantName,
    LifecycleSettings, MonitoringSettings, NetworkSettings, Problem,
    FromDocument, ProvisionedConcurrencySettings, RolloutSettings, ServerlessSettings, Settings, VariantSettings, allowing,
    describe, integer, matching, one_of,
)
from serving_runtime.contract import (
    BUCKET_NAME_MAX, INSTANCE_PAYLOAD_LIMIT_BYTES, MIB, SERVERLESS_PAYLOAD_LIMIT_BYTES, TRANSFORM_PAYLOAD_BUDGET_MB,
)
from serving_runtime.image import DEFAULT_FRAMEWORK_VERSION, framework_versions
from serving_config.model_package import ALLOWED as REFERENCE_ALLOWED
from serving_config.model_package import GROUP_NAME, REFERENCE_PATTERN
from serving_config.names import ENVIRONMENT_NAME, ENVIRONMENT_NAME_ALLOWED, EnvironmentNames, project_prefix, registry_bucket_name
from serving_config.paths import PROJECT_ROOT

CONNECTION_ARN = r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/[0-9a-f-]{36}$"

CDK_JSON = PROJECT_ROOT / "cdk.json"
CONTEXT_KEY = "serving"
ENDPOINT_KINDS = ("serverless", "instance")
# An environment's tier selects its defaults and rules; dev, staging and prod are their own tier.
Tier = Literal["dev", "staging", "prod"]
TIERS: tuple[str, ...] = get_args(Tier)
# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)

LowerName = matching(r"^[a-z][a-z0-9-]*[a-z0-9]$", "lowercase letters, digits and hyphens")
PascalName = matching(r"^[A-Z][A-Za-z0-9]*$", "PascalCase letters and digits")
EnvironmentName = matching(ENVIRONMENT_NAME, ENVIRONMENT_NAME_ALLOWED)
Provision = one_of("create", "import")
DEFAULT_MODEL_DATA = "model.tar.gz"  # beside cdk.json, as `endpointctl train-sample` writes it
MODEL_DATA = r"^(s3://[\s\S]*|[\s\S]*\.tar\.gz)$"
ModelDataReference = matching(MODEL_DATA, "an s3://bucket/key/model.tar.gz URL or a local path ending in .tar.gz")


class ConfigError(ValueError):
    """Bad configuration. `problems` holds one line per bad key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration in cdk.json context '{CONTEXT_KEY}':\n{lines}")


class OneProblem(ConfigError):
    """A problem said in one line, not listed under the context key."""

    def __init__(self, message: str):
        self.problems = [message]
        ValueError.__init__(self, message)


class CdkJsonError(OneProblem):
    """cdk.json is not JSON at all."""


class UnknownEnvironment(OneProblem):
    """`-c env=NAME` or `--env NAME` names no environment of cdk.json."""


class ServerlessEndpoint(ServerlessSettings):
    kind: Literal["serverless"] = "serverless"
    provisioned_scaling: ProvisionedConcurrencySettings | None = None
    refused_keys: ClassVar[dict[str, str]] = {
        "data_capture_percent": "nothing: serverless endpoints have no data capture",
        "rollout": "nothing: serverless endpoints have no deployment guardrails",
        "autoscaling": "nothing: serverless endpoints have no instance autoscaling (use provisioned_scaling)",
        "shadow": "nothing: serverless endpoints take no shadow variant (SageMaker: instance endpoints only; "
                  "use kind \"instance\")",
    }
    payload_limit_bytes: ClassVar[int] = SERVERLESS_PAYLOAD_LIMIT_BYTES

    @field_validator("provisioned_scaling", mode="before")
    @classmethod
    def _scale_up_to_the_endpoints_max(cls, scaling: Any, info: ValidationInfo) -> Any:
        if isinstance(scaling, dict) and "max_concurrency" not in scaling and "max_concurrency" in info.data:
            return {**scaling, "max_concurrency": info.data["max_concurrency"]}
        return scaling

    def problems(self) -> Iterator[Problem]:
        yield from super().problems()
        scaling, provisioned = self.provisioned_scaling, self.provisioned_concurrency
        if scaling is None:
            return
        if provisioned is None:
            yield ("provisioned_scaling",), scaling.model_dump(), "only with provisioned_concurrency set (it scales that)"
        elif not scaling.min_concurrency <= provisioned <= scaling.max_concurrency <= self.max_concurrency:
            yield (("provisioned_scaling", "max_concurrency"), scaling.max_concurrency,
                   f"min_concurrency <= provisioned_concurrency ({provisioned}) <= max_concurrency "
                   f"<= endpoint max_concurrency ({self.max_concurrency})")


class Variant(VariantSettings):
    # A challenger may serve another artifact; None means the environment's model.
    model_data: Annotated[str, Strict(), allowing("an s3:// URL or a local .tar.gz path")] | None = None


class ShadowVariant(Settings):
    """A challenger on a copy of the production variant's requests (issue 20): SageMaker
    returns only the production answer; data capture logs both.

    The share copied is not a field of the endpoint config: SageMaker copies to the
    shadow the share its InitialVariantWeight is of the production variant's weight
    (docs/shadow.md, "The share"). `sampling_percent` is that share, as the shadow test
    API's SamplingPercentage (an integer, at most 100)."""

    name: VariantName = "Shadow"
    model_data: ModelDataReference
    # Default: the production variant's fleet.
    instance_type: InstanceType | None = None
    instance_count: InstanceCount | None = None
    sampling_percent: integer(1, 100)
    autoscaling: InstanceAutoscalingSettings | None = None
    # Who hears the shadow's alarms: its own topic, never the paging one (a shadow harms no caller).
    notify_email: matching(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "an e-mail address or null") | None = None

    def fleet(self, production: VariantSettings) -> VariantSettings:
        """The shadow as a variant: its weight is `sampling_percent` of the production weight."""
        return VariantSettings(
            name=self.name,
            instance_type=self.instance_type or production.instance_type,
            instance_count=self.instance_count or production.instance_count,
            weight=production.weight * self.sampling_percent / 100,
        )

    def problems(self) -> Iterator[Problem]:
        scaling = self.autoscaling
        if scaling is not None and self.instance_count is not None and not (
                scaling.min_instances <= self.instance_count <= scaling.max_instances):
            yield (("autoscaling", "min_instances"), scaling.min_instances,
                   f"min_instances <= instance_count ({self.instance_count}) <= max_instances")


class InstanceEndpoint(Settings):
    kind: Literal["instance"]
    # The single-variant shorthand; with `variants`, each variant says its own.
    instance_type: InstanceType = "ml.m5.large"
    instance_count: InstanceCount = 1
    variant_list: Annotated[tuple[Variant, ...], Field(min_length=1), allowing("a non-empty list of variants")] | None = (
        Field(None, alias="variants"))
    autoscaling: InstanceAutoscalingSettings | None = None
    rollout: RolloutSettings | None = None
    data_capture_percent: integer(1, 100) | None = None
    shadow: ShadowVariant | None = None
    payload_limit_bytes: ClassVar[int] = INSTANCE_PAYLOAD_LIMIT_BYTES

    @field_validator("variant_list", mode="before")
    @classmethod
    def _name_unnamed_variants(cls, variants: Any) -> Any:
        if not isinstance(variants, list):
            return variants
        return [{"name": f"Variant{i + 1}", **v} if isinstance(v, dict) else v for i, v in enumerate(variants)]

    @property
    def variants(self) -> tuple[Variant, ...]:
        if self.variant_list is not None:
            return self.variant_list
        return (Variant(instance_type=self.instance_type, instance_count=self.instance_count),)

    def problems(self) -> Iterator[Problem]:
        if self.variant_list is not None:
            for shorthand in sorted({"instance_type", "instance_count"} & self.model_fields_set):
                yield (shorthand,), getattr(self, shorthand), "set it on each variant when 'variants' is given"
            names = [v.name for v in self.variant_list]
            if len(set(names)) != len(names):
                yield ("variants",), names, "distinct variant names"
            if sum(v.weight for v in self.variant_list) <= 0:
                yield ("variants",), [v.weight for v in self.variant_list], "weights whose sum is above 0"
        yield from self._shadow_problems()
        scaling = self.autoscaling
        for v in self.variants if scaling else ():
            if v.instance_type.startswith("ml.t"):
                yield (("autoscaling",), scaling.model_dump(),
                       f"no autoscaling with T-family instances ({v.name}: {v.instance_type}); use e.g. ml.m5.large")
            if not scaling.min_instances <= v.instance_count <= scaling.max_instances:
                yield (("autoscaling", "min_instances"), scaling.min_instances,
                       f"min_instances <= instance_count ({v.name}: {v.instance_count}) <= max_instances")


    def _shadow_problems(self) -> Iterator[Problem]:
        """SageMaker's shadow rules (reference, "Watching a live endpoint"), each one line."""
        shadow = self.shadow
        if shadow is None:
            return
        if len(self.variants) > 1:
            yield (("shadow",), shadow.name, f"no shadow beside several production variants "
                   f"({', '.join(v.name for v in self.variants)}): SageMaker takes one production variant and one "
                   "shadow; end the A/B split first")
        if shadow.name in [v.name for v in self.variants]:
            yield ("shadow", "name"), shadow.name, "a name other than the production variant's"
        if self.data_capture_percent is None:
            yield (("data_capture_percent",), None, "a percentage from 1 to 100 when a shadow is set: the "
                   "champion-vs-challenger report reads the captured pairs")
        fleet = shadow.fleet(self.variants[0])
        if shadow.autoscaling is not None and fleet.instance_type.startswith("ml.t"):
            yield (("shadow", "autoscaling"), shadow.autoscaling.model_dump(),
                   f"no autoscaling with T-family instances ({fleet.instance_type}); use e.g. ml.m5.large")


Endpoint = Annotated[ServerlessEndpoint | InstanceEndpoint, Discriminator("kind")]


class BatchSettings(Settings):
    instance_type: matching(INSTANCE_TYPE, "an ml.* instance type") = "ml.m5.xlarge"
    instance_count: InstanceCount = 1
    # The whole mini-batch must fit the handler and the transform's own limit.
    max_payload_mb: integer(1, 100) = INSTANCE_PAYLOAD_LIMIT_BYTES // MIB
    max_concurrent_transforms: integer(1, 100) = 1

    @property
    def payload_limit_bytes(self) -> int:
        return self.max_payload_mb * MIB

    def problems(self) -> Iterator[Problem]:
        if self.max_payload_mb * self.max_concurrent_transforms > TRANSFORM_PAYLOAD_BUDGET_MB:
            yield (("max_concurrent_transforms",), self.max_concurrent_transforms,
                   f"max_concurrent_transforms x max_payload_mb <= {TRANSFORM_PAYLOAD_BUDGET_MB}")


class Encryption(Settings):
    """`create` a key (rotation on) or `import` one by ARN, for endpoint storage,
    data capture, batch output and the alarm topic."""

    mode: Provision = "create"
    key_arn: matching(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$",
                      "arn:aws:kms:REGION:ACCOUNT:key/ID") | None = None

    def problems(self) -> Iterator[Problem]:
        if (self.mode == "import") != (self.key_arn is not None):
            yield ("key_arn",), self.key_arn, 'a key ARN exactly when mode is "import"'


class Project(Settings):
    company: LowerName
    team: LowerName
    team_fullname: PascalName
    project: LowerName
    project_camel: PascalName
    framework_version: one_of(*framework_versions()) = DEFAULT_FRAMEWORK_VERSION


class Environment(EnvironmentNames, Settings):
    """One deployment target: its own stack, endpoint, bucket and roles. Its tier's
    subclass holds the tier's defaults and rules. `name` (its key in `environments`) and
    `project` come from the document around it, given when the map is validated (never
    keys of the environment itself)."""

    tier: Tier
    endpoint: Endpoint = ServerlessEndpoint()
    model_data: ModelDataReference = Field(DEFAULT_MODEL_DATA, description="default: the top-level model_data")
    model_package: matching(REFERENCE_PATTERN, REFERENCE_ALLOWED) | None = Field(
        None, description="an approved version from the model registry instead of model_data, resolved at synth "
        "and recorded in cdk.context.json")
    inference_role: Provision = "create"
    bucket: Provision = "create"
    retain_data: Flag = True
    account: matching(r"^\d{12}$", "a 12-digit AWS account id or null") | None = None
    region: matching(r"^[a-z]{2}(-[a-z]+)+-\d$", "an AWS region such as ap-northeast-1, or null") | None = None
    batch: BatchSettings = BatchSettings()
    alarms: AlarmSettings = AlarmSettings()
    encryption: Encryption = Encryption()
    network: NetworkSettings = NetworkSettings()
    log_retention_days: one_of(*LOG_RETENTION_DAYS) = 30
    lifecycle: LifecycleSettings = LifecycleSettings()
    access_logs: AccessLogSettings = AccessLogSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    name: FromDocument[str] = ""
    project: FromDocument[Project | None] = None

    @field_validator("endpoint", mode="before")
    @classmethod
    def _known_kind(cls, endpoint: Any) -> Any:
        if isinstance(endpoint, dict) and endpoint.get("kind") not in ENDPOINT_KINDS:
            allowed = " | ".join(json.dumps(k) for k in ENDPOINT_KINDS)
            raise PydanticCustomError("not_allowed", "{allowed}", {"allowed": allowed, "key": "kind"})
        return endpoint

    def problems(self) -> Iterator[Problem]:
        if self.model_package is not None and "model_data" in self.model_fields_set:
            yield ("model_data",), self.model_data, "nothing when model_package is set (the approved version is the model)"
        yield from self._identical_challenger()
        # A serverless endpoint's model cannot be isolated (the synth says so); isolation
        # still applies to this environment's batch model.
        if self.endpoint.kind == "serverless" and self.network.subnet_ids:
            yield ("network", "subnet_ids"), list(self.network.subnet_ids), "nothing: serverless endpoints take no VPC"
        if self.network.isolation:
            # An isolated container cannot download its code: it is packed into model.tar.gz at synth.
            artifacts = [(("model_data",), self.model_data)]
            if self.endpoint.kind == "instance" and self.endpoint.variant_list is not None:
                artifacts += [(("endpoint", "variants", i, "model_data"), v.model_data)
                              for i, v in enumerate(self.endpoint.variant_list)]
            if self.endpoint.kind == "instance" and self.endpoint.shadow is not None:
                artifacts.append((("endpoint", "shadow", "model_data"), self.endpoint.shadow.model_data))
            for where, reference in artifacts:
                if reference is not None and reference.startswith("s3://"):
                    yield (where, reference, "a local .tar.gz while network.isolation is on (the handler is packed "
                           "into the archive at synth), or network.isolation false with network.isolation_off_reason")


    def _identical_challenger(self) -> Iterator[Problem]:
        """A shadow serving the champion's own archive compares a model with itself."""
        endpoint = self.endpoint
        if endpoint.kind != "instance" or endpoint.shadow is None:
            return
        champion = endpoint.variants[0].model_data or (None if self.model_package else self.model_data)
        challenger = endpoint.shadow.model_data
        if champion is not None and _same_artifact(champion, challenger):
            yield (("endpoint", "shadow", "model_data"), challenger,
                   f"a challenger other than the champion (the production variant serves {champion})")


def _same_artifact(first: str, second: str) -> bool:
    """The same s3:// URL, or local files with the same bytes (relative paths are beside cdk.json)."""
    if first.startswith("s3://") or second.startswith("s3://"):
        return first.rstrip("/") == second.rstrip("/")
    one, other = (PROJECT_ROOT / first).resolve(), (PROJECT_ROOT / second).resolve()
    if one == other:
        return True
    return one.is_file() and other.is_file() and filecmp.cmp(one, other, shallow=False)


class DevAlarmSettings(AlarmSettings):
    idle_hours: IdleHours | None = 24  # dev: an idle endpoint should go


class DevEnvironment(Environment):
    tier: Literal["dev"] = "dev"
    retain_data: Flag = False
    alarms: DevAlarmSettings = DevAlarmSettings()


class StagingEnvironment(Environment):
    tier: Literal["staging"] = "staging"


class ProdAlarmSettings(AlarmSettings):
    required: Flag = True  # prod pages someone: email or topic_arn


class ProdEnvironment(Environment):
    tier: Literal["prod"] = "prod"
    log_retention_days: one_of(*LOG_RETENTION_DAYS) = 365
    # Validated even when absent: prod with no alarms key pages nobody, and is refused.
    alarms: ProdAlarmSettings = Field(default_factory=dict, validate_default=True)

    def problems(self) -> Iterator[Problem]:
        yield from super().problems()
        if len(self.network.subnet_ids) == 1:
            yield (("network", "subnet_ids"), list(self.network.subnet_ids),
                   "at least 2 subnets in prod, in different Availability Zones: instances in one subnet are one "
                   "AZ away from an outage")
        endpoint = self.endpoint
        if endpoint.kind != "instance":
            return  # serverless: AWS runs it multi-AZ
        for i, v in enumerate(endpoint.variants):
            if v.instance_count < 2:
                where = ("instance_count",) if endpoint.variant_list is None else ("variants", i, "instance_count")
                yield (("endpoint", *where), v.instance_count, "at least 2 in prod: SageMaker spreads a variant's "
                       "instances across Availability Zones, and one instance is one AZ away from an outage")
        if endpoint.autoscaling and endpoint.autoscaling.min_instances < 2:
            yield (("endpoint", "autoscaling", "min_instances"), endpoint.autoscaling.min_instances,
                   "at least 2 in prod (scale-in must not drop below two AZs)")


def _known_tier(environment: Any) -> Any:
    if isinstance(environment, dict) and environment.get("tier") not in TIERS:
        allowed = " | ".join(json.dumps(t) for t in TIERS)
        raise PydanticCustomError("not_allowed", "{allowed}", {
            "allowed": f"{allowed} (an environment not named dev, staging or prod says its tier)", "key": "tier"})
    return environment


def _environments_schema(schema: dict[str, Any]) -> None:
    """dev, staging and prod may leave out their tier (their name is their tier); any
    other name says it."""
    (pattern, union), = schema.pop("patternProperties").items()
    schema["propertyNames"] = {"pattern": pattern}
    schema["properties"] = dict(zip(TIERS, union["oneOf"]))
    schema["additionalProperties"] = {**union, "required": ["tier"]}


AnyEnvironment = Annotated[DevEnvironment | StagingEnvironment | ProdEnvironment, Discriminator("tier"),
                           BeforeValidator(_known_tier)]
Environments = Annotated[dict[EnvironmentName, AnyEnvironment], Field(json_schema_extra=_environments_schema)]


class ModelRegistry(Settings):
    """The model package group versions are registered in, created (with the bucket of
    their archives) by the stack of `environment`; the other environments read it."""

    group_name: matching(rf"^{GROUP_NAME}$", "letters, digits and single hyphens, at most 63") | None = Field(
        None, description="default: <team>-<project>")
    environment: EnvironmentName | None = Field(None, description="default: the environment of tier dev, or the first "
                                                "environment configured")


class Pipeline(Settings):
    """Where the delivery pipeline (`cdk synth -c pipeline=true`) reads the repository."""

    connection_arn: matching(CONNECTION_ARN, "a CodeStar connection ARN, arn:aws:codeconnections:REGION:ACCOUNT:"
                             "connection/ID (create it in the console and authorize it)")
    repository: matching(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", "owner/name")
    branch: matching(r"^[^\s~^:?*\[\\]+$", "a branch name") = "main"
    stages: Annotated[tuple[EnvironmentName, ...], Field(min_length=1),
                      allowing("a non-empty list of environments")] | None = Field(
        None, description="the environments the pipeline deploys, in order; default: all, tier dev first, then "
        "staging, then prod")
    artifact_days: integer(1, 3650) = Field(90, description="days a run's artifacts (sources, cloud assemblies) "
                                            "are kept in the artifacts bucket; old versions go after 30, "
                                            "incomplete uploads after 7")
    log_retention_days: one_of(*LOG_RETENTION_DAYS) = Field(365, description="days the builds' logs are kept "
                                                            "(the release plans are audit evidence)")


class ServingConfig(Project):
    """The `serving` context of cdk.json."""

    model_data: ModelDataReference = DEFAULT_MODEL_DATA
    configured: Environments = Field(alias="environments")
    model_registry: ModelRegistry = ModelRegistry()
    pipeline: Pipeline | None = None

    @model_validator(mode="before")
    @classmethod
    def _environments_by_name(cls, raw: Any) -> Any:
        """dev, staging and prod are their own tier; the environments take the top-level model_data."""
        envs = raw.get("environments") if isinstance(raw, dict) else None
        if not isinstance(envs, dict):
            return raw
        envs = {name: {"tier": name, **env} if name in TIERS and isinstance(env, dict) else env
                for name, env in envs.items()}
        model_data = raw.get("model_data")
        if isinstance(model_data, str) and re.match(MODEL_DATA, model_data):  # a bad one is reported once, at its key
            # An environment deploying a model_package takes no model_data (its own, if any, is refused).
            envs = {name: {"model_data": model_data, **env} if isinstance(env, dict) and "model_package" not in env
                    else env for name, env in envs.items()}
        return {**raw, "environments": envs}

    @field_validator("configured")
    @classmethod
    def _in_their_project(cls, environments: dict[str, Environment], info: ValidationInfo) -> dict[str, Environment]:
        """Each environment with its name and the project's settings (validated before
        the map: they are declared first). A bad project setting is reported at its key."""
        settings = {key: info.data[key] for key in Project.model_fields if key in info.data}
        if len(settings) < len(Project.model_fields):
            return environments
        project = Project.model_construct(**settings)
        return {name: env.model_copy(update={"name": name, "project": project}) for name, env in environments.items()}

    @property
    def environments(self) -> dict[str, Environment]:
        return self.configured

    def environment(self, name: str) -> Environment:
        if name not in self.environments:
            raise UnknownEnvironment(f"env: {name!r} is not an environment; allowed: {', '.join(self.environments)}")
        return self.environments[name]

    @property
    def registry_hosts(self) -> list[str]:
        """The environments whose stack may create the model registry: the one named, or
        else those of tier dev (the first environment when none is)."""
        if self.model_registry.environment is not None:
            return [self.model_registry.environment]
        dev_tier = [name for name, env in self.environments.items() if env.tier == "dev"]
        return dev_tier or list(self.environments)[:1] or ["dev"]

    @property
    def registry_environment(self) -> str:
        return self.registry_hosts[0]

    @property
    def pipeline_environments(self) -> list[Environment]:
        """What the pipeline deploys, in order: `pipeline.stages`, or every environment by tier."""
        stages = self.pipeline.stages if self.pipeline else None
        if stages is not None:
            return [self.environments[name] for name in stages]
        return sorted(self.environments.values(), key=lambda env: TIERS.index(env.tier))

    @property
    def registry_group(self) -> str:
        return self.model_registry.group_name or project_prefix(self)

    @property
    def registry_bucket(self) -> str:
        return registry_bucket_name(self)

    def problems(self) -> Iterator[Problem]:
        for name, env in self.environments.items():
            if name in TIERS and env.tier != name:
                yield ("environments", name, "tier"), env.tier, f'"{name}" (an environment named after a tier has it)'
            yield from env.name_problems()
        if len(self.registry_hosts) > 1:
            yield (("model_registry", "environment"), None, f"one of {', '.join(self.registry_hosts)}: each is of tier "
                   "dev and could host the model registry; name the one whose stack creates it")
        stages = self.pipeline.stages if self.pipeline else None
        for i, name in enumerate(stages or ()):
            if name not in self.environments or name in stages[:i]:
                yield (("pipeline", "stages", i), name, f"an environment configured ({', '.join(self.environments)}), "
                       "each once")
        if self.model_registry.environment is not None and self.model_registry.environment not in self.environments:
            yield (("model_registry", "environment"), self.model_registry.environment,
                   f"a configured environment ({', '.join(self.environments)}): its stack creates the registry")
        if len(self.registry_bucket) > BUCKET_NAME_MAX:
            yield (("project",), self.project, f"a shorter company, team or project: the registry bucket "
                   f"{self.registry_bucket!r} has {len(self.registry_bucket)} characters; at most {BUCKET_NAME_MAX}")


def _key_path(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Without the endpoint kind and the tier pydantic puts in the path of a tagged
    union, and the `[key]` it puts after a bad key of a map."""
    def tag(i: int, part: str | int) -> bool:
        return (i > 0 and loc[i - 1] == "endpoint" and part in ENDPOINT_KINDS) or (
            i == 2 and loc[0] == "environments" and part in TIERS)
    return tuple(p for i, p in enumerate(loc) if not tag(i, p) and p != "[key]")


def parse_config(raw: Any) -> ServingConfig:
    """Parse the `serving` context object; raise ConfigError listing every problem."""
    try:
        return ServingConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError([describe({**e, "loc": _key_path(e["loc"])}, root=CONTEXT_KEY) for e in error.errors()]) from None


def load_config(cdk_json: Path | None = None) -> ServingConfig:
    """The configuration as `cdk synth` sees it (for tools that run outside the CDK app)."""
    path = cdk_json or CDK_JSON
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:  # one line, as the cdk CLI says it
        raise CdkJsonError(f"{path.name}: {error.msg} at line {error.lineno} column {error.colno}") from None
    context = document.get("context") if isinstance(document, dict) else None
    return parse_config(context.get(CONTEXT_KEY) if isinstance(context, dict) else None)
