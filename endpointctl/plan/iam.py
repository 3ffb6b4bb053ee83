"""IAM: statements added and removed per role and policy; any widening stands out.

A statement is compared as the grants it makes — (effect, action, resource, condition)
for each action × resource — so re-grouping statements is no change, and a grant is a
widening only when no grant of the base covers it (IAM wildcards `*` and `?`). A Deny
that goes away widens too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from endpointctl.plan.risks import Risk
from endpointctl.plan.template import show, target

TRUST = " (trust policy)"


@dataclass(frozen=True, order=True)
class Grant:
    effect: str
    action: str
    resource: str
    condition: str

    def covered_by(self, other: "Grant") -> bool:
        return (self.effect == other.effect and self.condition == other.condition
                and iam_match(self.action.lower(), other.action.lower()) and iam_match(self.resource, other.resource))

    def __str__(self) -> str:
        text = f"{self.action} on {self.resource}"
        return f"{text} when {self.condition}" if self.condition != "{}" else text


@dataclass
class PolicyChange:
    policy: str
    roles: list[str]
    added: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    widens: list[str] = field(default_factory=list)
    granted: list[str] = field(default_factory=list)  # grants new in head, readable
    revoked: list[str] = field(default_factory=list)  # grants gone from base, readable

    def as_json(self) -> dict[str, Any]:
        return {"policy": self.policy, "roles": self.roles, "added": self.added, "removed": self.removed,
                "granted": self.granted, "revoked": self.revoked, "widens": self.widens}


def iam_match(value: str, pattern: str) -> bool:
    """IAM's wildcards: `*` any run of characters, `?` one; nothing else is special."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, value) is not None


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def documents(template: dict) -> dict[str, tuple[list[str], list[dict]]]:
    """Every policy document of the template by a readable key: (roles it applies to, statements)."""
    found: dict[str, tuple[list[str], list[dict]]] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        kind, props = resource.get("Type"), resource.get("Properties", {})
        if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            roles = [target(role) or show(role) for role in props.get("Roles", [])]
            found[logical_id] = (roles, _as_list(props.get("PolicyDocument", {}).get("Statement", [])))
        elif kind == "AWS::IAM::Role":
            trust = props.get("AssumeRolePolicyDocument", {}).get("Statement", [])
            found[f"{logical_id}{TRUST}"] = ([logical_id], _as_list(trust))
            for inline in props.get("Policies", []):
                key = f"{logical_id}/{inline.get('PolicyName')}"
                found[key] = ([logical_id], _as_list(inline.get("PolicyDocument", {}).get("Statement", [])))
    return found


def grants(statements: list[dict]) -> set[Grant]:
    return {grant for statement in statements for grant in _statement_grants(statement)}


def _statement_grants(statement: dict) -> Iterator[Grant]:
    condition = json.dumps(statement.get("Condition", {}), sort_keys=True)
    actions = _as_list(statement.get("Action", statement.get("NotAction", [])))
    prefix = "NOT " if "NotAction" in statement else ""
    resources = _as_list(statement.get("Resource", statement.get("Principal", "*")))
    for action in actions:
        for resource in resources:
            yield Grant(statement.get("Effect", "Allow"), prefix + show(action), show(resource), condition)


def widening(old: set[Grant], new: set[Grant]) -> list[str]:
    """New Allow grants no base grant covers — except a grant that takes the place of a
    revoked one with the same action and condition (the new model archive for the old)."""
    allows_before = [g for g in old if g.effect == "Allow"]
    revoked = sorted(g for g in old - new if g.effect == "Allow")
    wider = []
    for grant in sorted(g for g in new - old if g.effect == "Allow"):
        if any(grant.covered_by(o) for o in allows_before):
            continue
        moved = next((r for r in revoked if (r.action, r.condition) == (grant.action, grant.condition)), None)
        if moved is not None:
            revoked.remove(moved)
            continue
        wider.append(str(grant))
    denies_lost = sorted(str(g) for g in old if g.effect == "Deny" and g not in new)
    return wider + [f"no longer denied: {g}" for g in denies_lost]


def diff_iam(old_template: dict, new_template: dict) -> tuple[list[PolicyChange], list[Risk]]:
    old_docs, new_docs = documents(old_template), documents(new_template)
    changes, risks = [], []
    for key in sorted(old_docs.keys() | new_docs.keys()):
        old_roles, old_statements = old_docs.get(key, ([], []))
        new_roles, new_statements = new_docs.get(key, ([], []))
        old_keys = {json.dumps(s, sort_keys=True) for s in old_statements}
        new_keys = {json.dumps(s, sort_keys=True) for s in new_statements}
        if old_keys == new_keys:
            continue
        change = PolicyChange(
            policy=key, roles=new_roles or old_roles,
            added=[s for s in new_statements if json.dumps(s, sort_keys=True) not in old_keys],
            removed=[s for s in old_statements if json.dumps(s, sort_keys=True) not in new_keys],
            widens=widening(grants(old_statements), grants(new_statements)),
            granted=_readable(grants(new_statements) - grants(old_statements)),
            revoked=_readable(grants(old_statements) - grants(new_statements)),
        )
        changes.append(change)
        if change.widens:
            risks.append(Risk("widens", f"{key} grants more: {'; '.join(change.widens[:5])}"
                                        + (f" (+{len(change.widens) - 5} more)" if len(change.widens) > 5 else "")))
    return changes, risks


def _readable(found: set[Grant]) -> list[str]:
    return sorted(f"{g.effect} {g}" for g in found)


def role_allows(template: dict, role_id: str, action: str) -> bool | None:
    """Whether the template's policies on a role allow an action; None when the role is
    not in this template (imported) or has managed policies from outside it."""
    role = template.get("Resources", {}).get(role_id)
    if role is None or role.get("Type") != "AWS::IAM::Role":
        return None
    attached = [grant for key, (roles, statements) in documents(template).items()
                if role_id in roles and not key.endswith(TRUST) for grant in grants(statements)]
    if any(g.effect == "Allow" and iam_match(action.lower(), g.action.lower()) for g in attached):
        return True
    return None if role.get("Properties", {}).get("ManagedPolicyArns") else False
