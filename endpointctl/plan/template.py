"""Small readers of a CloudFormation template, shared by the plan's sections."""

from __future__ import annotations

from typing import Any


def target(value: Any) -> str | None:
    """The logical id behind `{"Ref": id}` or `{"Fn::GetAtt": [id, attr]}`."""
    if isinstance(value, dict):
        if isinstance(value.get("Ref"), str):
            return value["Ref"]
        getatt = value.get("Fn::GetAtt")
        if isinstance(getatt, list) and getatt:
            return getatt[0]
        if isinstance(getatt, str):
            return getatt.split(".")[0]
    return None


def of_type(template: dict, resource_type: str) -> dict[str, dict]:
    return {k: v for k, v in template.get("Resources", {}).items() if v.get("Type") == resource_type}


def properties(template: dict, logical_id: str | None) -> dict:
    if logical_id is None:
        return {}
    return template.get("Resources", {}).get(logical_id, {}).get("Properties", {})


def literal(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def show(value: Any) -> str:
    """A template value for a reader: strings as they are, intrinsics as `${Id}`,
    `${Id.Attr}`, joins joined — the way Fn::Sub would spell them."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), = value.items()
        if key == "Ref":
            return f"${{{inner}}}"
        if key == "Fn::GetAtt":
            return f"${{{'.'.join(inner) if isinstance(inner, list) else inner}}}"
        if key == "Fn::Sub" and isinstance(inner, str):
            return inner
        if key == "Fn::Join" and isinstance(inner, list) and len(inner) == 2 and isinstance(inner[1], list):
            return show(inner[0]).join(show(part) for part in inner[1])
        if key == "Fn::FindInMap" and isinstance(inner, list):
            return f"${{{inner[0]}[{']['.join(show(part) for part in inner[1:])}]}}"
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"))
