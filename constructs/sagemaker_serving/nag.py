"""cdk-nag acknowledgments, placed on the construct that causes the finding.

cdk-nag 3 names each wildcard finding after the resource as it appears in the template
(`AwsSolutions-IAM5[Resource::<Bucket83908E77.Arn>/batch-input/*]`). Writing those ids
by hand would break silently on a rename, so they are rendered from the same value the
policy holds.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct


def acknowledge(construct: Construct, rule: str, reason: str) -> None:
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))


def _render(stack: cdk.Stack, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        resource, attribute = value["Fn::GetAtt"]
        return f"<{resource}.{attribute}>"
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_render(stack, part) for part in parts)
    raise ValueError(f"cannot name a cdk-nag finding for {value!r}")


def acknowledge_wildcard_resource(construct: Construct, resource: str, reason: str) -> None:
    """Acknowledge AwsSolutions-IAM5 for one wildcard resource ARN used by `construct`."""
    stack = cdk.Stack.of(construct)
    finding = _render(stack, stack.resolve(resource))
    acknowledge(construct, f"AwsSolutions-IAM5[Resource::{finding}]", reason)


COMPLIANCE_PACKS = ("HIPAA.Security", "NIST.800.53.R5")


def acknowledge_in_compliance_packs(construct: Construct, rule: str, reason: str) -> None:
    """The same rule in the HIPAA and NIST 800-53 R5 packs, e.g. `IAMNoInlinePolicy`."""
    for pack in COMPLIANCE_PACKS:
        acknowledge(construct, f"{pack}-{rule}", reason)


INLINE_POLICY_REASON = (
    "The role's policy is created and deleted with the role in this stack and grants only what its model needs; "
    "inline keeps it from being attached to any other principal"
)
