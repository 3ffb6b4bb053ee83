"""The archives a model serves — ModelDataUrl and SAGEMAKER_SUBMIT_DIRECTORY — before
and after, by asset hash or s3:// URL. Snapshots normalize asset hashes; this does not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endpointctl.plan.assembly import Stack
from endpointctl.plan.template import of_type, show

MODEL = "AWS::SageMaker::Model"


@dataclass(frozen=True)
class Archive:
    """Where a model's archive comes from: a CDK file asset of the assembly, or a URL."""

    location: str
    asset_hash: str | None = None
    local_file: Path | None = None

    @property
    def label(self) -> str:
        return f"asset {self.asset_hash[:12]}…" if self.asset_hash else self.location

    def as_json(self) -> dict[str, Any]:
        return {"location": self.location, "asset_hash": self.asset_hash}


def archive(stack: Stack, value: Any) -> Archive | None:
    if value is None:
        return None
    location = show(value)
    asset = stack.asset_in(location)
    if asset is not None:
        return Archive(location=f"s3://<assets>/{asset.object_key}", asset_hash=asset.hash, local_file=asset.source)
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        location = value["Fn::Sub"]
    return Archive(location=location)


def model_archives(stack: Stack, model_id: str | None) -> dict[str, Archive | None]:
    container = stack.resources.get(model_id or "", {}).get("Properties", {}).get("PrimaryContainer", {})
    return {"model": archive(stack, container.get("ModelDataUrl")),
            "code": archive(stack, container.get("Environment", {}).get("SAGEMAKER_SUBMIT_DIRECTORY"))}


def diff_artifacts(old: Stack, new: Stack) -> list[dict[str, Any]]:
    found = []
    for model_id in sorted(of_type(old.template, MODEL).keys() | of_type(new.template, MODEL).keys()):
        before, after = model_archives(old, model_id), model_archives(new, model_id)
        for kind in ("model", "code"):
            b, a = before[kind], after[kind]
            if (b.location if b else None) != (a.location if a else None):
                found.append({"resource": model_id, "kind": kind,
                              "before": b.as_json() if b else None, "after": a.as_json() if a else None})
    return found


def describe(entry: dict[str, Any]) -> str:
    def label(side: dict | None) -> str:
        if side is None:
            return "none"
        return f"asset {side['asset_hash']}" if side["asset_hash"] else side["location"]

    return f"{entry['resource']} {entry['kind']} archive: {label(entry['before'])} → {label(entry['after'])}"
