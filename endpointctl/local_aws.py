"""The local AWS for `make demo` and the end-to-end test: moto's server, with seven
fixes to moto 5.2.5's CloudFormation layer that this stack needs. Each is a place where
moto differs from CloudFormation; none changes what the stack asks for.

1. AWS::KMS::Key: CloudFormation passes Tags as Key/Value and KeyPolicy as an object;
   moto expects TagKey/TagValue and a JSON string, answers 500 and leaves the stack
   half-built (while `cdk deploy` reports success).
2. Stack outputs: moto computes them when a stack is created, never after a change set
   runs, and the CDK always deploys through change sets: outputs would be empty.
3. AWS::SageMaker::Endpoint: moto ignores EndpointName and invents one.
4. AWS::IAM::ManagedPolicy: moto never deletes it on stack deletion.
5. AWS::SageMaker::Model: moto knows only `Fn::GetAtt ModelName`; CloudFormation also
   returns ModelArn (the launcher policy's condition names the batch model by it).
6. AWS::SageMaker::ModelPackageGroup: moto's SageMaker has model package groups, but its
   CloudFormation skips the type with a warning; the model registry's group is created here.
7. UpdateModelPackage: moto replaces CustomerMetadataProperties with the request's, None
   when the request has none (an approval); SageMaker only adds what the request names.

Run: python -m endpointctl.local_aws -H 127.0.0.1 -p PORT   (moto_server's arguments)
"""

from __future__ import annotations

import json
import sys


def _kms_key_from_cloudformation(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    from moto.kms.models import kms_backends

    properties = cloudformation_json["Properties"]
    policy = properties["KeyPolicy"]
    key = kms_backends[account_id][region_name].create_key(
        policy=policy if isinstance(policy, str) else json.dumps(policy),
        key_usage=properties.get("KeyUsage", "ENCRYPT_DECRYPT"),
        key_spec=properties.get("KeySpec", "SYMMETRIC_DEFAULT"),
        description=properties.get("Description"),
        tags=[{"TagKey": tag["Key"], "TagValue": tag["Value"]} for tag in properties.get("Tags", [])],
    )
    key.key_rotation_status = properties.get("EnableKeyRotation", False)
    key.enabled = properties.get("Enabled", True)
    return key


def _managed_policy_delete(cls, resource_name, cloudformation_json, account_id, region_name):
    from moto.iam.models import iam_backends

    iam_backends[account_id]["global"].delete_policy(resource_name)


def _model_attribute(self, attribute_name: str) -> str:
    from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

    if attribute_name == "ModelName":
        return self.model_name
    if attribute_name == "ModelArn":
        return self.arn
    raise UnformattedGetAttTemplateException()


_ADDED_TYPES: list[type] = []


def _model_package_group_resource() -> type:
    """A CloudFormation type over moto's own model package groups (Ref: the ARN)."""
    from moto.core.common_models import CloudFormationModel
    from moto.sagemaker.models import sagemaker_backends

    class ModelPackageGroupResource(CloudFormationModel):
        __module__ = "moto.sagemaker.models"  # moto files its models by the service in the module path

        def __init__(self, group, account_id: str, region_name: str):
            self.group, self.account_id, self.region_name = group, account_id, region_name

        @property
        def physical_resource_id(self) -> str:
            return self.group.arn

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::SageMaker::ModelPackageGroup"

        @staticmethod
        def cloudformation_name_type() -> str:
            return "ModelPackageGroupName"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "ModelPackageGroupArn"

        def get_cfn_attribute(self, attribute_name: str) -> str:
            return self.group.arn

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
            properties = cloudformation_json["Properties"]
            backend = sagemaker_backends[account_id][region_name]
            name = properties.get("ModelPackageGroupName", resource_name)
            backend.create_model_package_group(name, properties.get("ModelPackageGroupDescription", ""),
                                               tags=properties.get("Tags", []))
            return cls(backend.model_package_groups[name], account_id, region_name)

        @classmethod
        def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
            sagemaker_backends[account_id][region_name].model_package_groups.pop(resource_name.split("/")[-1], None)

    return ModelPackageGroupResource


def _keep_customer_metadata(update):
    def update_model_package(self, model_package_arn, model_approval_status, approval_description,
                             customer_metadata_properties, *args, **kwargs):
        package = self.describe_model_package(model_package_arn)
        merged = {**(package.customer_metadata_properties or {}), **(customer_metadata_properties or {})}
        return update(self, model_package_arn, model_approval_status, approval_description, merged or None,
                      *args, **kwargs)

    return update_model_package


def apply_fixes() -> None:
    from moto.cloudformation import models as cloudformation
    from moto.cloudformation.parsing import OutputMap
    from moto.iam.models import ManagedPolicy
    from moto.kms.models import Key
    from moto.sagemaker.models import FakeEndpoint, Model, SageMakerModelBackend

    Key.create_from_cloudformation_json = classmethod(_kms_key_from_cloudformation)

    apply_change_set = cloudformation.ChangeSet.apply

    def apply_and_refresh_outputs(self):  # type: ignore[no-untyped-def]
        apply_change_set(self)
        self.stack.output_map = OutputMap(self.stack.resource_map, self.template_dict, self.stack.stack_id)

    cloudformation.ChangeSet.apply = apply_and_refresh_outputs
    FakeEndpoint.cloudformation_name_type = staticmethod(lambda: "EndpointName")
    ManagedPolicy.delete_from_cloudformation_json = classmethod(_managed_policy_delete)
    Model.has_cfn_attr = classmethod(lambda cls, attr: attr in ("ModelName", "ModelArn"))
    Model.get_cfn_attribute = _model_attribute
    SageMakerModelBackend.update_model_package = _keep_customer_metadata(SageMakerModelBackend.update_model_package)
    # Registered by subclassing (moto lists CloudFormationModel's subclasses, weakly: keep a reference).
    _ADDED_TYPES.append(_model_package_group_resource())


def main() -> int:
    apply_fixes()
    from moto.server import main as moto_main

    return moto_main(sys.argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
