#!/usr/bin/env python3
"""The CDK app: one stack for the environment chosen with `-c env=NAME` (default dev)."""

import sys

import aws_cdk as cdk

from serving_runtime.preflight import PreflightError
from stacks.checks import add_nag_packs
from stacks.config import ConfigError, parse_config
from stacks.serving_stack import ServingStack

app = cdk.App()
try:
    config = parse_config(app.node.try_get_context("serving"))
    environment = config.environment(app.node.try_get_context("env") or "dev")
    ServingStack(app, environment.stack_name, environment=environment)
except (ConfigError, PreflightError, ValueError) as error:
    # Bad configuration or a broken artifact stops here, before any AWS call.
    print(f"cdk synth: {error}", file=sys.stderr)
    sys.exit(1)
add_nag_packs(app)
app.synth()
