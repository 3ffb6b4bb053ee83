"""The endpoint's fate in plain words: unchanged, updated (and how traffic moves),
replaced (callers of the old name break), added, removed — or why the deploy will fail.

Every rule names its source; "reference" is ../shared/reference/SAGEMAKER.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from endpointctl.plan.iam import role_allows
from endpointctl.plan.resources import ResourceChange
from endpointctl.plan.risks import Risk
from endpointctl.plan.shadow import shadow_rules
from endpointctl.plan.template import literal, of_type, properties, target

ENDPOINT = "AWS::SageMaker::Endpoint"
# API AutoRollbackConfiguration / guide deployment-guardrails-configuration: 1-10 alarms.
ROLLBACK_ALARMS_RANGE = (1, 10)
# Guide deployment-guardrails-exclusions: these fall back to all-at-once.
ALL_AT_ONCE_INSTANCE_PREFIXES = ("ml.inf1.",)
# Reference "Limits": what an instance variant's scalable target scales.
INSTANCE_COUNT_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


@dataclass(frozen=True)
class Variant:
    name: str
    instance_type: str | None
    instance_count: Any
    serverless: dict | None
    model_id: str | None

    @property
    def kind(self) -> str:
        return "serverless" if self.serverless is not None else "instance"


def variants(template: dict, config_id: str | None) -> list[Variant]:
    return [
        Variant(name=v.get("VariantName", "?"), instance_type=v.get("InstanceType"),
                instance_count=v.get("InitialInstanceCount"), serverless=v.get("ServerlessConfig"),
                model_id=target(v.get("ModelName")))
        for v in properties(template, config_id).get("ProductionVariants", [])
    ]


@dataclass(frozen=True)
class Rollout:
    """How an update moves traffic to the new endpoint config."""

    strategy: str  # canary | linear | all_at_once | serverless | no_traffic_shift
    step_percent: int | None = None
    wait_s: int = 0
    baking_s: int = 0
    alarms: tuple[str, ...] = ()

    def describe(self) -> str:
        alarms = f"; rolls back when any of {', '.join(self.alarms)} goes to ALARM" if self.alarms else \
            "; no alarm rolls it back"
        if self.strategy == "serverless":
            return ("all at once: SageMaker moves every request to the new serverless config when it is ready "
                    "(no deployment guardrails for serverless); a failed update leaves the old config serving")
        if self.strategy == "no_traffic_shift":
            return "the endpoint config stays: only the endpoint's own settings change, no traffic moves"
        if self.strategy == "canary":
            return (f"blue/green canary: {self.step_percent} % of capacity on the new fleet for {self.wait_s} s, "
                    f"then the rest; baking {self.baking_s} s before the old fleet goes{alarms}")
        if self.strategy == "linear":
            return (f"blue/green linear: {self.steps} steps of {self.step_percent} % every {self.wait_s} s; "
                    f"baking {self.baking_s} s before the old fleet goes{alarms}")
        return f"blue/green all at once: every request moves to the new fleet; baking {self.baking_s} s{alarms}"

    @property
    def steps(self) -> int:
        return math.ceil(100 / self.step_percent) if self.step_percent else 1

    def phases(self) -> list[tuple[str, int, int]]:
        """(traffic on the new config, start s, end s) for the timeline."""
        if self.strategy in ("serverless", "no_traffic_shift"):
            return [("100 % (all at once, when ready)", 0, 1)]
        if self.strategy == "canary":
            return [(f"{self.step_percent} % (canary)", 0, self.wait_s),
                    ("100 %, baking", self.wait_s, self.wait_s + self.baking_s)]
        if self.strategy == "linear":
            shift = [(f"{min(100, self.step_percent * (i + 1))} %", i * self.wait_s, (i + 1) * self.wait_s)
                     for i in range(self.steps - 1)]
            start = (self.steps - 1) * self.wait_s
            return shift + [("100 %, baking", start, start + self.baking_s)]
        return [("100 %, baking", 0, self.baking_s)]

    def as_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "step_percent": self.step_percent, "wait_s": self.wait_s,
                "baking_s": self.baking_s, "rollback_alarms": list(self.alarms), "description": self.describe()}


@dataclass
class EndpointPlan:
    name: str | None
    effect: str  # unchanged | update | replace | add | remove
    rollout: Rollout | None = None
    breaks_callers: bool = False
    old_name: str | None = None
    risks: list[Risk] = field(default_factory=list)

    def describe(self) -> str:
        shown = f"`{self.name}`"
        if self.effect == "unchanged":
            return f"{shown} is unchanged: no update, no traffic moves."
        if self.effect == "add":
            return f"{shown} is created."
        if self.effect == "remove":
            return f"`{self.old_name}` is deleted: its callers break."
        if self.effect == "replace":
            if self.breaks_callers:
                return (f"`{self.old_name}` is replaced by a new endpoint {shown}: callers of the old name break "
                        "when the old one is deleted at the end of the deploy.")
            return f"{shown} is replaced under the same name."
        return f"{shown} is updated in place — {self.rollout.describe() if self.rollout else 'no traffic moves'}."

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "old_name": self.old_name, "effect": self.effect,
                "rollout": self.rollout.as_json() if self.rollout else None, "breaks_callers": self.breaks_callers,
                "summary": self.describe()}


def _rollout(endpoint_props: dict, new_variants: list[Variant], config_changes: bool) -> Rollout:
    if not config_changes:
        return Rollout("no_traffic_shift")
    if any(v.kind == "serverless" for v in new_variants):
        return Rollout("serverless")
    deployment = endpoint_props.get("DeploymentConfig") or {}
    alarms = tuple(literal(a.get("AlarmName")) or str(a.get("AlarmName"))
                   for a in deployment.get("AutoRollbackConfiguration", {}).get("Alarms", []))
    policy = deployment.get("BlueGreenUpdatePolicy")
    if not policy:
        return Rollout("all_at_once", alarms=alarms)
    routing = policy.get("TrafficRoutingConfiguration", {})
    kind = routing.get("Type", "ALL_AT_ONCE")
    size = routing.get("CanarySize") if kind == "CANARY" else routing.get("LinearStepSize")
    step = size.get("Value") if isinstance(size, dict) and size.get("Type") == "CAPACITY_PERCENT" else None
    if any((v.instance_type or "").startswith(ALL_AT_ONCE_INSTANCE_PREFIXES) for v in new_variants):
        kind = "ALL_AT_ONCE"
    return Rollout(kind.lower(), step_percent=step, wait_s=routing.get("WaitIntervalInSeconds", 0),
                   baking_s=policy.get("TerminationWaitInSeconds", 0), alarms=alarms)


def endpoint_resource(template: dict) -> tuple[str | None, dict]:
    found = sorted(of_type(template, ENDPOINT).items())
    return (found[0][0], found[0][1].get("Properties", {})) if found else (None, {})


def plan_endpoint(old_template: dict, new_template: dict, changes: dict[str, ResourceChange]) -> EndpointPlan | None:
    old_id, old_props = endpoint_resource(old_template)
    new_id, new_props = endpoint_resource(new_template)
    if old_id is None and new_id is None:
        return None
    old_name, new_name = literal(old_props.get("EndpointName")), literal(new_props.get("EndpointName"))
    if old_id is None:
        return EndpointPlan(new_name, "add")
    if new_id is None:
        return EndpointPlan(None, "remove", old_name=old_name, breaks_callers=True,
                            risks=[Risk("breaks_callers", f"endpoint {old_name} is deleted: every caller breaks")])
    change = changes.get(new_id) if old_id == new_id else ResourceChange(new_id, ENDPOINT, "replace", "new logical id")
    if change is None:
        return EndpointPlan(new_name, "unchanged")
    if change.action == "replace":
        return _replaced(old_name, new_name)
    return _updated(old_template, new_template, old_props, new_props, new_name, changes)


def _replaced(old_name: str | None, new_name: str | None) -> EndpointPlan:
    if old_name != new_name:
        # Reference "Second deploys": a replacement is created first under its new name and the
        # old endpoint deleted in the cleanup phase, so whoever calls the old name breaks.
        return EndpointPlan(new_name, "replace", old_name=old_name, breaks_callers=True, risks=[Risk(
            "breaks_callers", f"endpoint {old_name} is replaced by {new_name}: callers of {old_name} break")])
    # The fixed-name failure itself is reported for every resource by the fixed-name rule.
    return EndpointPlan(new_name, "replace", old_name=old_name)


def _updated(old_template: dict, new_template: dict, old_props: dict, new_props: dict, name: str | None,
             changes: dict[str, ResourceChange]) -> EndpointPlan:
    old_config, new_config = target(old_props.get("EndpointConfigName")), target(new_props.get("EndpointConfigName"))
    config_changes = old_config != new_config or (new_config in changes and changes[new_config].action != "update")
    before, after = variants(old_template, old_config), variants(new_template, new_config)
    rollout = _rollout(new_props, after, config_changes)
    plan = EndpointPlan(name, "update", rollout=rollout)
    if config_changes:
        plan.risks += _update_rules(old_template, new_template, new_props, before, after, rollout, name)
        plan.risks += shadow_rules(old_template, new_template, old_config, new_config, name, rollout.describe())
    return plan


def _update_rules(old_template: dict, new_template: dict, new_props: dict, before: list[Variant],
                  after: list[Variant], rollout: Rollout, name: str | None) -> list[Risk]:
    risks: list[Risk] = []
    old_kinds, new_kinds = {v.kind for v in before}, {v.kind for v in after}
    if "instance" in old_kinds and new_kinds == {"serverless"}:
        # Reference "Second deploys" (UpdateEndpoint API reference; serverless guide):
        # instance-based -> serverless is refused with a ValidationError.
        risks.append(Risk("fails", f"endpoint {name}: UpdateEndpoint refuses to turn an instance-backed endpoint "
                                   "serverless (ValidationError); create a new endpoint under a new name instead"))
    if old_kinds == {"serverless"} and "instance" in new_kinds:
        # Reference "Second deploys": serverless -> instance works and is one-way.
        risks.append(Risk("info", f"endpoint {name}: serverless → instance-backed works, and cannot be undone "
                                  "by another update (instance → serverless is refused)"))
    deployment = new_props.get("DeploymentConfig") or {}
    if new_kinds == {"serverless"} and deployment:
        # Reference "Second deploys" (guide deployment-guardrails-exclusions): no guardrails for serverless.
        risks.append(Risk("info", f"endpoint {name}: DeploymentConfig has no effect on a serverless endpoint"))
    risks += _guardrail_rules(new_template, deployment, before, after, rollout, name)
    risks += _autoscaling_rules(old_template, new_props, before, after, name)
    return risks


def _guardrail_rules(new_template: dict, deployment: dict, before: list[Variant], after: list[Variant],
                     rollout: Rollout, name: str | None) -> list[Risk]:
    if not deployment.get("BlueGreenUpdatePolicy") or rollout.strategy == "serverless":
        return []
    risks = []
    renamed = sorted({v.name for v in before} ^ {v.name for v in after})
    if renamed:
        # Reference "Second deploys" (guide deployment-guardrails): blue/green needs the same
        # variant names in the old and the new endpoint config.
        risks.append(Risk("fails", f"endpoint {name}: a {rollout.strategy} rollout needs the same variant names "
                                   f"in old and new config; {', '.join(renamed)} differ"))
    rollback = deployment.get("AutoRollbackConfiguration")
    if rollback is not None:
        count, (low, high) = len(rollback.get("Alarms", [])), ROLLBACK_ALARMS_RANGE
        if not low <= count <= high:
            # Reference "Second deploys" (API AutoRollbackConfiguration): 1-10 rollback alarms.
            risks.append(Risk("fails", f"endpoint {name}: {count} rollback alarms; SageMaker allows {low} to {high}"))
        risks += _describe_alarms_rule(new_template, after, name)
    # Reference "Second deploys": UpdateEndpoint returns at once; a rollback by the
    # guardrails is seen only on the endpoint (terraform-provider-aws #39099, #48997).
    risks.append(Risk("info", f"endpoint {name}: a rollback by the guardrails may still end in a successful "
                              "deploy; check the endpoint afterwards (`endpointctl status`, LastDeploymentConfig)"))
    return risks


def _describe_alarms_rule(template: dict, after: list[Variant], name: str | None) -> list[Risk]:
    """Reference "Second deploys": the model's execution role needs cloudwatch:DescribeAlarms."""
    risks = []
    for model_id in sorted({v.model_id for v in after if v.model_id}):
        role_id = target(properties(template, model_id).get("ExecutionRoleArn"))
        allowed = role_allows(template, role_id, "cloudwatch:DescribeAlarms") if role_id else None
        if allowed is False:
            risks.append(Risk("fails", f"endpoint {name}: the rollback alarms cannot be read — the execution role "
                                       f"{role_id} of model {model_id} does not allow cloudwatch:DescribeAlarms"))
        elif allowed is None:
            risks.append(Risk("info", f"endpoint {name}: check that the execution role of model {model_id} allows "
                                      "cloudwatch:DescribeAlarms (the rollback alarms need it; not in this template)"))
    return risks


