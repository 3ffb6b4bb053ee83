"""`endpointctl status`: the endpoint, its variants, its alarms and what it costs."""

from __future__ import annotations

import argparse

from botocore.exceptions import ClientError

from endpointctl.aws import client, describe, environment, stack_outputs
from endpointctl.cost import DEFAULT_REQUESTS_PER_DAY, monthly_total
from endpointctl.errors import CommandError
from endpointctl.rollback import check_endpoint_config


def run_status(args: argparse.Namespace) -> int:
    env = environment(args.env)
    name = stack_outputs(args.env)["EndpointName"]
    sagemaker = client("sagemaker", env.region)
    try:
        endpoint = describe(sagemaker.describe_endpoint, EndpointName=name)
    except ClientError as error:
        raise CommandError(f"endpoint {name}: {error.response['Error'].get('Message', error)}") from None
    print(f"endpoint {name}: {endpoint['EndpointStatus']}")
    check = check_endpoint_config(env.stack_name, name, endpoint, region=env.region)
    if not check.matches:
        print(f"  WARNING: {check.mismatch(name, env.stack_name, args.env)}")
    elif check.deployed is not None:
        print(f"  endpoint config: {check.running} (the stack's)")
    if endpoint.get("FailureReason"):
        print(f"  failure: {endpoint['FailureReason']}")
    for variant in endpoint.get("ProductionVariants", []):
        serverless = variant.get("CurrentServerlessConfig") or variant.get("DesiredServerlessConfig")
        if serverless:
            size = f"serverless {serverless.get('MemorySizeInMB')} MB, max concurrency {serverless.get('MaxConcurrency')}"
        else:
            size = f"{variant.get('CurrentInstanceCount', '?')} instance(s)"
        print(f"  variant {variant['VariantName']}: {size}, weight {variant.get('CurrentWeight', '?')}")
    alarms = describe(client("cloudwatch", env.region).describe_alarms, AlarmNamePrefix=f"{name}-")["MetricAlarms"]
    if alarms:
        for alarm in alarms:
            print(f"  alarm {alarm['AlarmName']}: {alarm['StateValue']}")
    else:
        print("  alarms: none found (the local emulator does not create CloudWatch alarms)")
    print(f"  leaving it running: about ${monthly_total(env):,.2f}/month at {DEFAULT_REQUESTS_PER_DAY:,} requests/day "
          f"(`endpointctl cost --env {args.env}` for the assumptions); `npx cdk destroy -c env={args.env}` stops it")
    return 0
