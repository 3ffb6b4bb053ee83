"""Build the plan: per stack, every section, then the model diffs all at once."""

from __future__ import annotations

import json
import re

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endpointctl import cost
from endpointctl.plan.shadow import shadow_of
from endpointctl.plan import alarms, artifacts, data, iam, names
from endpointctl.plan.assembly import Assembly, Stack
from endpointctl.plan.endpoint import EndpointPlan, endpoint_resource, plan_endpoint, variants
from endpointctl.plan.model_diff import Scorer, Served, compare
from endpointctl.plan.resources import ResourceChange, diff_resources
from endpointctl.plan.risks import Risk, ordered, verdict
from endpointctl.plan.template import literal, properties, target


@dataclass
class StackPlan:
    stack: str
    presence: str  # both | added | removed
    resources: list[ResourceChange]
    endpoint: EndpointPlan | None
    risks: list[Risk]
    artifacts: list[dict[str, Any]]
    iam: list[iam.PolicyChange]
    alarms: list[dict[str, Any]]
    data: list[data.DataChange]
    cost: dict[str, float | None]
    model_sides: tuple[Served, Served] | None = None
    model_diff: dict[str, Any] | None = None

    @property
    def verdict(self) -> str:
        return verdict(self.risks)

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack, "presence": self.presence, "verdict": self.verdict,
            "resources": [r.as_json() for r in self.resources],
            "endpoint": self.endpoint.as_json() if self.endpoint else None,
            "risks": [r.as_json() for r in self.risks],
            "artifacts": self.artifacts,
            "iam": {"policies": [p.as_json() for p in self.iam]},
            "alarms": self.alarms,
            "data": [d.as_json() for d in self.data],
            "cost": self.cost,
            "model_diff": self.model_diff,
        }


@dataclass
class Plan:
    stacks: list[StackPlan]

    @property
    def risks(self) -> list[Risk]:
        return [risk for stack in self.stacks for risk in stack.risks]

    @property
    def verdict(self) -> str:
        return verdict(self.risks)

    def as_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "stacks": [s.as_json() for s in self.stacks]}


EMPTY = Stack(name="", template={})


def monthly_cost(template: dict) -> float | None:
    """The endpoint's monthly estimate from its endpoint config (endpointctl.cost's model)."""
    endpoint_id, endpoint_props = endpoint_resource(template)
    if endpoint_id is None:
        return None
    lines = []
    for variant in variants(template, target(endpoint_props.get("EndpointConfigName"))):
        if variant.serverless is not None:
            lines += cost.serverless_lines(
                variant.serverless.get("MemorySizeInMB", 0), variant.serverless.get("ProvisionedConcurrency"),
                requests_per_day=cost.DEFAULT_REQUESTS_PER_DAY, duration_ms=cost.DEFAULT_DURATION_MS)
        elif isinstance(variant.instance_count, int):
            lines.append(cost.instance_line(variant.name, variant.instance_type or "?", variant.instance_count))
    shadow = shadow_of(template, target(endpoint_props.get("EndpointConfigName")))
    if shadow is not None and isinstance(shadow.instance_count, int):  # the challenger's added instance hours
        lines.append(cost.instance_line(shadow.name, shadow.instance_type or "?", shadow.instance_count))
    lines.append(cost.data_processed_line(cost.DEFAULT_REQUESTS_PER_DAY))
    monitor = monitor_instance_type(template)
    if monitor is not None:
        lines += cost.monitor_lines(monitor)
    return round(sum(line.monthly_usd for line in lines), 2)


_MONITOR_INSTANCE = re.compile(r'"InstanceType":"(ml\.[a-z0-9]+\.[a-z0-9]+)"')


def monitor_instance_type(template: dict) -> str | None:
    """The instance type of the scheduled monitor's job, when the stack has the monitor
    (a state machine that runs monitoring.job)."""
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::StepFunctions::StateMachine":
            continue
        definition = json.dumps(resource.get("Properties", {}).get("DefinitionString")).replace('\\"', '"')
        found = _MONITOR_INSTANCE.search(definition)
        if "monitoring.job" in definition and found:
            return found.group(1)
    return None


def _served(stack: Stack) -> Served | None:
    endpoint_id, endpoint_props = endpoint_resource(stack.template)
    models = [v.model_id for v in variants(stack.template, target(endpoint_props.get("EndpointConfigName")))]
    if not models or models[0] is None:
        return None
    archives = artifacts.model_archives(stack, models[0])
    if archives["model"] is None:
        return None
    environment = properties(stack.template, models[0]).get("PrimaryContainer", {}).get("Environment", {})
    program = literal(environment.get("SAGEMAKER_PROGRAM")) or "inference.py"
    return Served(model=archives["model"], code=archives["code"], program=program)


def plan_stack(name: str, old: Stack | None, new: Stack | None) -> StackPlan:
    presence = "both" if old and new else ("added" if new else "removed")
    old, new = old or EMPTY, new or EMPTY
    changes = diff_resources(old.template, new.template)
    by_id = {c.logical_id: c for c in changes}
    endpoint = plan_endpoint(old.template, new.template, by_id)
    policy_changes, iam_risks = iam.diff_iam(old.template, new.template)
    data_changes, data_risks = data.diff_data(old.template, new.template, changes)
    risks = names.fixed_name_risks(old.template, new.template, changes) + (endpoint.risks if endpoint else []) \
        + data_risks + iam_risks
    plan = StackPlan(
        stack=name, presence=presence, resources=changes, endpoint=endpoint, risks=ordered(risks),
        artifacts=artifacts.diff_artifacts(old, new), iam=policy_changes,
        alarms=alarms.diff_alarms(old.template, new.template), data=data_changes,
        cost={"before_usd_month": monthly_cost(old.template), "after_usd_month": monthly_cost(new.template)},
    )
    before, after = _served(old), _served(new)
    if before and after and before.model.location != after.model.location:
        plan.model_sides = (before, after)
    return plan


def build_plan(base: Assembly, head: Assembly, stack_names: list[str], *, sample: Path | None,
               workdir: Path) -> Plan:
    stacks = [plan_stack(n, base.stacks.get(n), head.stacks.get(n)) for n in stack_names]
    scorer = Scorer(sample, workdir)
    with_model = [s for s in stacks if s.model_sides is not None]
    for stack in with_model:
        why = Scorer.unreachable(stack.model_sides[0]) or Scorer.unreachable(stack.model_sides[1])
        if why:
            stack.model_diff = {"skipped": why}
    scorer.score_all([side for s in with_model if s.model_diff is None for side in s.model_sides])
    for stack in with_model:
        if stack.model_diff is None:
            before, after = stack.model_sides
            stack.model_diff = {"before": before.model.label, "after": after.model.label,
                                **compare(scorer.results[before.key], scorer.results[after.key])}
    return Plan(stacks)
