"""What the delivery path adds to an environment's stack: the model registry (in the
environment that hosts it) and the record of which approved version is deployed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker

from sagemaker_serving.monitoring import LiveModelMonitor
from sagemaker_serving.nag import acknowledge_wildcard_resource
from sagemaker_serving.registry import ModelRegistry
from serving_config.model_package import RegistrySettings, ResolvedPackage
from serving_config.settings import REGISTRY_ARCHIVE_PREFIX
from stacks.data_store import DataStore

if TYPE_CHECKING:
    from stacks.serving_stack import ServingStack


def model_registry_of(stack: "ServingStack", settings: RegistrySettings | None, readers: Sequence[str],
                      data: DataStore) -> ModelRegistry | None:
    """The registry (group and archive bucket) when this stack holds it, with its outputs."""
    if settings is None:
        return None
    registry = ModelRegistry(stack, "ModelRegistry", group_name=settings.group_name, bucket_name=settings.bucket_name,
                             reader_accounts=[a for a in readers if a], access_log_bucket=data.access_log_bucket,
                             pipeline_artifacts_bucket=settings.pipeline_artifacts_bucket)
    cdk.CfnOutput(stack, "ModelPackageGroupName", value=settings.group_name,
                  description="endpointctl register creates versions here")
    cdk.CfnOutput(stack, "ModelRegistryBucketName", value=registry.bucket.bucket_name,
                  description="Archives of the registered versions")
    return registry


def deploys_package(stack: cdk.Stack, package: ResolvedPackage, *, registry: ModelRegistry | None,
                    roles: Sequence[iam.IRole], checks: iam.IRole | None = None) -> None:
    """Record which version is deployed, and let the models decrypt its archive, the
    monitoring job its baseline beside it, and the pipeline's `checks` role read every
    registered archive: its release plan scores the deployed version and the new one (the
    registry's bucket and key policies allow the other environments' accounts, through S3)."""
    readers = list(roles)
    if isinstance(checks, iam.Role):
        bucket = registry.bucket.bucket_name if registry else package.model_data_url[len("s3://"):].split("/", 1)[0]
        archives = f"arn:{stack.partition}:s3:::{bucket}/{REGISTRY_ARCHIVE_PREFIX}*"
        checks.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadRegisteredArchives", actions=["s3:GetObject"], resources=[archives]))
        acknowledge_wildcard_resource(checks, archives, "the release plan scores the deployed version's archive "
                                      "and the new one: registered archives, content-addressed under this prefix")
        readers.append(checks)
    for construct in stack.node.find_all():
        if isinstance(construct, sagemaker.CfnModel):  # the endpoint's models and the batch model
            cdk.Tags.of(construct).add("ModelPackageArn", package.arn)
        if isinstance(construct, LiveModelMonitor) and construct.reads_registry:
            readers.append(construct.job_role)
    cdk.CfnOutput(stack, "ModelPackageArn", value=package.arn, description="The approved model version deployed")
    # The archive is encrypted with the registry's key: exactly that key when this
    # stack holds the registry, else any key of the registry's account, through S3 only.
    registry_account = package.arn.split(":")[4]
    keys = registry.key.key_arn if registry else f"arn:{stack.partition}:kms:{stack.region}:{registry_account}:key/*"
    for role in readers:
        if not isinstance(role, iam.Role):
            continue  # an imported role is granted by whoever owns it
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="DecryptRegistryArchives", actions=["kms:Decrypt"], resources=[keys],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{stack.region}.{stack.url_suffix}"}},
        ))
        if registry is None:
            acknowledge_wildcard_resource(
                role, keys, f"the registry's archives in account {registry_account} are encrypted with the "
                "registry's key, whose id this stack cannot know at synth; only through S3 (kms:ViaService)")
