"""A SageMaker Model running the sklearn serving image with our handler and artifact."""

from __future__ import annotations

import abc
import re
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from serving_runtime.bundle import source_bundle_bytes, write_content_addressed
from serving_runtime.contract import (
    CODE_IN_ARCHIVE,
    DEFAULT_PROGRAM,
    MODEL_ARCHIVE,
    S3_BUCKET_NAME,
    archive_with_code,
    container_environment,
)
from sagemaker_serving.image import SklearnImage
from serving_config.settings import NetworkSettings
from sagemaker_serving.nag import (
    INLINE_POLICY_REASON,
    acknowledge,
    acknowledge_in_compliance_packs,
    acknowledge_wildcard_resource,
)

S3_URL = re.compile(rf"^s3://(?P<bucket>{S3_BUCKET_NAME})/(?P<key>.+\.tar\.gz)$")


class ModelData(abc.ABC):
    """Where `model.tar.gz` comes from; each source binds its own read permission."""

    @staticmethod
    def from_asset(path: str | Path) -> "ModelData":
        return _AssetModelData(Path(path))

    @staticmethod
    def from_s3_url(url: str) -> "ModelData":
        return _S3ModelData(url)

    @staticmethod
    def from_registered_package(url: str) -> "ModelData":
        """A model registry version's archive: it holds its handler under `code/`
        (`endpointctl register` packs it), so the handler approved is the one that runs."""
        return _S3ModelData(url, includes_code=True)

    # Whether the archive carries its handler under code/ (then SAGEMAKER_SUBMIT_DIRECTORY
    # is /opt/ml/model/code, isolated or not).
    includes_code = False

    @abc.abstractmethod
    def bind(self, scope: Construct, grantee: iam.IGrantable) -> str:
        """Grant `grantee` read access and return the S3 URL for `ModelDataUrl`."""

    def with_code(self, source: "SourceBundle") -> "ModelData":
        """The artifact with the handler inside under `code/`, for a network-isolated
        container that cannot download SAGEMAKER_SUBMIT_DIRECTORY (what the SDK does)."""
        raise ValueError(
            f"model_data {self}: a network-isolated model needs the handler inside model.tar.gz, packed at synth "
            "from a local model_data; use a local .tar.gz, or turn isolation off with a written reason "
            "(network.isolation false, network.isolation_off_reason)"
        )


class _AssetModelData(ModelData):
    def __init__(self, path: Path):
        if not path.is_file():
            raise ValueError(
                f"model_data: {path} is not a file; train one with `endpointctl train-sample --out {path}` "
                "or set model_data to an s3:// URL"
            )
        self.path = path
        self._with_code: dict[int, ModelData] = {}

    def with_code(self, source: "SourceBundle") -> "ModelData":
        # Once per artifact and handler: the endpoint's and the batch model share it.
        if id(source) not in self._with_code:
            self._with_code[id(source)] = ModelData.from_asset(model_with_code(self.path, source))
        return self._with_code[id(source)]

    def bind(self, scope: Construct, grantee: iam.IGrantable) -> str:
        # A file asset is uploaded as it is (a directory asset would be zipped).
        # Models sharing the file share one upload: assets are deduplicated by hash.
        asset = s3_assets.Asset(scope, "ModelData", path=str(self.path))
        grant_object_read(scope, grantee, asset.s3_bucket_name, asset.s3_object_key)
        return asset.s3_object_url


class _S3ModelData(ModelData):
    def __init__(self, url: str, *, includes_code: bool = False):
        match = S3_URL.match(url)
        if not match:
            raise ValueError(f"model_data must look like s3://bucket/key/model.tar.gz, got {url!r}")
        self.url, self.bucket, self.key = url, match["bucket"], match["key"]
        self.includes_code = includes_code

    def with_code(self, source: "SourceBundle") -> "ModelData":
        return self if self.includes_code else super().with_code(source)

    def bind(self, scope: Construct, grantee: iam.IGrantable) -> str:
        grant_object_read(scope, grantee, self.bucket, self.key)
        return self.url

    def __str__(self) -> str:
        return self.url


