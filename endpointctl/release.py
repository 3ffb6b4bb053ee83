"""A second deploy on the local AWS, checked against its plan: deploy a head cloud
assembly over what is deployed, record what CloudFormation and SageMaker hold before
and after, and say where that differs from what `endpointctl plan` said.

`make demo` releases a retrained model and then an alarm-only change this way; the
end-to-end test reads what it recorded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import boto3

from endpointctl.plan import make_plan

SAGEMAKER_TYPES = {
    "AWS::SageMaker::Model": "models",
    "AWS::SageMaker::EndpointConfig": "endpoint configs",
    "AWS::SageMaker::Endpoint": "endpoints",
}


def _name(physical_id: str) -> str:
    """A SageMaker physical id may be the ARN (`…:endpoint-config/NAME`) or the name."""
    return physical_id.rsplit("/", 1)[-1] if physical_id.startswith("arn:") else physical_id


def stack_resources(stack_name: str) -> dict[str, tuple[str, str]]:
    """logical id -> (type, physical id) as CloudFormation holds them."""
    pages = boto3.client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=stack_name)
    return {r["LogicalResourceId"]: (r.get("ResourceType", ""), r.get("PhysicalResourceId", ""))
            for page in pages for r in page["StackResourceSummaries"]
            if r.get("LogicalResourceId")}  # moto lists the types it skips without one


def sagemaker_state() -> dict[str, Any]:
    """What the account serves: every model, endpoint config and endpoint, and each
    endpoint's config and last modification."""
    sagemaker = boto3.client("sagemaker")
    endpoints = {e["EndpointName"]: sagemaker.describe_endpoint(EndpointName=e["EndpointName"])
                 for e in sagemaker.list_endpoints()["Endpoints"]}
    return {
        "models": sorted(m["ModelName"] for m in sagemaker.list_models()["Models"]),
        "endpoint configs": sorted(c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]),
        "endpoints": sorted(endpoints),
        "endpoint_detail": {name: (d["EndpointConfigName"], d["LastModifiedTime"]) for name, d in endpoints.items()},
    }


@dataclass
class Release:
    """One deploy of a head assembly over a base one, with its plan."""

    stack_name: str
    plan: dict[str, Any]
    markdown: str
    before: dict[str, tuple[str, str]]
    after: dict[str, tuple[str, str]]
    sagemaker_before: dict[str, Any]
    sagemaker_after: dict[str, Any]

    @property
    def stack_plan(self) -> dict[str, Any]:
        return next(s for s in self.plan["stacks"] if s["stack"] == self.stack_name)

    def orphans(self) -> dict[str, list[str]]:
        """SageMaker resources the stack does not hold after the deploy (left behind)."""
        held: dict[str, set[str]] = {kind: set() for kind in SAGEMAKER_TYPES.values()}
        for resource_type, physical_id in self.after.values():
            if resource_type in SAGEMAKER_TYPES:
                held[SAGEMAKER_TYPES[resource_type]].add(_name(physical_id))
        return {kind: sorted(set(self.sagemaker_after[kind]) - held[kind]) for kind in held}

    def gone(self) -> set[str]:
        """SageMaker names served before the deploy and not after."""
        return {name for kind in SAGEMAKER_TYPES.values()
                for name in set(self.sagemaker_before[kind]) - set(self.sagemaker_after[kind])}

    def differences_from_plan(self) -> list[str]:
        """Where what the deploy did differs from what the plan said (empty: it matched)."""
        planned = {r["logical_id"]: r["action"] for r in self.stack_plan["resources"]}
        found = []
        for logical_id in sorted(self.before.keys() | self.after.keys()):
            said = planned.get(logical_id, "nothing")
            did = self._what_happened(logical_id)
            if did != said and not (did == "nothing" and said == "update"):
                found.append(f"{logical_id}: plan said {said}, the deploy did {did}")
        found += self._endpoint_difference()
        return found

    def _what_happened(self, logical_id: str) -> str:
        if logical_id not in self.before:
            return "add"
        if logical_id not in self.after:
            return "remove"
        return "replace" if self.before[logical_id][1] != self.after[logical_id][1] else "nothing"

    def _endpoint_difference(self) -> list[str]:
        endpoint = self.stack_plan["endpoint"] or {}
        name = endpoint.get("name")
        before = self.sagemaker_before["endpoint_detail"].get(name)
        after = self.sagemaker_after["endpoint_detail"].get(name)
        if endpoint.get("effect") == "unchanged" and before != after:
            return [f"endpoint {name}: plan said unchanged, its config or modification time changed ({before} → {after})"]
        if endpoint.get("effect") == "update" and endpoint["rollout"]["strategy"] != "no_traffic_shift" \
                and before and after and before[0] == after[0]:
            return [f"endpoint {name}: plan said it moves to a new config, it still serves {after[0]}"]
        return []


def release(base: Path, head: Path, *, stack_name: str, env_name: str, deploy: Callable[[Path], None],
            on_plan: Callable[[str], None] = lambda _: None) -> Release:
    """Plan head over base (shown to `on_plan` as Markdown), deploy head with
    `deploy(assembly)`, and record both sides."""
    from endpointctl.plan import markdown

    plan = make_plan(base, head, environments=[env_name])
    on_plan(markdown.render(plan))
    before, sagemaker_before = stack_resources(stack_name), sagemaker_state()
    deploy(head)
    return Release(stack_name=stack_name, plan=plan.as_json(), markdown=markdown.render(plan), before=before,
                   after=stack_resources(stack_name), sagemaker_before=sagemaker_before,
                   sagemaker_after=sagemaker_state())
