"""The SageMaker scikit-learn serving image, with the right ECR account per region."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from serving_runtime.image import framework_versions as known_versions
from serving_runtime.image import images as _images


@dataclass(frozen=True)
class SklearnImage:
    """`ContainerImage.from_dlc`-style: the AWS-owned sklearn inference image of a version."""

    framework_version: str

    def __post_init__(self) -> None:
        if self.framework_version not in _images():
            raise ValueError(
                f"framework_version must be one of {', '.join(known_versions())}, got {self.framework_version!r}"
            )

    @property
    def repository(self) -> str:
        return _images()[self.framework_version]["repository"]

    @property
    def tag(self) -> str:
        return _images()[self.framework_version]["tag"]

    @property
    def registries(self) -> dict[str, str]:
        return dict(_images()[self.framework_version]["registries"])

    def account_for(self, scope: Construct) -> str:
        """The ECR account for the stack's region: a literal when the region is known,
        else a `Fn::FindInMap` over every region, so a region-agnostic template works anywhere."""
        stack = cdk.Stack.of(scope)
        region = stack.region
        if not cdk.Token.is_unresolved(region):
            if region not in self.registries:
                raise ValueError(
                    f"the sklearn {self.framework_version} image is not published in region {region!r}; "
                    f"regions: {', '.join(sorted(self.registries))}"
                )
            return self.registries[region]
        mapping_id = f"SklearnImageAccounts{self.framework_version.replace('.', '').replace('-', '')}"
        mapping = stack.node.try_find_child(mapping_id)
        if mapping is None:
            mapping = cdk.CfnMapping(
                stack, mapping_id, mapping={r: {"account": a} for r, a in sorted(self.registries.items())}
            )
        return mapping.find_in_map(cdk.Aws.REGION, "account")

    def image_uri(self, scope: Construct) -> str:
        account = self.account_for(scope)
        region = cdk.Stack.of(scope).region
        return f"{account}.dkr.ecr.{region}.{cdk.Aws.URL_SUFFIX}/{self.repository}:{self.tag}"

    def repository_arn(self, scope: Construct) -> str:
        stack = cdk.Stack.of(scope)
        return f"arn:{stack.partition}:ecr:{stack.region}:{self.account_for(scope)}:repository/{self.repository}"

    def grant_pull(self, scope: Construct, grantee: iam.IGrantable) -> None:
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            resource_arns=[self.repository_arn(scope)],
        )
        # GetAuthorizationToken has no resource-level form: it only takes "*".
        iam.Grant.add_to_principal(grantee=grantee, actions=["ecr:GetAuthorizationToken"], resource_arns=["*"])