def sagemaker_principal(scope: Construct) -> iam.IPrincipal:
    """SageMaker, as the principal of an execution role's trust policy, only when it acts
    for this account's resources in this region (confused-deputy prevention, SageMaker
    guide). The ARN pattern is the documented `arn:aws:sagemaker:<region>:<account>:*`:
    the role is assumed for models, endpoints and transform jobs alike, and AWS warns
    against narrowing it to one model's or endpoint's ARN."""
    stack = cdk.Stack.of(scope)
    return iam.ServicePrincipal(
        "sagemaker.amazonaws.com",
        conditions={
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}:*"},
        },
    )


def grant_object_read(scope: Construct, grantee: iam.IGrantable, bucket: str, key: str) -> None:
    """Read one object, not the bucket: CDK's asset grant_read would open every asset."""
    partition = cdk.Stack.of(scope).partition
    iam.Grant.add_to_principal(
        grantee=grantee, actions=["s3:GetObject"], resource_arns=[f"arn:{partition}:s3:::{bucket}/{key}"]
    )


def model_with_code(model_archive: Path, source: "SourceBundle") -> Path:
    """`model.tar.gz` repacked with the handler under `code/`."""
    return write_content_addressed(archive_with_code(model_archive, source.directory), MODEL_ARCHIVE)


def grant_container_telemetry(scope: Construct, role: iam.IRole, log_group_prefix: str) -> str:
    """Write the container's logs under `log_group_prefix` and its metrics; returns the
    log groups' ARN pattern."""
    log_groups = cdk.Stack.of(scope).format_arn(
        service="logs",
        resource="log-group",
        resource_name=f"{log_group_prefix}*",
        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
    )
    iam.Grant.add_to_principal(
        grantee=role,
        actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
        resource_arns=[log_groups],
    )
    iam.Grant.add_to_principal(
        grantee=role,
        # PutMetricData has no resource-level form; the condition keeps it to SageMaker's namespaces.
        actions=["cloudwatch:PutMetricData"],
        resource_arns=["*"],
        conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
    )
    return log_groups


def acknowledge_model_role(role: iam.IRole) -> None:
    acknowledge_in_compliance_packs(role, "IAMNoInlinePolicy", INLINE_POLICY_REASON)
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "ecr:GetAuthorizationToken, cloudwatch:PutMetricData and the EC2 Describe/NetworkInterface actions a "
        "VPC model needs have no usable resource-level form; PutMetricData is limited to /aws/sagemaker/* by condition",
    )


def grant_model_network_interfaces(role: iam.IRole) -> None:
    """What a model in a VPC needs of its role."""
    # In a VPC, CreateModel and the container attach network interfaces as this
    # role; without these it fails on AWS, not at synth. Only roles of VPC models
    # get them. They stay on "*": EC2's Describe calls have no resource-level
    # form, and SageMaker documents the interface actions on "*" with no
    # ec2:Subnet/ec2:Vpc scoping (conditions there make its VPC validation fail);
    # subnets may also be shared from another account, so an account-scoped ARN
    # could refuse them (README, "What stays `*`").
    role.add_to_principal_policy(iam.PolicyStatement(
        sid="ReadVpcConfiguration",
        actions=["ec2:DescribeDhcpOptions", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups",
                 "ec2:DescribeSubnets", "ec2:DescribeVpcs"],
        resources=["*"],
    ))
    role.add_to_principal_policy(iam.PolicyStatement(
        sid="ManageModelNetworkInterfaces",
        actions=["ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission",
                 "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission"],
        resources=["*"],
    ))


