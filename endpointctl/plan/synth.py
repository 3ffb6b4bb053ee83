"""Synthesize a cloud assembly in this process, as `cdk synth` does for each
environment, from a `serving` configuration that may differ from cdk.json's.

The tests, the benchmark, the demo and the README's example plan build the base and
head assemblies of a release with it: one jsii runtime, one App per assembly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from serving_config.paths import PROJECT_ROOT


# What the cdk CLI adds to the context of the apps it runs (`--no-version-reporting`, as the
# demo and the workflow run it): the same template, resource metadata included.
CLI_CONTEXT = {"aws:cdk:version-reporting": False, "aws:cdk:enable-path-metadata": True,
               "aws:cdk:enable-asset-metadata": True}


def cdk_context() -> dict[str, Any]:
    """cdk.json's context: the feature flags `cdk synth` applies, and `serving`."""
    return json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]


def synth_assembly(serving: dict[str, Any], environments: Iterable[str], outdir: Path) -> Path:
    """One stack per environment, named and built as app.py builds it, nag packs included."""
    import aws_cdk as cdk

    from stacks.app_stacks import build_stacks
    from stacks.checks import add_nag_packs
    from serving_config.config import parse_config

    config = parse_config(serving)
    app = cdk.App(context={**cdk_context(), **CLI_CONTEXT, "serving": serving}, outdir=str(outdir))
    for name in environments:
        build_stacks(app, config, env_name=name, pipeline=False, refresh=False)
    add_nag_packs(app)
    app.synth()
    return outdir
