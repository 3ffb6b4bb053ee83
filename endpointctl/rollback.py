"""Is the endpoint running the endpoint config its stack deployed? A guardrail rollback
returns the endpoint to InService on its *previous* config (SAGEMAKER.md, "Second
deploys"); whether CloudFormation reports that update as failed is not documented, so
`smoke-test` and `status` check it themselves: DescribeEndpoint's EndpointConfigName
against the stack's AWS::SageMaker::EndpointConfig resource, with the rollback alarms
(LastDeploymentConfig) and their history to say why."""

from __future__ import annotations

import json
from dataclasses import dataclass

from botocore.exceptions import ClientError

from endpointctl.aws import client, describe


@dataclass(frozen=True)
class ConfigCheck:
    running: str  # the endpoint's EndpointConfigName
    deployed: str | None  # the stack's endpoint config; None when the stack has none
    fired: tuple[str, ...]  # rollback alarms that went to ALARM

    @property
    def matches(self) -> bool:
        return self.deployed is None or self.running == self.deployed

    def mismatch(self, endpoint: str, stack: str, env_name: str) -> str:
        """One line: what runs, what the stack says, which alarm fired, what to do."""
        why = (f"rollback alarm {', '.join(self.fired)} fired" if self.fired
               else "no rollback alarm is in ALARM or has an ALARM in its history")
        return (f"endpoint {endpoint} runs endpoint config {self.running}, but stack {stack} deployed {self.deployed}: "
                f"the update was rolled back or changed outside the stack ({why}); keep {self.running} (it is in use), "
                f"find the cause in the alarm and the endpoint's logs, then redeploy with `npx cdk deploy -c env={env_name}`")


def deployed_endpoint_config(stack_name: str, region: str | None = None) -> str | None:
    """The name of the endpoint config the stack's endpoint refers to (its physical id is an ARN)."""
    cloudformation = client("cloudformation", region)
    body = describe(cloudformation.get_template, StackName=stack_name)["TemplateBody"]
    template = json.loads(body) if isinstance(body, str) else body
    endpoints = [r for r in template.get("Resources", {}).values() if r.get("Type") == "AWS::SageMaker::Endpoint"]
    if not endpoints:
        return None
    reference = endpoints[0]["Properties"].get("EndpointConfigName")
    logical_id = reference.get("Fn::GetAtt", [None])[0] if isinstance(reference, dict) else None
    if logical_id is None:
        return reference if isinstance(reference, str) else None
    kwargs = {"StackName": stack_name}
    while True:  # ListStackResources: the local AWS answered DescribeStackResource with a 500 for a deployed stack
        page = describe(cloudformation.list_stack_resources, **kwargs)
        for resource in page["StackResourceSummaries"]:
            if resource["LogicalResourceId"] == logical_id:
                return resource["PhysicalResourceId"].rsplit("/", 1)[-1]
        if not page.get("NextToken"):
            return None
        kwargs["NextToken"] = page["NextToken"]


def fired_alarms(endpoint: dict, endpoint_name: str, region: str | None = None) -> tuple[str, ...]:
    """The rollback alarms (LastDeploymentConfig; else the endpoint's own) now in ALARM or
    with a transition to ALARM in their history."""
    rollback = (endpoint.get("LastDeploymentConfig") or {}).get("AutoRollbackConfiguration", {}).get("Alarms", [])
    names = [a["AlarmName"] for a in rollback]
    cloudwatch = client("cloudwatch", region)
    if names:
        alarms = describe(cloudwatch.describe_alarms, AlarmNames=names)["MetricAlarms"]
    else:
        alarms = describe(cloudwatch.describe_alarms, AlarmNamePrefix=f"{endpoint_name}-")["MetricAlarms"]
    return tuple(sorted(a["AlarmName"] for a in alarms
                        if a["StateValue"] == "ALARM" or _went_to_alarm(cloudwatch, a["AlarmName"])))


def _went_to_alarm(cloudwatch, name: str) -> bool:
    try:
        history = describe(cloudwatch.describe_alarm_history, AlarmName=name, HistoryItemType="StateUpdate",
                           MaxRecords=10)["AlarmHistoryItems"]
    except ClientError:  # the local AWS has no alarm history: the current state is what there is
        return False
    return any("to ALARM" in item.get("HistorySummary", "") for item in history)


def check_endpoint_config(stack_name: str, endpoint_name: str, endpoint: dict | None = None, *,
                          region: str | None = None) -> ConfigCheck:
    """`endpoint`: DescribeEndpoint's answer, when the caller has it already; `region`: the
    environment's pinned region (default: the client's)."""
    deployed = deployed_endpoint_config(stack_name, region)
    if deployed is None:  # a stack without an endpoint resource: nothing to compare
        return ConfigCheck(running="", deployed=None, fired=())
    if endpoint is None:
        endpoint = describe(client("sagemaker", region).describe_endpoint, EndpointName=endpoint_name)
    running = endpoint.get("EndpointConfigName", "")
    fired = () if running == deployed else fired_alarms(endpoint, endpoint_name, region)
    return ConfigCheck(running=running, deployed=deployed, fired=fired)