class SourceBundle:
    """The handler directory, shipped as `sourcedir.tar.gz` (a reproducible gzip tar with
    the entry point at its root), as SAGEMAKER_SUBMIT_DIRECTORY expects."""

    def __init__(self, directory: Path, *, program: str):
        if not (directory / program).is_file():
            raise ValueError(f"handler: {directory / program} does not exist")
        self.directory = directory
        self.program = program
        self.tarball = write_content_addressed(source_bundle_bytes(directory), "sourcedir.tar.gz")

    @staticmethod
    def from_directory(directory: str | Path, *, program: str = DEFAULT_PROGRAM) -> "SourceBundle":
        return SourceBundle(Path(directory), program=program)

    def bind(self, scope: Construct, grantee: iam.IGrantable) -> str:
        asset = s3_assets.Asset(scope, "HandlerCode", path=str(self.tarball))
        grant_object_read(scope, grantee, asset.s3_bucket_name, asset.s3_object_key)
        return asset.s3_object_url


class SklearnModel(Construct):
    """`AWS::SageMaker::Model` for the sklearn image, its handler and its artifact.

    Props: `role` (execution role; granted what the container needs unless imported
    immutable), `image`, `model_data` (where model.tar.gz comes from), `source` (the
    handler), `log_group_prefix` (where the container logs), `max_request_bytes` (the
    handler's limit), `network` (default isolated, no VPC). The handler travels inside
    the archive when isolated or registered, else as its own asset.

    The execution role gets exactly what the container needs: read the artifact and the
    code, pull the image, write its logs under `log_group_prefix`. CloudFormation names
    the model: every property change replaces it, and a fixed name would then collide.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        role: iam.IRole,
        image: SklearnImage,
        model_data: ModelData,
        source: SourceBundle,
        log_group_prefix: str,
        max_request_bytes: int,
        network: NetworkSettings = NetworkSettings(),
    ) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)
        self.role = role
        self.network = network
        if network.isolation or model_data.includes_code:
            # No network, or a registered version: the code travels inside model.tar.gz under code/.
            model_data = model_data.with_code(source)
            code_url = CODE_IN_ARCHIVE
        else:
            code_url = source.bind(self, role)
        if not network.isolation:
            cdk.Annotations.of(self).add_warning_v2(
                "sagemaker-serving:network-isolation-off",
                f"model {self.node.path} is not network-isolated: its container can reach the network and holds "
                f"its role's credentials while it runs our code and the pickle. Reason given: {network.isolation_off_reason}",
            )
        model_data_url = model_data.bind(self, role)
        image.grant_pull(self, role)
        log_groups = grant_container_telemetry(self, role, log_group_prefix)
        environment = container_environment(program=source.program, submit_directory=code_url, region=stack.region,
                                            max_request_bytes=max_request_bytes)
        self.resource = sagemaker.CfnModel(
            self,
            "Resource",
            execution_role_arn=role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image.image_uri(self), model_data_url=model_data_url, environment=environment
            ),
            vpc_config=sagemaker.CfnModel.VpcConfigProperty(
                subnets=list(network.subnet_ids), security_group_ids=list(network.security_group_ids)
            )
            if network.subnet_ids
            else None,
            enable_network_isolation=True if network.isolation else None,
        )
        acknowledge_wildcard_resource(
            role, log_groups, f"SageMaker names the log group {log_group_prefix}[/job] and a stream per instance"
        )
        if network.subnet_ids:
            grant_model_network_interfaces(role)
        acknowledge_model_role(role)
        # CreateModel and the container's start read S3 and ECR as the role: wait for
        # its policy, not only the role (which ExecutionRoleArn already orders), or
        # they can fail while the policy is still being attached.
        policy = role.node.try_find_child("DefaultPolicy")
        if policy is not None:
            self.resource.node.add_dependency(policy)

    @property
    def model_name(self) -> str:
        return self.resource.attr_model_name

    @property
    def model_arn(self) -> str:
        return self.resource.attr_model_arn
