"""Custom names that make a deploy fail.

CloudFormation user guide, "Name type" and "Update behaviors of stack resources":
"CloudFormation cannot update a stack when a custom-named resource requires replacing"
— the replacement is created first, under the same name, while the old one still holds
it. The same happens when a resource moves to a new logical id but keeps its name: the
new one is created before the old one is deleted. (The local AWS replaces by
delete-then-create, so such a deploy passes there: reference, "Second deploys".)
"""

from __future__ import annotations

import json

from endpointctl.plan.resources import ResourceChange, name_property
from endpointctl.plan.risks import Risk
from endpointctl.plan.template import show


def _name(resource: dict) -> str | None:
    prop = name_property(resource.get("Type", ""))
    value = resource.get("Properties", {}).get(prop) if prop else None
    return json.dumps(value, sort_keys=True) if value is not None else None


def fixed_name_risks(old_template: dict, new_template: dict, changes: list[ResourceChange]) -> list[Risk]:
    old, new = old_template.get("Resources", {}), new_template.get("Resources", {})
    risks = []
    for change in changes:
        if change.action == "replace" and change.logical_id in old:
            name = _name(new[change.logical_id])
            if name is not None and name == _name(old[change.logical_id]):
                risks.append(Risk("fails", f"{change.logical_id} ({change.type}) must be replaced ({change.why}) but "
                                           f"keeps its custom name {show(json.loads(name))}: CloudFormation cannot "
                                           "replace a custom-named resource"))
    removed = {(old[c.logical_id]["Type"], _name(old[c.logical_id])): c.logical_id
               for c in changes if c.action == "remove"}
    for change in changes:
        if change.action == "add":
            key = (change.type, _name(new[change.logical_id]))
            if key[1] is not None and key in removed:
                risks.append(Risk("fails", f"{change.logical_id} ({change.type}) is created under the name "
                                           f"{show(json.loads(key[1]))} that {removed[key]} still holds until cleanup"))
    return risks
