"""Data: a bucket, key or log group replaced or deleted, or its retention switched off.

A resource whose DeletionPolicy (on delete) or UpdateReplacePolicy (on replacement) is
Retain/RetainExceptOnCreate/Snapshot is kept by CloudFormation; otherwise its data goes
with it (CloudFormation user guide, "DeletionPolicy attribute", "UpdateReplacePolicy
attribute").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from endpointctl.plan.resources import ResourceChange
from endpointctl.plan.risks import Risk

STATEFUL_TYPES = ("AWS::S3::Bucket", "AWS::KMS::Key", "AWS::Logs::LogGroup", "AWS::DynamoDB::Table",
                  "AWS::EFS::FileSystem", "AWS::RDS::DBInstance", "AWS::RDS::DBCluster")
KEEPING_POLICIES = ("Retain", "RetainExceptOnCreate", "Snapshot")
# CDK's custom resource that empties a bucket when the stack deletes it.
AUTO_DELETE = "Custom::S3AutoDeleteObjects"


@dataclass(frozen=True)
class DataChange:
    logical_id: str
    type: str
    change: str

    def as_json(self) -> dict[str, Any]:
        return {"logical_id": self.logical_id, "type": self.type, "change": self.change}


def _kept(resource: dict, policy: str) -> bool:
    return resource.get(policy, "Delete") in KEEPING_POLICIES


def diff_data(old_template: dict, new_template: dict, changes: list[ResourceChange]) -> tuple[list[DataChange], list[Risk]]:
    old, new = old_template.get("Resources", {}), new_template.get("Resources", {})
    found: list[tuple[DataChange, Risk]] = []
    for change in changes:
        if change.type in STATEFUL_TYPES and change.action in ("replace", "remove"):
            found.append(_lost_or_orphaned(change, old[change.logical_id]))
    for logical_id in sorted(old.keys() & new.keys()):
        if new[logical_id].get("Type") in STATEFUL_TYPES:
            found += _retention(logical_id, old[logical_id], new[logical_id])
    added_auto_delete = [c for c in changes if c.type == AUTO_DELETE and c.action == "add"]
    for change in added_auto_delete:
        found.append((DataChange(change.logical_id, change.type, "auto-delete added"),
                      Risk("data_loss", f"{change.logical_id}: destroying the stack now empties its bucket")))
    return [d for d, _ in found], [r for _, r in found]


def _lost_or_orphaned(change: ResourceChange, old: dict) -> tuple[DataChange, Risk]:
    policy = "UpdateReplacePolicy" if change.action == "replace" else "DeletionPolicy"
    verb = "replaced" if change.action == "replace" else "deleted"
    if _kept(old, policy):
        return (DataChange(change.logical_id, change.type, f"{verb}, old one kept ({policy} {old[policy]})"),
                Risk("info", f"{change.logical_id} ({change.type}) is {verb}; the old one is kept by its {policy} "
                             "and no longer managed by the stack: delete or import it by hand"))
    return (DataChange(change.logical_id, change.type, f"{verb}, data deleted"),
            Risk("data_loss", f"{change.logical_id} ({change.type}) is {verb} and its data with it ({change.why})"))


def _retention(logical_id: str, old: dict, new: dict) -> list[tuple[DataChange, Risk]]:
    found = []
    kind = new["Type"]
    for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
        if _kept(old, policy) and not _kept(new, policy):
            found.append((DataChange(logical_id, kind, f"{policy} {old.get(policy)} → {new.get(policy, 'Delete')}"),
                          Risk("data_loss", f"{logical_id} ({kind}): {policy} {old.get(policy)} → "
                                            f"{new.get(policy, 'Delete')}: the next replacement or destroy deletes it")))
    before = old.get("Properties", {}).get("RetentionInDays")
    after = new.get("Properties", {}).get("RetentionInDays")
    if kind == "AWS::Logs::LogGroup" and isinstance(after, int) and (before is None or after < before):
        shown = "never expire" if before is None else f"{before} days"
        found.append((DataChange(logical_id, kind, f"RetentionInDays {before} → {after}"),
                      Risk("data_loss", f"{logical_id}: log retention {shown} → {after} days deletes the older logs")))
    return found
