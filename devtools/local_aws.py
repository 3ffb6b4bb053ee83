"""The local AWS for `make demo` and the end-to-end test: moto's server, with eleven
fixes to moto 5.2.5's CloudFormation and SageMaker layers that this stack needs. Each is a place where
moto differs from CloudFormation; none changes what the stack asks for.

1. AWS::KMS::Key: CloudFormation passes Tags as Key/Value and KeyPolicy as an object;
   moto expects TagKey/TagValue and a JSON string, answers 500 and leaves the stack
   half-built (while `cdk deploy` reports success).
2. Stack outputs: moto computes them when a stack is created, never after a change set
   runs, and the CDK always deploys through change sets: outputs would be empty.
3. AWS::SageMaker::Endpoint: moto ignores EndpointName and invents one.
4. AWS::IAM::ManagedPolicy: moto never deletes it on stack deletion, and on a stack
   update drops it from the stack (no update handler); CloudFormation updates it in place
   with a new default policy version, which is what happens here.
5. AWS::SageMaker::Model: moto knows only `Fn::GetAtt ModelName`; CloudFormation also
   returns ModelArn (the launcher policy's condition names the batch model by it).
6. AWS::SageMaker::ModelPackageGroup: moto's SageMaker has model package groups, but its
   CloudFormation skips the type with a warning; the model registry's group is created here.
7. UpdateModelPackage: moto replaces CustomerMetadataProperties with the request's, None
   when the request has none (an approval); SageMaker only adds what the request names.
8. DescribeChangeSet of a change set that is not there: CloudFormation answers
   ChangeSetNotFound, which `cdk deploy` of an existing stack expects after deleting its
   previous change set; moto answers "Stack with id ... does not exist" and the second
   deploy of a stack stops there.
9. Updating a stack with an SSM-typed parameter (the CDK's BootstrapVersion): moto hands
   the value it resolved at creation back as the parameter's SSM path and fails (500) on
   the lookup; CloudFormation keeps the path and resolves it again. Here a value that
   names no SSM parameter is taken as the value already resolved.
10. A stack update: moto updates only resources whose own template text changed, in any
    order. CloudFormation also updates every resource whose Ref/GetAtt names a replaced
    one (the endpoint config of a replaced model, the endpoint of a replaced config),
    after what it depends on. Here the resources `endpointctl plan` finds changed through
    a replacement are added, and all are updated in dependency order — otherwise a new
    model leaves the endpoint config pointing at the deleted old one.
11. The model registry by ARN: SageMaker takes a group's or a version's ARN wherever it
    takes its name (DescribeModelPackageGroup, ListModelPackages, DescribeModelPackage,
    UpdateModelPackage), and an ARN names the account and region that hold it: the
    cross-account lookup a synth makes when environments set `account`. moto looks
    groups up by name only (it prefixes an ARN as if it were a name: "does not exist")
    and serves every call from the caller's account. Here an ARN is followed to the
    account and region it names, and a group's ARN to its name there.
12. AWS::SageMaker::EndpointConfig: moto drops ShadowProductionVariants; SageMaker keeps
    them and DescribeEndpointConfig returns them. Here the config keeps and describes them.

Run: python -m devtools.local_aws -H 127.0.0.1 -p PORT   (moto_server's arguments)
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


def _managed_policy_update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
    from moto.iam.models import iam_backends

    backend = iam_backends[account_id]["global"]
    document = cloudformation_json["Properties"]["PolicyDocument"]
    policy = backend.get_policy(original_resource.arn)
    for version in [v for v in policy.versions if not v.is_default][:-3]:  # IAM keeps at most five versions
        backend.delete_policy_version(policy.arn, version.version_id)
    backend.create_policy_version(policy.arn, document if isinstance(document, str) else json.dumps(document), True)
    return original_resource


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


# What each registry operation is given, and which kind of ARN it may be.
_REGISTRY_ARNS = {
    "describe_model_package_group": ("model_package_group_name", "model-package-group"),
    "list_model_packages": ("model_package_group_name", "model-package-group"),
    "describe_model_package": ("model_package_name", "model-package"),
    "update_model_package": ("model_package_arn", "model-package"),
}


def _follow_registry_arn(operation, argument: str, kind: str):
    """The operation, served by the backend of the account and region an ARN names
    (a group's ARN becomes its name there, as moto keys groups by name)."""
    import re

    arn = re.compile(rf"^arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{{12}}):{kind}/(?P<name>.+)$")

    def follow(self, *args, **kwargs):
        from moto.sagemaker.models import sagemaker_backends

        match = arn.match(kwargs.get(argument) or "")
        if match is None:
            return operation(self, *args, **kwargs)
        backend = sagemaker_backends[match["account"]][match["region"]]
        if kind == "model-package-group":
            kwargs[argument] = match["name"]
        return operation(backend, *args, **kwargs)

    follow.follows_arns = True
    return follow


def _change_set_not_found(describe):
    from moto.cloudformation.exceptions import CloudFormationError, ValidationError

    class ChangeSetNotFound(CloudFormationError):
        code = "ChangeSetNotFound"

    def describe_change_set(self, change_set_name):
        try:
            return describe(self, change_set_name)
        except ValidationError:
            raise ChangeSetNotFound(f"ChangeSet [{change_set_name}] does not exist") from None

    return describe_change_set


def _resolved_ssm_parameter(self, value: str, value_type: str):
    from moto.ssm.models import ssm_backends

    if ssm_backends[self._account_id][self._region_name].get_parameter(value) is None:
        return value.split(",") if "List" in value_type else value
    return _PARSE_SSM_PARAMETER[0](self, value, value_type)


_PARSE_SSM_PARAMETER: list = []


def _follow_replacements(build_resource_diff):
    from endpointctl.plan.resources import diff_resources, references

    def resource_diff(self, other_template, parameters=None):
        actions = build_resource_diff(self, other_template, parameters)
        followed = [c.logical_id for c in diff_resources({"Resources": self._resource_json_map}, other_template)
                    if "refers to replaced" in c.why and c.logical_id not in actions["Modify"]
                    and c.logical_id not in actions["Add"]]
        resources = other_template["Resources"]
        pending, ordered = set(actions["Modify"]) | set(followed), []
        while pending:  # what a resource refers to is updated before it
            ready = sorted(n for n in pending if not (set(references(resources[n])) & (pending - {n})))
            ordered += ready or sorted(pending)
            pending -= set(ready or pending)
        actions["Modify"] = ordered
        return actions

    return resource_diff


def _keep_shadow_variants(create):
    """Fix 11: the endpoint config made from a template keeps its ShadowProductionVariants
    (DescribeEndpointConfig answers from the object's attributes, None left out)."""
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        config = create.__func__(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        config.shadow_production_variants = cloudformation_json["Properties"].get("ShadowProductionVariants")
        return config

    create_from_cloudformation_json.keeps_shadow_variants = True
    return classmethod(create_from_cloudformation_json)


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
    ManagedPolicy.update_from_cloudformation_json = classmethod(_managed_policy_update)
    Model.has_cfn_attr = classmethod(lambda cls, attr: attr in ("ModelName", "ModelArn"))
    Model.get_cfn_attribute = _model_attribute
    from moto.cloudformation.parsing import ResourceMap

    if not _PARSE_SSM_PARAMETER:
        _PARSE_SSM_PARAMETER.append(ResourceMap.parse_ssm_parameter)
    ResourceMap.parse_ssm_parameter = _resolved_ssm_parameter
    if not getattr(ResourceMap.build_resource_diff, "follows_replacements", False):
        ResourceMap.build_resource_diff = _follow_replacements(ResourceMap.build_resource_diff)
        ResourceMap.build_resource_diff.follows_replacements = True
    backend = cloudformation.CloudFormationBackend
    backend.describe_change_set = _change_set_not_found(backend.describe_change_set)
    SageMakerModelBackend.update_model_package = _keep_customer_metadata(SageMakerModelBackend.update_model_package)
    for operation, (argument, kind) in _REGISTRY_ARNS.items():
        current = getattr(SageMakerModelBackend, operation)
        if not getattr(current, "follows_arns", False):
            setattr(SageMakerModelBackend, operation, _follow_registry_arn(current, argument, kind))

    from moto.sagemaker.models import FakeEndpointConfig

    if not getattr(FakeEndpointConfig.create_from_cloudformation_json, "keeps_shadow_variants", False):
        FakeEndpointConfig.create_from_cloudformation_json = _keep_shadow_variants(
            FakeEndpointConfig.create_from_cloudformation_json)
    # Registered by subclassing (moto lists CloudFormationModel's subclasses, weakly: keep a reference).
    _ADDED_TYPES.append(_model_package_group_resource())


def main() -> int:
    apply_fixes()
    from moto.server import main as moto_main

    return moto_main(sys.argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
