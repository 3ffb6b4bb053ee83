"""Read a cloud assembly (the `cdk.out` folder `cdk synth` writes): its stacks, their
templates and the file assets each template points at."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from endpointctl.errors import CommandError

STACK_ARTIFACT = "aws:cloudformation:stack"
ASSET_MANIFEST = "cdk:asset-manifest"
ASSET_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileAsset:
    """One file asset: where CDK uploads it and the file it uploads."""

    hash: str
    display_name: str
    object_key: str
    source: Path


@dataclass(frozen=True)
class Stack:
    name: str
    template: dict[str, Any]
    assets: dict[str, FileAsset] = field(default_factory=dict)  # by asset hash

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template.get("Resources", {})

    def asset_in(self, location: str) -> FileAsset | None:
        """The asset a template string such as `s3://cdk-…-assets-…/<hash>.gz` names."""
        for found in ASSET_HASH.findall(location):
            if found in self.assets:
                return self.assets[found]
        return None


@dataclass(frozen=True)
class Assembly:
    directory: Path
    stacks: dict[str, Stack]


def load_assembly(directory: Path, *, option: str) -> Assembly:
    """Every stack of the assembly; a folder without a cloud assembly manifest is bad input."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise CommandError(f"{option} {directory}: not a cloud assembly (no manifest.json); pass the folder "
                           "`cdk synth` wrote (cdk.out)")
    try:
        artifacts = json.loads(manifest_path.read_text())["artifacts"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CommandError(f"{option} {directory}: manifest.json is not a cloud assembly manifest ({error})") from None
    stacks = {}
    for artifact_id, artifact in artifacts.items():
        if artifact.get("type") == STACK_ARTIFACT:
            stack = _read_stack(directory, artifact_id, artifact, artifacts, option=option)
            stacks[stack.name] = stack
    return Assembly(directory=directory, stacks=stacks)


def _read_stack(directory: Path, artifact_id: str, artifact: dict, artifacts: dict, *, option: str) -> Stack:
    properties = artifact.get("properties", {})
    template_path = directory / properties.get("templateFile", f"{artifact_id}.template.json")
    try:
        template = json.loads(template_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CommandError(f"{option} {directory}: cannot read the template of stack {artifact_id} ({error})") from None
    assets: dict[str, FileAsset] = {}
    for dependency in artifact.get("dependencies", []):
        if artifacts.get(dependency, {}).get("type") == ASSET_MANIFEST:
            assets.update(_read_assets(directory, artifacts[dependency]["properties"]["file"]))
    return Stack(name=properties.get("stackName", artifact_id), template=template, assets=assets)


def _read_assets(directory: Path, manifest_file: str) -> dict[str, FileAsset]:
    files = json.loads((directory / manifest_file).read_text()).get("files", {})
    assets = {}
    for asset_hash, entry in files.items():
        destinations = list(entry.get("destinations", {}).values())
        object_key = destinations[0]["objectKey"] if destinations else ""
        assets[asset_hash] = FileAsset(hash=asset_hash, display_name=entry.get("displayName", ""),
                                       object_key=object_key, source=directory / entry["source"]["path"])
    return assets
