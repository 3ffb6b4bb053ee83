"""Which resources a deploy adds, removes, updates in place or replaces.

Whether a property change replaces a resource is CloudFormation's rule, read from the
resource type's registry schema (`createOnlyProperties`) as cfn-lint ships it — the
same list each type's template reference page gives as "Update requires: Replacement".
A change CloudFormation sees but a template diff does not is followed too: a resource
whose property holds a `Ref`/`Fn::GetAtt` of a replaced resource gets a new value
(the replacement has a new physical id) — replaced itself when that property is
create-only, updated otherwise. This is the endpoint whose endpoint config is replaced,
which `cdk diff` does not list (../shared/reference/SAGEMAKER.md, "Second deploys").
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Iterator, Literal

Action = Literal["add", "remove", "update", "replace"]
# Not a resource CloudFormation creates for the stack's purpose: CDK's version report.
IGNORED_TYPES = ("AWS::CDK::Metadata",)
SCHEMA_REGION = "us-east-1"
CUSTOM_RESOURCE = "AWS::CloudFormation::CustomResource"


@dataclass(frozen=True)
class ResourceChange:
    logical_id: str
    type: str
    action: Action
    why: str

    def as_json(self) -> dict[str, str]:
        return {"logical_id": self.logical_id, "type": self.type, "action": self.action, "why": self.why}


@cache
def _schema_files() -> tuple[Path, dict[str, str]] | None:
    """cfn-lint's bundled registry schemas: the region's type -> schema file map. Read
    from its package data without importing cfn-lint (that import costs a second)."""
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or not spec.submodule_search_locations:
        return None
    schemas = Path(next(iter(spec.submodule_search_locations))) / "data" / "schemas"
    providers = schemas / "providers" / f"{SCHEMA_REGION}.json"
    if not providers.is_file():
        return None
    return schemas / "resources", json.loads(providers.read_text())


@cache
def create_only_properties(resource_type: str) -> tuple[tuple[str, ...], ...]:
    """The type's create-only property paths (`/properties/A/*/B` → ("A", "*", "B"))."""
    found = _schema_files()
    if found is None:
        raise RuntimeError("cfn-lint's registry schemas are not installed: pip install -r requirements-dev.txt")
    resources, by_type = found
    if resource_type.startswith("Custom::"):  # as cfn-lint reads them: a CloudFormation custom resource
        resource_type = CUSTOM_RESOURCE
    if resource_type not in by_type:  # a type the registry does not know (custom): nothing is known to replace
        return ()
    schema = json.loads((resources / f"{by_type[resource_type]}.json").read_text())
    pointers = schema.get("createOnlyProperties") or []
    return tuple(tuple(p.removeprefix("/properties/").split("/")) for p in pointers if p.startswith("/properties/"))


def name_property(resource_type: str) -> str | None:
    """The property that gives a resource a custom name (`BucketName`, `EndpointName`…),
    when the type has one. CloudFormation names such properties `<Type>Name` and makes
    them create-only (user guide, "Name type")."""
    candidate = resource_type.rsplit("::", 1)[-1] + "Name"
    return candidate if (candidate,) in create_only_properties(resource_type) else None


def values_at(value: Any, path: tuple[str, ...]) -> list[Any]:
    """The values at a schema path in a properties object; `*` walks a list."""
    if not path:
        return [value]
    head, rest = path[0], path[1:]
    if head == "*":
        return [found for item in value for found in values_at(item, rest)] if isinstance(value, list) else []
    if isinstance(value, dict) and head in value:
        return values_at(value[head], rest)
    return []


