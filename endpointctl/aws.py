"""Talking to AWS (or the local emulator named by AWS_ENDPOINT_URL) with clear errors."""

from __future__ import annotations

import os

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

from endpointctl.errors import CommandError
from serving_config.config import Environment, load_config


def client(service: str, region: str | None = None):
    """A client in `region` (an environment's pinned region), else the profile's or AWS_REGION's."""
    try:
        return boto3.client(service, region_name=region)
    except NoRegionError:
        raise CommandError("no AWS region: set AWS_DEFAULT_REGION or configure a profile with a region") from None


def describe(call, *args, **kwargs):
    """Run a boto3 call, turning the usual failures into one actionable line."""
    try:
        return call(*args, **kwargs)
    except EndpointConnectionError:
        where = os.environ.get("AWS_ENDPOINT_URL", "AWS")
        raise CommandError(f"cannot reach {where}: is the local AWS running, or the network up?") from None
    except NoCredentialsError:
        raise CommandError("no AWS credentials: configure a profile or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") from None


def environment(name: str) -> Environment:
    return load_config().environment(name)


def stack_outputs(env_name: str) -> dict[str, str]:
    env = environment(env_name)
    cloudformation = client("cloudformation", env.region)
    try:
        stacks = describe(cloudformation.describe_stacks, StackName=env.stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            raise CommandError(
                f"stack {env.stack_name} is not deployed: run `npx cdk deploy -c env={env_name}`"
            ) from None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
