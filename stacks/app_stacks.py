"""What app.py builds: one environment's ServingStack (`-c env=NAME`), or the delivery
pipeline with every environment as a stage (`-c pipeline=true`); each environment's
`model_package` resolved first to one approved version (serving_config.model_package)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import aws_cdk as cdk

from serving_config.config import Environment, ServingConfig
from serving_config.model_package import CONTEXT_FILE, ModelPackageError, RegistrySettings, ResolvedPackage, resolve
from serving_config.names import pipeline_artifacts_bucket_name
from stacks.serving_stack import ServingStack


class AppContext:
    """The app's context (cdk.json, cdk.context.json, -c) read by key, as `resolve` reads a mapping."""

    def __init__(self, app: cdk.App):
        self.app = app

    def get(self, key: str) -> Any:
        return self.app.node.try_get_context(key)


def registry_settings(config: ServingConfig) -> RegistrySettings:
    return RegistrySettings(group_name=config.registry_group, bucket_name=config.registry_bucket,
                            environment=config.registry_environment,
                            pipeline_artifacts_bucket=pipeline_artifacts_bucket_name(config) if config.pipeline else None)


def context_flag(app: cdk.App, key: str) -> bool:
    """`-c key=true` arrives as the string "true"; cdk.json may hold a JSON true."""
    return str(app.node.try_get_context(key)).lower() == "true"


def resolve_packages(
    config: ServingConfig,
    environments: Iterable[Environment],
    *,
    context: Mapping[str, Any] | AppContext,
    refresh: bool,
    context_file: Path | None = CONTEXT_FILE,
    sagemaker_client: Callable[[str], Any] | None = None,
) -> dict[str, ResolvedPackage]:
    """{environment name: the version its model_package names}; a recorded answer is
    used as it is (no AWS call) unless `refresh`."""
    registry_account = config.environment(config.registry_environment).account
    resolved = {}
    for env in environments:
        if env.model_package is None:
            continue
        region = env.region or _default_region(env)
        resolved[env.name] = resolve(
            env.model_package, region=region, registry_account=registry_account, context=context,
            sagemaker_client=sagemaker_client or _sagemaker_client, context_file=context_file, refresh=refresh,
        )
    return resolved


def _default_region(env: Environment) -> str:
    import boto3

    region = boto3.session.Session().region_name
    if not region:
        raise ModelPackageError(f"environments.{env.name}.model_package: the region to look it up in is unknown; "
                                f"set environments.{env.name}.region or AWS_REGION")
    return region


def _sagemaker_client(region: str) -> Any:
    import boto3

    return boto3.client("sagemaker", region_name=region)


def build_stacks(app: cdk.App, config: ServingConfig, *, env_name: str, pipeline: bool, refresh: bool,
                 context_file: Path | None = CONTEXT_FILE) -> cdk.Stack:
    context = AppContext(app)
    if pipeline:
        # Imported here: CDK Pipelines' classes cost ~0.4 s of every synth that builds no pipeline.
        from sagemaker_serving.pipeline_artifacts import ArtifactRetention
        from stacks.pipeline_stack import PipelineStack

        if config.pipeline is None:
            raise ValueError("pipeline: missing; allowed: an object with connection_arn, repository and branch "
                             "(cdk.json context serving.pipeline) to synthesize with -c pipeline=true")
        environments = config.pipeline_environments
        return PipelineStack(
            app, "Pipeline",
            source=config.pipeline,  # validated with the configuration
            environments=environments,
            registry=registry_settings(config),
            retention=ArtifactRetention(artifact_days=config.pipeline.artifact_days,
                                        log_retention_days=config.pipeline.log_retention_days),
            model_packages=resolve_packages(config, environments, context=context, refresh=refresh,
                                            context_file=context_file),
        )
    env = config.environment(env_name)
    packages = resolve_packages(config, [env], context=context, refresh=refresh, context_file=context_file)
    return ServingStack(app, env.stack_name, environment=env, model_package=packages.get(env.name),
                        **registry_options(config, env))


def registry_options(config: ServingConfig, env: Environment) -> dict[str, Any]:
    """The registry environment's stack creates the registry, readable by the other accounts."""
    registry = registry_settings(config)
    return {"model_registry": registry if env.name == registry.environment else None,
            "registry_readers": [e.account for e in config.environments.values() if e.account]}