def references(value: Any) -> Iterator[str]:
    """Logical ids a template value refers to (Ref, Fn::GetAtt, Fn::Sub's ${Id} / ${Id.Attr})."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                yield inner
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
                yield target
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                if isinstance(text, str):
                    yield from (name.split(".")[0] for name in _sub_names(text))
                yield from references(inner)
            else:
                yield from references(inner)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def _sub_names(text: str) -> Iterator[str]:
    start = text.find("${")
    while start != -1:
        end = text.find("}", start)
        if end == -1:
            return
        name = text[start + 2:end]
        if not name.startswith("!"):
            yield name
        start = text.find("${", end)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _replacing_paths(resource_type: str, old: dict, new: dict) -> list[str]:
    return ["/".join(path) for path in create_only_properties(resource_type)
            if not _same(values_at(old, path), values_at(new, path))]


def _changed_properties(old: dict, new: dict) -> list[str]:
    return sorted(key for key in set(old) | set(new) if not _same(old.get(key), new.get(key)))


def _compare(logical_id: str, old: dict, new: dict) -> ResourceChange | None:
    resource_type = new["Type"]
    if old["Type"] != resource_type:
        return ResourceChange(logical_id, resource_type, "replace", f"type {old['Type']} → {resource_type}")
    old_props, new_props = old.get("Properties", {}), new.get("Properties", {})
    replacing = _replacing_paths(resource_type, old_props, new_props)
    if replacing:
        return ResourceChange(logical_id, resource_type, "replace", f"create-only {', '.join(replacing)} changes")
    changed = _changed_properties(old_props, new_props)
    if changed:
        return ResourceChange(logical_id, resource_type, "update", f"{', '.join(changed)} changes")
    policies = [key for key in ("DeletionPolicy", "UpdateReplacePolicy") if old.get(key) != new.get(key)]
    if policies:
        return ResourceChange(logical_id, resource_type, "update",
                              f"{', '.join(policies)} changes (template only; no call to the service)")
    return None


def _propagate(new_resources: dict[str, dict], changes: dict[str, ResourceChange]) -> None:
    """Follow references to replaced resources until nothing more changes."""
    while True:
        replaced = {lid for lid, change in changes.items() if change.action == "replace"}
        grew = False
        for logical_id, resource in new_resources.items():
            current = changes.get(logical_id)
            if current is not None and current.action in ("replace", "add"):
                continue
            follow = _follow_replacement(logical_id, resource, replaced, current)
            if follow is not None:
                changes[logical_id] = follow
                grew = True
        if not grew:
            return


def _follow_replacement(logical_id: str, resource: dict, replaced: set[str],
                        current: ResourceChange | None) -> ResourceChange | None:
    properties = resource.get("Properties", {})
    for path in create_only_properties(resource["Type"]):
        hit = sorted(replaced.intersection(references(values_at(properties, path))))
        if hit:
            return ResourceChange(logical_id, resource["Type"], "replace",
                                  f"create-only {'/'.join(path)} refers to replaced {', '.join(hit)}")
    hit = sorted(replaced.intersection(references(properties)))
    if hit and (current is None or "refers to replaced" not in current.why):
        why = f"refers to replaced {', '.join(hit)}"
        return ResourceChange(logical_id, resource["Type"], "update", f"{current.why}; {why}" if current else why)
    return None


def diff_resources(old_template: dict, new_template: dict) -> list[ResourceChange]:
    old = {k: v for k, v in old_template.get("Resources", {}).items() if v.get("Type") not in IGNORED_TYPES}
    new = {k: v for k, v in new_template.get("Resources", {}).items() if v.get("Type") not in IGNORED_TYPES}
    changes: dict[str, ResourceChange] = {}
    for logical_id in new.keys() - old.keys():
        changes[logical_id] = ResourceChange(logical_id, new[logical_id]["Type"], "add", "new in the template")
    for logical_id in old.keys() - new.keys():
        changes[logical_id] = ResourceChange(logical_id, old[logical_id]["Type"], "remove", "gone from the template")
    for logical_id in old.keys() & new.keys():
        change = _compare(logical_id, old[logical_id], new[logical_id])
        if change is not None:
            changes[logical_id] = change
    _propagate(new, changes)
    order = {"replace": 0, "remove": 1, "add": 2, "update": 3}
    return sorted(changes.values(), key=lambda c: (order[c.action], c.logical_id))
