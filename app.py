#!/usr/bin/env python3
"""The CDK app: the stack of the environment chosen with `-c env=NAME` (default dev), or
the delivery pipeline with `-c pipeline=true` (stacks/app_stacks.py decides which)."""

import sys

import aws_cdk as cdk

from serving_runtime.preflight import PreflightError
from stacks.app_stacks import build_stacks, context_flag
from stacks.checks import add_nag_packs
from serving_config.config import ConfigError, parse_config
from serving_config.model_package import REFRESH_CONTEXT_KEY

app = cdk.App()
try:
    config = parse_config(app.node.try_get_context("serving"))
    build_stacks(app, config, env_name=app.node.try_get_context("env") or "dev",
                 pipeline=context_flag(app, "pipeline"), refresh=context_flag(app, REFRESH_CONTEXT_KEY))
except (ConfigError, PreflightError, ValueError) as error:
    # Bad configuration, a broken artifact or a model version that cannot deploy stops
    # here, before anything is deployed.
    print(f"cdk synth: {error}", file=sys.stderr)
    sys.exit(1)
add_nag_packs(app)
app.synth()