def _autoscaling_rules(old_template: dict, new_props: dict, before: list[Variant], after: list[Variant],
                       name: str | None) -> list[Risk]:
    registered = _registered_variants(old_template, name)
    if not registered:
        return []
    risks, new_by_name = [], {v.name: v for v in after}
    old_by_name = {v.name: v for v in before}
    for variant in sorted(registered):
        if variant not in new_by_name:
            # Reference "Second deploys" (guide endpoint-scaling-update): UpdateEndpoint fails when it
            # removes a variant registered with Application Auto Scaling; a rename is a removal.
            risks.append(Risk("fails", f"endpoint {name}: variant {variant} is removed or renamed while an autoscaling "
                                       "target registers it; deregister the scalable target in an earlier deploy"))
        elif old_by_name.get(variant) and old_by_name[variant].instance_type != new_by_name[variant].instance_type:
            # Same source: changing the instance type of a registered variant fails too.
            risks.append(Risk("fails", f"endpoint {name}: variant {variant} changes instance type "
                                       f"({old_by_name[variant].instance_type} → {new_by_name[variant].instance_type}) "
                                       "while an autoscaling target registers it; deregister it in an earlier deploy"))
    if not new_props.get("RetainAllVariantProperties"):
        # Reference "Limits": each update resets autoscaled counts without RetainAllVariantProperties.
        risks.append(Risk("info", f"endpoint {name}: the update resets autoscaled instance counts to "
                                  "InitialInstanceCount (RetainAllVariantProperties is not set)"))
    return risks


def _registered_variants(template: dict, endpoint_name: str | None) -> set[str]:
    prefix = f"endpoint/{endpoint_name}/variant/"
    return {props["ResourceId"].removeprefix(prefix)
            for props in (r.get("Properties", {}) for r in of_type(template, "AWS::ApplicationAutoScaling::ScalableTarget").values())
            if props.get("ScalableDimension") == INSTANCE_COUNT_DIMENSION and isinstance(props.get("ResourceId"), str)
            and props["ResourceId"].startswith(prefix)}
