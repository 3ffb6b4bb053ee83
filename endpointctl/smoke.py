"""`endpointctl smoke-test --env NAME`: after a deploy, the guide's request must be
answered 200 and none of the endpoint's alarms may be in ALARM. The pipeline runs it
after each stage (as the environment's deployment-check role); exit 1 stops the pipeline.
"""

from __future__ import annotations

import argparse
import json

from botocore.exceptions import ClientError

from endpointctl.aws import client, describe, environment, stack_outputs
from endpointctl.errors import CommandError
from endpointctl.invoke import explain_runtime_error

# The guide's request (README, "Deploy, diff, destroy"; devtools.demo uses the same two rows).
GUIDE_REQUEST = {"instances": [[0.5, 1.2, 0.3, 0.8, 0.1], [-0.2, 0.7, 1.1, 0.4, 0.6]]}


def alarms_of(endpoint_name: str, region: str | None = None) -> list[dict]:
    """The endpoint's alarms: EndpointAlarms names them `<endpoint>-<variant>-<what>`."""
    cloudwatch = client("cloudwatch", region)
    alarms: list[dict] = []
    kwargs = {"AlarmNamePrefix": f"{endpoint_name}-"}
    while True:
        page = describe(cloudwatch.describe_alarms, **kwargs)
        alarms += page.get("MetricAlarms", []) + page.get("CompositeAlarms", [])
        if not page.get("NextToken"):
            return alarms
        kwargs["NextToken"] = page["NextToken"]


def check_config(env_name: str, name: str) -> None:
    """The endpoint must run the endpoint config its stack deployed (a rollback leaves it on the old one)."""
    from endpointctl.aws import environment
    from endpointctl.rollback import check_endpoint_config

    stack = environment(env_name).stack_name
    try:
        check = check_endpoint_config(stack, name, region=environment(env_name).region)
    except ClientError as error:
        raise CommandError(f"smoke test failed: endpoint {name}: {error.response['Error'].get('Message', error)}") from None
    if not check.matches:
        raise CommandError(f"smoke test failed: {check.mismatch(name, stack, env_name)}")
    if check.deployed is not None:
        print(f"endpoint {name} runs {check.running}, the endpoint config stack {stack} deployed")


def run_smoke_test(args: argparse.Namespace) -> int:
    region = environment(args.env).region
    name = stack_outputs(args.env)["EndpointName"]
    check_config(args.env, name)
    runtime = client("sagemaker-runtime", region)
    try:
        response = describe(runtime.invoke_endpoint, EndpointName=name, ContentType="application/json",
                            Accept="application/json", Body=json.dumps(GUIDE_REQUEST).encode())
    except ClientError as error:
        raise CommandError(f"smoke test failed: {explain_runtime_error(name, error)}") from None
    status = response["ResponseMetadata"]["HTTPStatusCode"]
    body = response["Body"].read().decode("utf-8", errors="replace")
    if status != 200:
        raise CommandError(f"smoke test failed: {name} answered {status}: {body[:200]}")
    print(f"invoke {name} with the guide's request: 200 {body[:200]}")
    alarms = alarms_of(name, region)
    firing = sorted(a["AlarmName"] for a in alarms if a["StateValue"] == "ALARM")
    if firing:
        raise CommandError(f"smoke test failed: {len(firing)} alarm(s) of {name} in ALARM: {', '.join(firing)}")
    states = ", ".join(f"{a['AlarmName'].removeprefix(name + '-')}: {a['StateValue']}" for a in alarms)
    print(f"alarms of {name}: {states or 'none found'}")
    print(f"smoke test of {args.env} passed")
    return 0
